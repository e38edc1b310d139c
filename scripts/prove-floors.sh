#!/usr/bin/env bash
# Prove the minimum runtime versions ("floors") of instrlab's direct dependencies.
#
#   usage: scripts/prove-floors.sh SRC_DIR [VENV_DIR]
#
# Creates a fresh venv (default ${TMPDIR:-/tmp}/instrlab-floors/venv), installs torch==2.13.0 first (the CPU wheel
# in /opt/wheels; any other torch is a multi-GB CUDA build from PyPI), then exactly the floor
# versions below in one resolver run, then SRC_DIR with --no-deps -e, and runs
#   instrlab main --n-samples 64 --epochs 1
#   instrlab tune --n-samples 64 --epochs 1 --n-trials 2
# in an empty working directory with a fresh INSTRLAB_CACHE (so synthesis really runs) and
# MLflow's default store (MLflow 3.11: sqlite:///mlflow.db in that directory, i.e. SQLAlchemy +
# alembic are exercised). Extra checks: the same tune against an SQLite Optuna storage
# (instrlab's own SQLAlchemy code) and the repo's fast unit tests. Exit status 0 = all passed.
# Indirect dependencies are not pinned: pip picks the newest that fit the floors; the exact
# set this run resolved is written to ${TMPDIR:-/tmp}/instrlab-floors/freeze.txt (runtime set, before pytest).
set -u -o pipefail

SRC=$(realpath "${1:?usage: prove.sh SRC_DIR [VENV_DIR]}")
VENV=${2:-${TMPDIR:-/tmp}/instrlab-floors/venv}
OUTDIR=${TMPDIR:-/tmp}/instrlab-floors
export INSTRLAB_CACHE=${INSTRLAB_CACHE:-${TMPDIR:-/tmp}/instrlab-floors/cache}
unset MLFLOW_TRACKING_URI MLFLOW_EXPERIMENT_ID MLFLOW_EXPERIMENT_NAME

FLOORS=(
  torch==2.13.0        # proven; API-derived floor is 2.3 (torch.amp.GradScaler, NumPy 2 ABI)
  numpy==2.0.0         # scores.py: uint64 >> int needs NEP 50 promotion (NumPy 2)
  pandas==2.2.2        # serving.py/pipeline.py DataFrames; first built against NumPy 2 (2.2.1: numpy<2)
  scipy==1.13.0        # first SciPy built against NumPy 2
  scikit-learn==1.4.2  # first scikit-learn built against NumPy 2
  matplotlib==3.8.4    # first Matplotlib built against NumPy 2
  librosa==0.10.2      # 0.10.0/0.10.1 import pkg_resources (gone from setuptools>=81)
  soundfile==0.12.1    # librosa 0.10.2 requires soundfile>=0.12.1
  mido==1.1.14         # bpm2tempo from 1.1.11; 1.1.13 fails the MIDI round trip
  pyfluidsynth==1.3.3  # 1.3.0 crashes on Synth(**settings); 1.3.1/1.3.2 ignore samplerate
  optuna==4.0.0        # optuna.storages.journal.JournalFileBackend
  rich==12.6.0         # Table.add_section (TaskProgressColumn: 12.3)
  mlflow==3.11.1       # proven; pyfunc.log_model(name=...) needs MLflow 3, older 3.x not tried
  sqlalchemy==1.4.41   # URL.set/render_as_string need 1.4; 1.4.41 = first cp311 wheel
  safetensors==0.4.0   # safetensors.torch save_file/load_file of model weights
  music21==10.5.1      # the real-music evaluation's corpus; the only release tried
  psutil==5.9.4        # system metrics; the oldest release with a CPython 3.11 wheel
)

log() { printf '\n=== %s\n' "$*"; }

log "fresh venv $VENV (python: $(python3 --version))"
rm -rf "$VENV"
python3 -m venv "$VENV" || exit 1
PIP=("$VENV/bin/pip" --disable-pip-version-check)

log "torch==2.13.0 first (CPU wheel from /opt/wheels)"
"${PIP[@]}" install -q torch==2.13.0 || exit 1

log "floors: ${FLOORS[*]}"
"${PIP[@]}" install -q "${FLOORS[@]}" || exit 1

