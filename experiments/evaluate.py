"""Entry point ``evaluate``: score a logged model on a dataset config (e.g. another soundfont)."""

import sys

from instrlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
