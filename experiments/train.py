"""Entry point ``train``: train and test a model on a dataset in one MLflow run."""

import sys

from instrlab.cli import run_entry_point

if __name__ == "__main__":
    sys.exit(run_entry_point("train", sys.argv[1:]))
