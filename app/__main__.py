"""`python -m app` is the `shopdesk` command."""

from app.cli import main

main()
