"""The command line: parse options, call one service function, print; one error handler."""
