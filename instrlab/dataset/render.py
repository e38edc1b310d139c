"""Rendering one clip of a dataset: its score, the soundfont each instrument draws, the
stems, the mix and its features (:class:`SampleRenderer`, one per process)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from instrlab import registry
from instrlab.dataset.config import (
    DatasetConfig,
    allowed_soundfonts,
    build_identity,
    soundfont_weights,
)
from instrlab.dataset.soundfont_draw import draw_soundfonts
from instrlab.dataset.stems import render_stems, takes_generators
from instrlab.dataset.store import split_indices
from instrlab.errors import InstrlabError
from instrlab.features import get_extractor
from instrlab.instruments import InstrumentSet, get_instrument_set
from instrlab.scores import SEED_GENERATORS, Score, generate_score
from instrlab.synth import get_synth
from instrlab.synth.augment import (
    AugmentConfig,
    augment_mix,
    augment_rng,
    augments_clip,
    smooth_eq,
    stem_eq_curves,
    stem_gains_db,
)
from instrlab.synth.mixing import mix_stems, normalize_peak


def plugin_code(cfg: DatasetConfig) -> dict[str, str]:
    """``"kind name": digest`` of each plugin component ``cfg`` renders with: a dataset made
    with a plugin is renamed when the plugin's file changes (built-ins: instrlab's version)."""
    used = [(registry.synths, cfg.synth), (registry.features, cfg.features),
            *((registry.score_generators, name) for name, _ in cfg.score.generators)]
    entries = [(reg.kind, reg.entry(name)) for reg, name in used]
    return {f"{kind} {e.name}": e.code for kind, e in entries if e.code}


@dataclass
class SampleResult:
    """One rendered sample."""

    index: int
    features: np.ndarray
    labels: np.ndarray
    record: dict[str, Any]
    audio: np.ndarray | None = None


class SampleRenderer:
    """Renders samples of one config; holds the synth and extractor of one process."""

    def __init__(self, cfg: DatasetConfig) -> None:
        self.cfg = cfg
        self.iset: InstrumentSet = get_instrument_set(cfg.instruments)
        cfg.score.validate(len(self.iset))
        cfg.score.prepare(self.iset)
        self.synths = [
            get_synth(cfg.synth, soundfont=sf, sample_rate=cfg.sample_rate, reverb=cfg.reverb,
                      chorus=cfg.chorus)
            for sf in (cfg.soundfont, *cfg.extra_soundfonts)
        ]
        for synth in self.synths:
            if cfg.augment.voicing and not takes_generators(synth):
                raise InstrlabError(
                    f"synth {cfg.synth!r} cannot vary the voicing (its render_stem takes no "
                    "generators); set --augment-voicing 0 or use the fluidsynth synth"
                )
        self.extractor = get_extractor(cfg.features, sample_rate=cfg.sample_rate,
                                       clip_seconds=cfg.score.clip_seconds, **cfg.feature_params)
        self._train: frozenset[int] | None = None
        self._test: frozenset[int] | None = None
        self._allowed = allowed_soundfonts(cfg, self.iset)
        self._weights = soundfont_weights(cfg)
        # per instrument, the soundfonts a family blend may draw
        self._options = self._allowed or [list(range(len(self.synths)))] * len(self.iset)

    @functools.cached_property
    def _names(self) -> list[Any]:
        """The soundfont names the manifest records, per synth (its index without one)."""
        return [s.identity().get("soundfont", k) for k, s in enumerate(self.synths)]

    def check(self) -> None:
        """Before building: every synth loads its soundfont and has every instrument's
        preset, or this fails in one line (a cached dataset never needs it)."""
        for synth in self.synths:
            check = getattr(synth, "check_instruments", None)
            if check is not None:
                check(self.iset.instruments)

    @property
    def synth(self) -> Any:
        """The synth of the primary soundfont."""
        return self.synths[0]

    def identity(self) -> dict[str, Any]:
        return build_identity(self.cfg, [s.identity() for s in self.synths],
                              self.extractor.params(),
                              self.iset.to_dict(), plugin_code(self.cfg))

    def protocol(self, index: int) -> bool:
        """Whether clip ``index`` keeps the seed's protocol (``DatasetConfig.test_protocol``)."""
        if not self.cfg.test_protocol:
            return False
        if self._test is None:
            test = split_indices(self.cfg.n_samples, self.cfg.seed)["test"]
            self._test = frozenset(int(i) for i in test)
        return index in self._test

    def score(self, index: int) -> Score:
        cfg = self.cfg.score
        if self.protocol(index):
            cfg = dataclasses.replace(cfg, register_share=0.0, generators=SEED_GENERATORS)
        return generate_score(self.iset, cfg, self.cfg.seed, index)

    def soundfont_choice(self, score: Score) -> list[int]:
        """Which of the synths renders each instrument of ``score`` (its own random stream)."""
        k = len(self.synths)
        if k == 1 or self.protocol(score.index):  # the first soundfont each may use
            return [self._allowed[i][0] if self._allowed else 0 for i in score.instruments]
        return draw_soundfonts(score.seed, score.instruments, k, self.cfg.soundfont_per,
                               self._allowed, self._weights)

    def augments(self, score: Score) -> bool:
        """Whether this clip is augmented (see :class:`instrlab.synth.augment.AugmentConfig`)."""
        if self._train is None:
            train = split_indices(self.cfg.n_samples, self.cfg.seed)["train"]
            self._train = frozenset(int(i) for i in train)
        return augments_clip(self.cfg.augment, score.seed, score.index in self._train)

    def render_audio(self, score: Score) -> tuple[np.ndarray, dict[str, Any]]:
        """The mix of one score and what went into it (stem levels, gains, soundfonts)."""
        choice = self.soundfont_choice(score)
        aug = self.cfg.augment if self.augments(score) else AugmentConfig()
        drawn = render_stems(self.synths, self.iset.instruments, score, choice, self._options,
                             aug, self.cfg.sample_rate)
        stems = drawn.audio
        if aug.shapes_stems:
            curves = stem_eq_curves(aug, score.seed, len(stems))
            stems = [smooth_eq(s, c, self.cfg.sample_rate) for s, c in zip(stems, curves)]
        rng = augment_rng(score.seed)
        audio, levels, gains = mix_stems(stems, self.cfg.mix,
                                         stem_gains_db(aug, rng, len(stems)))
        info: dict[str, Any] = {"stem_level_db": [round(v, 3) for v in levels],
                                "stem_gain_db": [round(v, 3) for v in gains]}
        if len(self.synths) > 1:
            info["soundfonts"] = [self._names[c] for c in choice]
        if any(drawn.transpose):
            info["transpose"] = drawn.transpose
        if any(drawn.formant_shift):
            info["formant_shift"] = drawn.formant_shift
        if any(drawn.blend):
            info["blend"] = [[self._names[b[0]], round(b[1], 4)] if b else None
                             for b in drawn.blend]
        if aug.active:
            audio, drawn = augment_mix(audio, aug, rng, self.cfg.sample_rate)
            audio = normalize_peak(audio, self.cfg.mix.peak_db)
            info["augment"] = {k: round(v, 4) for k, v in drawn.items()}
        return audio, info

    def render(self, index: int, keep_audio: bool = False) -> SampleResult:
        score = self.score(index)
        audio, info = self.render_audio(score)
        labels = np.zeros(len(self.iset), np.uint8)
        labels[list(score.instruments)] = 1
        names = self.iset.names
        record = {
            "index": index,
            "seed": score.seed,
            "instruments": [names[i] for i in score.instruments],
            "notes": [[names[n.instrument], n.pitch, n.velocity, round(n.start, 6),
                       round(n.end, 6)] for n in score.notes],
            **info,
        }
        feats = self.extractor(audio).astype(np.float16)
        return SampleResult(index, feats, labels, record, audio if keep_audio else None)
