"""The only package that speaks IMAP (through imapclient): the connection, FETCH, folders."""
