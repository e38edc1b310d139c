"""Entry point ``tune``: an Optuna study over training, one nested MLflow run per trial.

The study lives in :mod:`instrlab.tune`; this script only picks it, as every experiment
script does. ``python experiments/tune.py --help`` lists the options.
"""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("tune", sys.argv[1:]))
