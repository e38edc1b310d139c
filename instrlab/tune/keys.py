"""The names instrlab stores: Optuna study and trial attributes, MLflow tags, the objective.

Changing one of these changes what older studies and runs are read as.
"""

from __future__ import annotations

OBJECTIVE = "val_macro_f1"

# study user attributes
ATTR_SPACE = "instrlab.search_space"
ATTR_SETUP = "instrlab.setup"
ATTR_OBJECTIVE = "instrlab.objective"

# trial user attributes
ATTR_HOST, ATTR_PID, ATTR_WORKER = "instrlab.host", "instrlab.pid", "instrlab.worker"
ATTR_RUN = "instrlab.mlflow_run_id"
ATTR_FAIL = "instrlab.fail_reason"
ATTR_INTERRUPTED = "instrlab.interrupted"
ATTR_PRUNED_AT = "instrlab.pruned_at_epoch"
ATTR_BEST_EPOCH = "instrlab.best_epoch"

# MLflow run tags
TAG_STUDY = "instrlab.study"
TAG_STORAGE = "instrlab.storage"
TAG_TRIAL = "instrlab.trial_number"
TAG_STATE = "instrlab.trial_state"
TAG_ROLE = "instrlab.tune_role"  # tune (parent), trial, or best
TAG_HOST, TAG_PID = "instrlab.host", "instrlab.pid"  # the process that runs a parent or trial
TAG_INTERRUPTED = "instrlab.interrupted"
