"""Entry point ``train``: train and test a model on a dataset in one MLflow run."""

import sys

from instrlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