log "instrlab from $SRC (--no-deps -e)"
cd "$OUTDIR" || exit 1
"${PIP[@]}" install -q --no-deps -e "$SRC" >/dev/null || exit 1
# instrlab's own declared ranges may sit above the floors (that is the point): report them,
# but fail only when the floors and their dependencies conflict among themselves
"${PIP[@]}" check > pipcheck.txt 2>&1
grep '^instrlab ' pipcheck.txt | sed 's/^/note (declared range above floor): /'
if grep -v '^instrlab ' pipcheck.txt | grep -qv '^No broken requirements'; then
  grep -v '^instrlab ' pipcheck.txt; exit 1
fi
rm -f pipcheck.txt
"${PIP[@]}" freeze --exclude-editable > "$OUTDIR/freeze.txt"
echo "freeze: $OUTDIR/freeze.txt ($(wc -l < "$OUTDIR/freeze.txt") packages)"

# the floors really are what got installed
"$VENV/bin/python" - "${FLOORS[@]}" <<'EOF' || exit 1
import sys
from importlib.metadata import version
bad = []
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    got = version(name)
    if got.split("+")[0] != want:
        bad.append(f"{name}: want {want}, got {got}")
print("installed floors match" if not bad else "\n".join(bad))
sys.exit(1 if bad else 0)
EOF

rm -rf "$INSTRLAB_CACHE"  # fresh cache: generation (FluidSynth, mido, soundfile, scipy) runs
WORK=$(mktemp -d "$OUTDIR/work.XXXXXX")
cd "$WORK" || exit 1
echo "working dir: $WORK   INSTRLAB_CACHE=$INSTRLAB_CACHE"
declare -A RC

log "instrlab main --n-samples 64 --epochs 1"
"$VENV/bin/instrlab" main --n-samples 64 --epochs 1 2>&1 | tee main.log
RC[main]=${PIPESTATUS[0]}

log "instrlab tune --n-samples 64 --epochs 1 --n-trials 2"
"$VENV/bin/instrlab" tune --n-samples 64 --epochs 1 --n-trials 2 2>&1 | tee tune.log
RC[tune]=${PIPESTATUS[0]}

log "extra: instrlab tune ... --storage sqlite:///$WORK/optuna.db"
"$VENV/bin/instrlab" tune --n-samples 64 --epochs 1 --n-trials 2 \
  --storage "sqlite:///$WORK/optuna.db" > tune_sqlite.log 2>&1
RC[tune_sqlite]=$?
tail -3 tune_sqlite.log

log "extra: generate --keep-audio 2 (MIDI files written by mido, read back) + FluidSynth rate"
"$VENV/bin/instrlab" generate --n-samples 16 --keep-audio 2 --workers 1 --out "$WORK/gen" \
  > generate.log 2>&1 && "$VENV/bin/python" - "$WORK/gen" <<'EOF'
import pathlib, sys

import fluidsynth
import mido

mids = sorted(pathlib.Path(sys.argv[1]).rglob("*.mid"))
assert mids, "no .mid written"
print(len(mids), "MIDI files; first lasts", round(mido.MidiFile(mids[0]).length, 3), "s")
s = fluidsynth.Synth(gain=0.2, samplerate=22050, channels=16)  # an int, as instrlab passes it
rate = s.get_setting("synth.sample-rate")
print("FluidSynth sample rate asked 22050, got", rate)
assert rate == 22050, "pyfluidsynth ignores the sample rate"
EOF
RC[generate]=$?
tail -3 generate.log

log "extra: fast unit tests"
"${PIP[@]}" install -q pytest || exit 1
(cd "$SRC" && "$VENV/bin/python" -m pytest -q -x -p no:cacheprovider tests/test_metrics.py \
  tests/test_scores.py tests/test_registry.py tests/test_features.py tests/test_models.py \
  2>&1 | tail -3)
RC[unit]=${PIPESTATUS[0]}

log "results"
status=0
for k in main tune tune_sqlite generate unit; do
  echo "$k: exit ${RC[$k]}"
  [ "${RC[$k]}" -eq 0 ] || status=1
done
exit $status
