"""The leave-one-family-out benchmark's settings (no heavy imports: --help reads them)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from instrlab.errors import InstrlabError


@dataclass(frozen=True)
class FoldsConfig:
    """Which soundfonts make the families and which are held out, one fold each."""

    soundfonts: tuple[str, ...] = ()
    """Every soundfont of the benchmark: training material of the folds that keep it; ()
    takes the experiment's own (``data.soundfont`` and ``data.extra_soundfonts``), so the
    folds measure the training data ``main`` would use (:meth:`on`)."""
    hold_out: tuple[str, ...] = ("TimGM6mb.sf2+sf_GMbank.sf2", "FluidR3_GM.sf2")
    """One fold per entry; ``A+B`` holds out both (csound's sf_GMbank shares most of
    TimGM6mb's samples). The fold is named and scored by its first soundfont."""
    eval_samples: int = 2000
    """Clean clips (seed 1) rendered with each held-out soundfont."""
    octaves: tuple[int, ...] = (-1, 1)
    """Each held-out soundfont is also scored with every note moved by these octaves
    (48..60 and 72..84 for seed12's 60..72): pitch robustness."""
    music: str | None = "corpus"
    """Each held-out soundfont also plays real music: clips of this evaluation score
    generator (string quartets from music21's corpus, never trained on); none: no such
    figure."""
    train_seeds: tuple[int, ...] = ()
    """Train every fold once per training seed and report the mean (and each seed) over
    them; () trains once, with the experiment's ``train.seed``."""

    def __post_init__(self) -> None:
        if self.soundfonts and (len(set(self.soundfonts)) != len(self.soundfonts)
                                or len(self.soundfonts) < 2):
            raise InstrlabError("folds need at least two different soundfonts: name them with "
                                "--soundfonts (default: the experiment's, --extra-soundfont)")
        if not self.hold_out:
            raise InstrlabError("folds need at least one --hold-out soundfont")
        for spec in self.hold_out if self.soundfonts else ():
            for name in spec.split("+"):
                if name not in self.soundfonts:
                    raise InstrlabError(
                        f"--hold-out {spec!r}: {name!r} is not one of the benchmark's "
                        f"soundfonts ({', '.join(self.soundfonts)}); add it to --soundfonts")
        if any(o == 0 or not -3 <= o <= 3 for o in self.octaves):
            raise InstrlabError(f"--octaves must be non-zero whole octaves in -3..3, got "
                                f"{list(self.octaves)}")
        if len(set(self.train_seeds)) != len(self.train_seeds) or not all(
                0 <= s < 2**32 for s in self.train_seeds):
            raise InstrlabError(f"--train-seeds must be distinct whole numbers in 0..{2**32 - 1}, "
                                f"got {list(self.train_seeds)}")
        if not 1 <= self.eval_samples <= 1_000_000:
            raise InstrlabError(f"--eval-samples must be in 1..1000000, got {self.eval_samples}")

    def on(self, soundfonts: tuple[str, ...]) -> FoldsConfig:
        """These settings with the experiment's ``soundfonts`` (primary first) where none
        are given, checked like given ones."""
        return self if self.soundfonts else replace(self, soundfonts=soundfonts)
