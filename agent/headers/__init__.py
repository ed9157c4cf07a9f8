"""Message headers, parsed for the scan: raw header bytes → ``meta.MessageMeta``."""
