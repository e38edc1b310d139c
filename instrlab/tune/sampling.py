"""Samplers seeded per trial and the pruners ``--pruner`` names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from instrlab.tune.options import check_pruner, check_sampler


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded with ``seed + trial.number``.

    Trial numbers are unique in a study, so workers that share a seed (and a resumed study
    whose sampler starts again) never draw the same parameters twice, and a given trial
    number always draws the same random start-up parameters.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            sampler = self._by_trial[trial.number] = self._make(self._seed + trial.number)
        return sampler

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: Any) -> Any:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:
        pass


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """``tpe`` or ``random``, seeded per trial (:class:`TrialSeededSampler`)."""
    check_sampler(name)
    if name == "random":
        return TrialSeededSampler(lambda s: optuna.samplers.RandomSampler(seed=s), seed)
    return TrialSeededSampler(lambda s: optuna.samplers.TPESampler(seed=s), seed)


def make_pruner(name: str, startup_trials: int = 5, warmup_epochs: int = 1
                ) -> optuna.pruners.BasePruner:
    """``median`` (MedianPruner), ``halving`` (successive halving) or ``none``."""
    check_pruner(name, startup_trials, warmup_epochs)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup_epochs)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup_epochs),
                                                      reduction_factor=3)
    return optuna.pruners.NopPruner()
