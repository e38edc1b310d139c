"""Dataset builds: layout, worker-count independence, cache reuse, resume, statistics,
splits, the torch Dataset and kept audio. All builds are real and tiny."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_config

from instrlab.dataset import DatasetConfig, build, generate_dataset, open_dataset, split_indices
from instrlab.dataset.config import identity_digest
from instrlab.dataset.render import SampleRenderer
from instrlab.dataset.stats import compute_stats
from instrlab.dataset.store import FeatureDataset, SynthDataset
from instrlab.errors import InstrlabError
from instrlab.reports import stats_table
from instrlab.scores import ScoreConfig

N = 64  # conftest.TINY_N


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


# --- layout -------------------------------------------------------------------------------

def test_finished_dataset_layout(tiny_dataset: SynthDataset) -> None:
    path = tiny_dataset.path
    assert sorted(p.name for p in path.iterdir()) == [
        "COMPLETE", "config.json", "examples", "features.npy", "labels.npy", "manifest.jsonl",
        "stats.json"]
    assert not path.with_name(path.name + ".partial").exists()
    assert (path / "COMPLETE").read_text().strip() == tiny_dataset.digest

    feats, labels = tiny_dataset.features, tiny_dataset.labels
    assert isinstance(feats, np.memmap)  # memory-mapped, not loaded
    assert feats.shape == (N, 128, 431) and feats.dtype == np.float16
    assert labels.shape == (N, 12) and labels.dtype == np.uint8
    assert len(tiny_dataset) == N
    assert np.isfinite(feats).all() and float(feats.max()) == 0.0 and float(feats.min()) >= -80
    assert set(np.unique(labels)) == {0, 1}
    assert ((labels.sum(1) >= 1) & (labels.sum(1) <= 4)).all()

    meta = tiny_dataset.meta
    assert meta["shape"] == [128, 431] and meta["dtype"] == "float16"
    assert meta["instrument_names"][0] == "acoustic_grand_piano"
    assert tiny_dataset.instrument_labels[0] == "Acoustic Grand Piano"
    ident = meta["identity"]
    synths = ident["synth"] if isinstance(ident["synth"], list) else [ident["synth"]]
    assert [s["soundfont"] for s in synths] == ["FluidR3_GM.sf2"]
    assert len(synths[0]["soundfont_sha256"]) == 64
    assert ident["generator_version"]
    assert ident["features"]["name"] == "logmel"
    assert tiny_dataset.config == tiny_config()


def test_manifest_matches_labels_and_keeps_stem_levels(tiny_dataset: SynthDataset) -> None:
    manifest = tiny_dataset.manifest()
    names = tiny_dataset.instrument_names
    assert [r["index"] for r in manifest] == list(range(N))
    assert len({r["seed"] for r in manifest}) == N
    for rec, row in zip(manifest, tiny_dataset.labels):
        assert [names[i] for i in np.flatnonzero(row)] == rec["instruments"]
        assert {n[0] for n in rec["notes"]} == set(rec["instruments"])
        assert len(rec["stem_level_db"]) == len(rec["stem_gain_db"]) == len(rec["instruments"])
        for level, gain in zip(rec["stem_level_db"], rec["stem_gain_db"]):
            assert level + gain == pytest.approx(-20.0, abs=0.002)  # MixConfig.stem_rms_db
        for _name, pitch, velocity, start, end in rec["notes"]:
            assert 60 <= pitch <= 72 and 50 <= velocity <= 100 and 0 <= start < end <= 5.0


def test_any_sample_can_be_regenerated_alone(tiny_dataset: SynthDataset) -> None:
    """Rendering sample i on its own gives the stored bytes (no dependence on neighbours)."""
    renderer = SampleRenderer(tiny_dataset.config)
    for index in (45, 0, 63):
        result = renderer.render(index)
        assert np.array_equal(result.features, tiny_dataset.features[index]), index
        assert np.array_equal(result.labels, tiny_dataset.labels[index])
        assert result.record == tiny_dataset.manifest()[index]


# --- determinism and identity -------------------------------------------------------------

def test_worker_count_does_not_change_the_bytes(tiny_dataset: SynthDataset, make_config,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # small builds normally stay in-process; make this one use the real worker pool
    monkeypatch.setattr(build, "MIN_PARALLEL", 0)
    monkeypatch.setattr(build, "_worker", {})
    path = generate_dataset(make_config(), out=tmp_path / "w2", workers=2, keep_audio=2,
                            progress=False)
    assert build._worker == {}  # every chunk was rendered by a worker process
    for name in ("features.npy", "labels.npy", "manifest.jsonl", "stats.json"):
        assert same_bytes(path / name, tiny_dataset.path / name), name
    meta = json.loads((path / "config.json").read_text())
    assert meta.pop("name") == "w2"
    assert meta == {k: v for k, v in tiny_dataset.meta.items() if k != "name"}
    for name in ("000000.wav", "000000.mid", "000001.wav", "000001.mid"):
        assert same_bytes(path / "examples" / name, tiny_dataset.path / "examples" / name)


def test_identity_covers_config_soundfont_and_features() -> None:
    base = DatasetConfig(n_samples=8)

    def digest(cfg: DatasetConfig) -> str:
        return identity_digest(SampleRenderer(cfg).identity())

    d0 = digest(base)
    assert d0 == digest(DatasetConfig(n_samples=8))
    # the soundfont counts by content, not by how its path is spelled
    assert d0 == digest(DatasetConfig(n_samples=8, soundfont="FluidR3_GM.sf2"))
    others = {
        digest(DatasetConfig(n_samples=8, seed=1)),
        digest(DatasetConfig(n_samples=9)),
        digest(DatasetConfig(n_samples=8, features="seed_image")),
        digest(DatasetConfig(n_samples=8, score=ScoreConfig(max_instruments=3))),
    }
    sf3 = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
    if sf3.is_file():
        others.add(digest(DatasetConfig(n_samples=8, soundfont=str(sf3))))
    assert d0 not in others and len(others) == 4 + sf3.is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 0}, "n_samples must be a whole number in 1..10000000, got 0"),
        ({"n_samples": -5}, "got -5"),
        ({"n_samples": 2.5}, "got 2.5"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InstrlabError, match=message):
        DatasetConfig(**kwargs)


def test_config_round_trip() -> None:
    cfg = DatasetConfig(n_samples=10, score=ScoreConfig(note_seconds=(0.2, 1.0)),
                        feature_params={"n_mels": 64})
    assert DatasetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InstrlabError, match="unknown dataset config keys: colour"):
        DatasetConfig.from_dict({"colour": 1})
    assert cfg.flat_params()["data.score.note_seconds"] == (0.2, 1.0)


# --- cache and resume ---------------------------------------------------------------------

def test_cache_reuse(isolated: Path) -> None:
    cfg = DatasetConfig(n_samples=8, seed=3)
    first = generate_dataset(cfg, workers=1, progress=False)
    cache = Path(os.environ["INSTRLAB_CACHE"])
    assert first.parent == cache / "datasets"
    assert first.name.startswith("seed12-logmel-n8-")
    stamps = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    t0 = time.perf_counter()
    again = generate_dataset(cfg, workers=1, progress=False)
    assert time.perf_counter() - t0 < 5.0
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamps  # not rebuilt

    other = generate_dataset(DatasetConfig(n_samples=8, seed=4), workers=1, progress=False)
    assert other != first and other.parent == first.parent


def test_out_that_holds_something_else(tiny_dataset: SynthDataset, tmp_path: Path) -> None:
    with pytest.raises(InstrlabError, match="holds another dataset"):
        generate_dataset(DatasetConfig(n_samples=8), out=tiny_dataset.path, progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InstrlabError, match="exists and is not a finished instrlab dataset"):
        generate_dataset(DatasetConfig(n_samples=8), out=busy, progress=False)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "busy.partial").exists()


def test_bad_build_arguments_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InstrlabError, match="workers must be >= 0"):
        generate_dataset(DatasetConfig(n_samples=8), out=out, workers=-1, progress=False)
    with pytest.raises(InstrlabError, match="keep_audio must be >= 0"):
        generate_dataset(DatasetConfig(n_samples=8), out=out, keep_audio=-1, progress=False)
    with pytest.raises(InstrlabError, match="max_instruments"):
        generate_dataset(DatasetConfig(n_samples=8, score=ScoreConfig(max_instruments=13)),
                         out=out, progress=False)
    assert list(tmp_path.iterdir()) == []


BUILD_SCRIPT = """
import json
import sys
from pathlib import Path
from instrlab.dataset import DatasetConfig, generate_dataset
generate_dataset(DatasetConfig.from_dict(json.loads(sys.argv[2])),
                 out=Path(sys.argv[1]), workers=1,
                 keep_audio=2, progress=False)
