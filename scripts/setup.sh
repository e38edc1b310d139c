#!/usr/bin/env bash
# Installs what instrlab needs on a Debian/Ubuntu machine, skipping what is already there:
# system packages (FluidSynth, soundfonts) through apt, a virtualenv in .venv, torch (the
# CPU build pinned below, before anything else can pull a CUDA build), then the package
# itself in editable mode with its test extras. Sourced by scripts/run and scripts/test.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${INSTRLAB_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${INSTRLAB_TORCH:-torch==2.13.0}
# FluidR3 (training, the seed), MuseScore_General (shares 9 of seed12's presets with FluidR3),
# TimGM6mb and csound's sf_GMbank (independent recordings): the sample families instrlab tests
APT_PACKAGES=(libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont
              csound-soundfont)
say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing_apt+=("$pkg")
done
if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    missing_apt+=(python3-venv)
fi
if ((${#missing_apt[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing system packages: ${missing_apt[*]}, and apt-get is not available."
        say "install FluidSynth 2 (libfluidsynth), the FluidR3_GM, MuseScore_General, TimGM6mb and sf_GMbank (csound) soundfonts and python3-venv with your package manager, then run this again."
        exit 1
    fi
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "need root or sudo to apt-get install ${missing_apt[*]}"; exit 1; }
        SUDO=(sudo)
    fi
    say "apt-get install ${missing_apt[*]}"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp="$VENV/.instrlab-installed"
want=$(cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
        say "pip install $TORCH_SPEC"
        "${PIP[@]}" install "$TORCH_SPEC"
    fi
    say "pip install -e .[dev]"
    "${PIP[@]}" install -e "$ROOT[dev]"
    echo "$want" > "$stamp"
fi
# the real-music evaluation's corpus, parsed once per cache directory (about 20 s on 2 cores) here,
# with the rest of the set-up, rather than in the first run; later calls read the cache file
"$VENV/bin/python" -c 'from instrlab.scores.corpus import load_corpus; load_corpus()'
# the default trains on two procedural sample families too: installed into the virtualenv beside
# the apt soundfonts (about 40 s each, both at once), skipped when there
"$VENV/bin/python" - <<'PY'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from instrlab.config import PROCEDURAL_FAMILIES
from instrlab.synth.procedural import family_file, procedural_soundfont

folder = Path(sys.prefix, "share", "soundfonts")
seeds = [int(name.split(":")[1]) for name in PROCEDURAL_FAMILIES]
todo = [s for s in seeds if not (folder / family_file(s)).is_file()]
if todo:
    print(f"setup: building procedural families {todo} into {folder}", file=sys.stderr)
    with ProcessPoolExecutor(len(todo)) as pool:
        list(pool.map(procedural_soundfont, todo, [folder] * len(todo)))
PY
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
