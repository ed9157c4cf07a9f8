"""followup: knows from your mailbox who is slipping away."""

__version__ = "0.1.0"
