"""Check-in and reply drafts in the user's own Drafts folder (never sent by followup)."""
