"""The address book: vCards from a vdir, a .vcf file or CardDAV, read into plain records."""
