"""``python -m scdiff`` runs the command line."""

from scdiff.cli import main

if __name__ == "__main__":
    main()
