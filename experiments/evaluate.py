"""Entry point ``evaluate``: score a logged model on a dataset config (e.g. another soundfont)."""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("evaluate", sys.argv[1:]))
