"""What a study looks like on the terminal: the live panel and the top-trials table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.live import Live
from rich.table import Table

from instrlab.console import console
from instrlab.tune.keys import ATTR_BEST_EPOCH, ATTR_PRUNED_AT, ATTR_RUN, OBJECTIVE
from instrlab.tune.space import SearchSpace
from instrlab.tune.trials import best_trial, counts, state_name


def fmt_param(v: Any) -> str:
    """A parameter value, short (floats to 3 significant digits)."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


class LiveView:
    """A rich panel while a study runs: recent trials, their params, values, best so far."""

    def __init__(self, study: optuna.Study, n_trials: int, space: SearchSpace,
                 enabled: bool, rows: int = 12) -> None:
        self.study, self.n_trials, self.space, self.rows = study, n_trials, space, rows
        self.enabled = enabled and console.is_terminal
        self._trials: list[FrozenTrial] = []
        self._current: dict[int, str] = {}
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        self.refresh()
        if self.enabled:
            self._live = Live(get_renderable=self.render, console=console,
                              refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self.refresh()
            self._live.__exit__(*exc)

    def refresh(self, current: dict[int, str] | None = None) -> None:
        """Read the study again; ``current`` replaces the progress texts of running trials."""
        with contextlib.suppress(Exception):  # a view never stops a study
            self._trials = self.study.get_trials(deepcopy=False)
        if current is not None:
            self._current = current

    def render(self) -> Table:
        trials = list(self._trials)
        c = counts(trials)
        best = best_trial(trials)
        title = (f"study {self.study.study_name}: {c['counted']}/{self.n_trials} trials "
                 f"({c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed, "
                 f"{c['running']} running)")
        if best is not None:
            title += f"  best {best.value:.4f} (#{best.number})"
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("state")
        for name in self.space.names:
            table.add_column(name, justify="right")
        table.add_column(OBJECTIVE, justify="right")
        table.add_column("best so far", justify="right")
        running_best = -math.inf
        lines = []
        for t in sorted(trials, key=lambda t: t.number):
            if t.state == TrialState.COMPLETE and t.value is not None:
                running_best = max(running_best, t.value)
            value = "" if t.value is None else f"{t.value:.4f}"
            if t.state == TrialState.RUNNING:
                value = self._current.get(t.number, "running")
            elif t.state == TrialState.PRUNED:
                value = f"pruned @ {t.user_attrs.get(ATTR_PRUNED_AT, '?')}"
            lines.append([str(t.number), state_name(t),
                          *[fmt_param(t.params.get(n, "")) for n in self.space.names],
                          value, "" if running_best == -math.inf else f"{running_best:.4f}"])
        for line in lines[-self.rows:]:
            table.add_row(*line)
        return table


def top_trials_table(study: optuna.Study, space_names: Sequence[str], top: int = 10) -> Table:
    """The best complete trials, with counts of every state in the caption."""
    trials = study.get_trials(deepcopy=False)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: (-t.value, t.number))
    c = counts(trials)
    table = Table(title=f"study {study.study_name}: top {min(top, len(done))} of {len(trials)} "
                        f"trials by {OBJECTIVE}",
                  caption=f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed,"
                          f" {c['interrupted']} interrupted, {c['running']} running")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column(OBJECTIVE, justify="right")
    for name in space_names:
        table.add_column(name, justify="right")
    table.add_column("best epoch", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("MLflow run")
    for rank, t in enumerate(done[:top], 1):
        secs = t.duration.total_seconds() if t.duration else float("nan")
        table.add_row(str(rank), str(t.number), f"{t.value:.4f}",
                      *[fmt_param(t.params.get(n, "")) for n in space_names],
                      str(t.user_attrs.get(ATTR_BEST_EPOCH, "")), f"{secs:.0f}",
                      str(t.user_attrs.get(ATTR_RUN, "")))
    return table
