"""Finding soundfonts and fingerprinting them (a soundfont is part of a dataset's identity)."""

from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache
from pathlib import Path

from instrlab.errors import InstrlabError

DEFAULT_SOUNDFONT = "FluidR3_GM.sf2"
ENV_VARIABLE = "INSTRLAB_SOUNDFONT"
INSTALL_HINT = (
    "install one (Debian/Ubuntu: apt-get install fluid-soundfont-gm; Fedora: dnf install "
    "fluid-soundfont-gm; Arch: pacman -S soundfont-fluid; conda: conda install -c conda-forge "
    f"fluidsynth) or point --soundfont / {ENV_VARIABLE} at a .sf2/.sf3 file"
)
DEBIAN_PACKAGES = {  # the sample families of the default training data
    "FluidR3_GM.sf2": "fluid-soundfont-gm",
    "MuseScore_General.sf3": "musescore-general-soundfont-small",
    "TimGM6mb.sf2": "timgm6mb-soundfont",
    "sf_GMbank.sf2": "csound-soundfont",
}
PROCEDURAL = "procedural:"  # synthesised sample families: procedural:SEED


def _procedural(name: str) -> Path:
    """A procedural family: installed by set-up (like the Debian soundfonts), or else built
    into the cache directory on first use."""
    from instrlab.synth.procedural import family_file, procedural_soundfont

    word = name.removeprefix(PROCEDURAL)
    if not (word.isascii() and word.isdigit()):  # str.isdigit alone admits "²", int() does not
        raise InstrlabError(f"soundfont {name!r}: a procedural family is named procedural:SEED "
                            "with a whole number, e.g. procedural:1")
    seed = int(word)
    for folder in _candidate_dirs():
        if (folder / family_file(seed)).is_file():
            return (folder / family_file(seed)).resolve()
    return procedural_soundfont(seed)


SEARCH_DIRS = (
    "/usr/share/sounds/sf2",
    "/usr/share/sounds/sf3",
    "/usr/share/soundfonts",
    "/usr/share/sounds/fluid-soundfont",
    "/usr/local/share/soundfonts",
    "/usr/share/sounds",
    "/opt/homebrew/share/soundfonts",
)


def _candidate_dirs() -> list[Path]:
    dirs = [Path(d) for d in SEARCH_DIRS]
    prefix = os.environ.get("CONDA_PREFIX", sys.prefix)
    dirs += [Path(prefix) / "share" / "soundfonts", Path(prefix) / "share" / "sounds" / "sf2"]
    return dirs


def find_soundfont(name: str | None = None) -> Path:
    """Resolve a soundfont path or file name; ``None`` means $INSTRLAB_SOUNDFONT or FluidR3_GM.

    Raises :class:`InstrlabError` naming what was tried and how to install one.
    """
    name = name or os.environ.get(ENV_VARIABLE) or DEFAULT_SOUNDFONT
    if name.startswith(PROCEDURAL):
        return _procedural(name)
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():
        raise InstrlabError(f"soundfont {path} is not a file; {INSTALL_HINT}")
    if len(path.parts) == 1:
        for d in _candidate_dirs():
            candidate = d / path.name
            if candidate.is_file():
                return candidate.resolve()
    if path.name in DEBIAN_PACKAGES:
        raise InstrlabError(
            f"soundfont {name!r} not found; run scripts/setup.sh or apt-get install "
            f"{DEBIAN_PACKAGES[path.name]} (or drop it: --extra-soundfont none / --soundfont)")
    raise InstrlabError(f"soundfont {name!r} not found; {INSTALL_HINT}")


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def soundfont_checksum(path: Path) -> str:
    """SHA-256 of the soundfont file (cached per path, size and mtime)."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def check_soundfont_header(path: Path) -> None:
    """Fail early, with a clear message, on files that are not RIFF soundfonts."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise InstrlabError(f"soundfont {path} cannot be read ({exc}); {INSTALL_HINT}") from exc
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise InstrlabError(
            f"soundfont {path} is not a valid SoundFont (.sf2/.sf3) file; "
            "re-download or reinstall it, or pick another with --soundfont"
        )
