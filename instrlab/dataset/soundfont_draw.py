"""Which soundfont renders each instrument of a training clip: a pure function of the
clip's seed, the allowed soundfonts per instrument and their weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SOUNDFONT_STREAM = 0x5F0  # random stream of soundfont choices, apart from the score's


def draw_soundfonts(seed: int, instruments: Sequence[int], k: int, per: str,
                    allowed: list[list[int]], weights: list[float] | None) -> list[int]:
    """The soundfont (index of ``k``) of each instrument of a clip: one per instrument or
    one for the whole clip (``per``), among ``allowed[i]`` (every one when empty), uniform
    or in proportion to ``weights``. Without weights the draws are those of datasets made
    before weights existed, so their bytes do not change."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SOUNDFONT_STREAM]))
    if weights is not None:
        def draw(options: list[int]) -> int:
            p = np.array([weights[j] for j in options])
            return options[int(rng.choice(len(options), p=p / p.sum()))]

        if per == "instrument":
            return [draw(allowed[i] if allowed else list(range(k))) for i in instruments]
        return [draw(list(range(k)))] * len(instruments)
    if per == "instrument" and allowed:
        return [allowed[i][int(rng.integers(0, len(allowed[i])))] for i in instruments]
    if per == "instrument":
        return [int(i) for i in rng.integers(0, k, len(instruments))]
    return [int(rng.integers(0, k))] * len(instruments)
