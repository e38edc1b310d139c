"""Entry point ``folds``: the leave-one-family-out benchmark, one nested MLflow run per fold.

The work is in :mod:`instrlab.folds`; ``python experiments/folds.py --help`` lists the
options.
"""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("folds", sys.argv[1:]))
