"""Entry point for ``python -m agent``."""

from agent.cli.root import main

main()
