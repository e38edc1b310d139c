"""Entry point ``main``: dataset (reused when built) -> train -> evaluate, tracked in MLflow.

The steps live in :mod:`instrlab.pipeline`; this script only picks them, as every
experiment script does. ``python experiments/main.py --help`` lists the options.
"""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("main", sys.argv[1:]))
