"""`python -m engine` runs the `render` command line."""

from engine.cli import main

main()