"""


def test_resume_after_a_killed_build(tiny_dataset: SynthDataset, tmp_path: Path) -> None:
    """Kill a build after its first chunk; a partial never looks complete; rerun resumes
    (the finished chunk is not recomputed) and gives the bytes of an uninterrupted build."""
    out = tmp_path / "ds"
    partial = tmp_path / "ds.partial"
    cfg = tiny_config()  # the config of tiny_dataset, whose bytes the resumed build must give
    proc = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(out),
                             json.dumps(cfg.to_dict())],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list((partial / "chunks").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no chunk finished within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    done = sorted(p.name for p in (partial / "chunks").glob("*.json"))
    assert done == ["00000.json"], "the build finished before it could be interrupted"
    assert not out.exists() and not (partial / "COMPLETE").exists()
    with pytest.raises(InstrlabError, match="is incomplete"):
        open_dataset(partial)
    with pytest.raises(InstrlabError, match="does not exist"):
        open_dataset(out)

    # mark a value of the finished chunk 0: if the rerun recomputed it, the mark would go
    feats = np.load(partial / "features.npy", mmap_mode="r+")
    original = feats[0, 0, 0].copy()
    feats[0, 0, 0] = 12.5
    feats.flush()
    del feats

    path = generate_dataset(cfg, out=out, workers=1, keep_audio=2, progress=False)
    assert path == out and not partial.exists()
    ds = open_dataset(out)
    feats = np.load(out / "features.npy", mmap_mode="r+")
    assert feats[0, 0, 0] == 12.5  # chunk 0 was kept, not rendered again
    feats[0, 0, 0] = original
    feats.flush()
    del feats
    for name in ("features.npy", "labels.npy", "manifest.jsonl", "stats.json"):
        assert same_bytes(out / name, tiny_dataset.path / name), name
    assert ds.digest == tiny_dataset.digest


def test_stale_partial_of_another_config_is_discarded(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    partial = tmp_path / "ds.partial"
    (partial / "chunks").mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps({"digest": "0123456789abcdef"}))
    (partial / "chunks" / "00000.json").write_text("[]")
    (partial / "junk.bin").write_bytes(b"x")
    path = generate_dataset(DatasetConfig(n_samples=4, seed=1), out=out, workers=1,
                            progress=False)
    ds = open_dataset(path)
    assert len(ds.manifest()) == 4 and not (out / "junk.bin").exists()


def test_unfinished_or_damaged_directories_do_not_open(tiny_dataset: SynthDataset,
                                                      tmp_path: Path) -> None:
    with pytest.raises(InstrlabError, match="does not exist"):
        open_dataset(tmp_path / "nothing")
    half = tmp_path / "half"
    half.mkdir()
    for name in ("config.json", "features.npy", "labels.npy"):
        (half / name).write_bytes((tiny_dataset.path / name).read_bytes())
    with pytest.raises(InstrlabError, match="is incomplete"):
        open_dataset(half)
    (half / "COMPLETE").write_text("x")
    (half / "labels.npy").write_bytes(b"not numpy")
    with pytest.raises(InstrlabError, match="is corrupt"):
        open_dataset(half)


# --- statistics and splits ----------------------------------------------------------------

def test_statistics_match_the_labels(tiny_dataset: SynthDataset) -> None:
    stats = tiny_dataset.stats
    labels = tiny_dataset.labels
    names = tiny_dataset.instrument_names
    assert stats["n_samples"] == N
    assert stats["occurrences"] == {n: int(c) for n, c in zip(names, labels.sum(0))}
    assert sum(stats["occurrences"].values()) == int(labels.sum())
    for n in names:
        assert stats["occurrence_share"][n] == pytest.approx(stats["occurrences"][n] / N)
    hist = np.bincount(labels.sum(1), minlength=5)
    assert stats["instruments_per_sample"] == {str(k): int(hist[k]) for k in range(1, 5)
                                               if k < len(hist)}
    assert sum(stats["instruments_per_sample"].values()) == N
    table = stats_table(stats, names)
    assert table.row_count == 12 + len(stats["instruments_per_sample"])


def test_compute_stats_by_hand() -> None:
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 0, 1]], np.uint8)
    stats = compute_stats(labels, ["a", "b", "c"])
    assert stats["occurrences"] == {"a": 3, "b": 2, "c": 2}
    assert stats["occurrence_share"]["a"] == 0.75
    assert stats["instruments_per_sample"] == {"1": 2, "2": 1, "3": 1}


@pytest.mark.parametrize("n", [1000, 64, 7])
def test_split_is_disjoint_complete_and_deterministic(n: int) -> None:
    split = split_indices(n, seed=5)
    assert list(split) == ["train", "val", "test"]
    every = np.concatenate(list(split.values()))
    assert sorted(every.tolist()) == list(range(n))  # disjoint and covering
    if n == 1000:
        assert [len(v) for v in split.values()] == [700, 100, 200]
    for v in split.values():
        assert (np.diff(v) > 0).all()
    again = split_indices(n, seed=5)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    other = split_indices(n, seed=6)
    if n >= 64:
        assert not np.array_equal(split["test"], other["test"])


def test_split_fractions() -> None:
    split = split_indices(100, 0, {"a": 0.5, "b": 0.5})
    assert [len(v) for v in split.values()] == [50, 50]
    with pytest.raises(InstrlabError, match="sum to 1"):
        split_indices(100, 0, {"a": 0.5, "b": 0.6})


def test_dataset_split_uses_the_dataset_seed(tiny_dataset: SynthDataset) -> None:
    split = tiny_dataset.split()
    expected = split_indices(N, 7)
    assert all(np.array_equal(split[k], expected[k]) for k in expected)


# --- torch Dataset --------------------------------------------------------------------------

def test_feature_dataset(tiny_dataset: SynthDataset) -> None:
    import torch
    from torch.utils.data import DataLoader

    train = tiny_dataset.split()["train"]
    ds = tiny_dataset.torch_dataset(train)
    assert isinstance(ds, FeatureDataset) and len(ds) == len(train)
    assert ds._features is None  # nothing mapped until an item is read
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (128, 431)
    assert y.dtype == torch.float32 and y.shape == (12,)
    j = int(train[3])
    assert torch.equal(x, torch.from_numpy(tiny_dataset.features[j].astype(np.float32)))
    assert torch.equal(y, torch.from_numpy(tiny_dataset.labels[j].astype(np.float32)))

    items = [5, 0, 3, 3, len(ds) - 1]
    batch = ds.__getitems__(items)
    for i, (bx, by) in zip(items, batch):
        ix, iy = ds[i]
        assert torch.equal(bx, ix) and torch.equal(by, iy)

    loader = DataLoader(ds, batch_size=8, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 128, 431) and yb.shape == (8, 12) and xb.dtype == torch.float32
    assert len(FeatureDataset(tiny_dataset.path)) == N


# --- kept audio -----------------------------------------------------------------------------

def test_keep_audio_writes_wav_and_midi_for_the_first_k(tiny_dataset: SynthDataset) -> None:
    examples = tiny_dataset.path / "examples"
    assert sorted(p.name for p in examples.iterdir()) == [
        "000000.mid", "000000.wav", "000001.mid", "000001.wav"]
    manifest = tiny_dataset.manifest()
    for k in range(2):
        audio, sr = sf.read(examples / f"{k:06d}.wav", dtype="float32")
        assert sr == 44100 and audio.shape == (5 * 44100,)  # mono, the clip's length
        assert float(np.abs(audio).max()) == pytest.approx(10 ** (-1 / 20), abs=1e-3)
        mid = mido.MidiFile(examples / f"{k:06d}.mid")
        note_ons = [m for m in mid if m.type == "note_on" and m.velocity > 0]
        assert len(note_ons) == len(manifest[k]["notes"])
        assert [t.name for t in mid.tracks[1:]] == manifest[k]["instruments"]


def test_extractor_that_breaks_its_declared_shape(isolated: Path) -> None:
    (isolated / "plugins").mkdir()
    (isolated / "plugins" / "liar.py").write_text('''
import numpy as np
from instrlab.registry import features


class Liar:
    name = "liar"
    shape = (4,)

    def __init__(self, sample_rate=44100, clip_seconds=5.0):
        self.sample_rate, self.n_samples = sample_rate, int(sample_rate * clip_seconds)

    def __call__(self, audio):
        return np.zeros(5, np.float32)

    def params(self):
        return {"name": self.name}


features.register("liar", lambda **kw: Liar(**kw))
''')
    out = isolated / "ds"
    with pytest.raises(InstrlabError, match=r"'liar' returned shape \(5,\), not its declared "
                                            r"shape \(4,\)"):
        generate_dataset(DatasetConfig(n_samples=2, features="liar"), out=out, progress=False)
    assert not out.exists()
    with pytest.raises(InstrlabError, match="is incomplete"):
        open_dataset(isolated / "ds.partial")
