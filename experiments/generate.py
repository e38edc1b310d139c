"""Entry point ``generate``: build (or reuse, or resume) a dataset and print its path."""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("generate", sys.argv[1:]))
