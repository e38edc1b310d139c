"""How a study runs: :class:`TuneOptions`, the one home of every ``instrlab tune`` default.

Imports no optuna, mlflow, torch or numpy: the command line reads these defaults to build
``--help``, which stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from instrlab.errors import InstrlabError

DEFAULT_STORAGE = "optuna-journal.log"
DEFAULT_SPACE = ("lr=loguniform:1e-4:1e-2", "batch_size=categorical:16,32,64,128,256")
KINDS = ("loguniform", "uniform", "int", "logint", "categorical")
PRUNERS = ("none", "median", "halving")
SAMPLERS = ("tpe", "random")


def check_sampler(name: str) -> None:
    """``name`` must be one of :data:`SAMPLERS`."""
    if name not in SAMPLERS:
        raise InstrlabError(f"--sampler {name!r} is unknown; use one of {', '.join(SAMPLERS)}")


def check_pruner(name: str, startup_trials: int, warmup_epochs: int) -> None:
    """``name`` must be one of :data:`PRUNERS`; its trial and epoch counts ``>= 0``."""
    if startup_trials < 0 or warmup_epochs < 0:
        raise InstrlabError("--pruner-startup-trials and --pruner-warmup-epochs must be >= 0")
    if name not in PRUNERS:
        raise InstrlabError(f"--pruner {name!r} is unknown; use one of {', '.join(PRUNERS)}")


@dataclass
class TuneOptions:
    """How a study runs; the data, model and training configs are passed beside it.

    ``storage`` None is :data:`DEFAULT_STORAGE` in the working directory; ``search_space``
    adds to (or with ``NAME=off`` drops from) :data:`DEFAULT_SPACE`.
    """

    study_name: str | None = None
    storage: str | None = None
    n_trials: int = 20
    timeout: float = 0.0
    sampler: str = "tpe"
    sampler_seed: int = 0
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 1
    n_workers: int = 1
    retrain_best: bool = True
    register_as: str | None = None
    run_name: str | None = None
    progress: bool = True
    top: int = 10
    data_workers: int = 0
    search_space: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise InstrlabError(f"--n-trials must be >= 1, got {self.n_trials}")
        if self.n_workers < 1:
            raise InstrlabError(f"--n-workers must be >= 1, got {self.n_workers}")
        if not math.isfinite(self.timeout) or self.timeout < 0:
            raise InstrlabError(f"--timeout must be a finite number of seconds >= 0 (0: no "
                                f"limit), got {self.timeout}")
        if self.top < 1:
            raise InstrlabError(f"--top must be >= 1 (rows in the final table), got {self.top}")
        check_pruner(self.pruner, self.pruner_startup_trials, self.pruner_warmup_epochs)
        check_sampler(self.sampler)
