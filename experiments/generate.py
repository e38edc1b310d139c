"""Entry point ``generate``: build (or reuse, or resume) a dataset and print its path."""

import sys

from instrlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
