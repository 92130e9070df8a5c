"""`python -m reconcile` entry point."""

from reconcile.cli import main

main()
