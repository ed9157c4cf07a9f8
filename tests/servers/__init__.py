"""Real mail servers on loopback for the tests: Dovecot, Cyrus and pymap on one base class
(`base.ImapServer`), an SMTP sink, a self-signed certificate and an in-memory keyring.

Nothing here imports pytest; the fixtures in tests/conftest.py are thin wrappers. Import
from the modules: `tests.servers.dovecot`, `.cyrus`, `.pymap`, `.account`, `.smtp`, …
"""
