"""Shared fixtures: a tiny real dataset, a FluidSynth backend, and an isolated plugin world.

Everything here is real: FluidSynth renders with the installed FluidR3_GM soundfont and
datasets are built by :func:`instrlab.dataset.generate_dataset`. Configurations are tiny
so the whole foundation suite stays within a couple of minutes on two cores.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instrlab import plugins, registry
from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset
from instrlab.dataset.store import SynthDataset
from instrlab.scores import ScoreConfig
from instrlab.synth.augment import AugmentConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PLUGINS = PROJECT_ROOT / "plugins"

TINY_N = 64  # two chunks of 32: enough for worker, resume and split tests
TINY_KEEP_AUDIO = 2


def tiny_config(**overrides: object) -> DatasetConfig:
    """The small seed12/logmel config the dataset tests share (2 chunks of 32 samples):
    the seed's protocol (FluidR3 alone, pitches 60..72, clean clips)."""
    kw: dict[str, object] = {"n_samples": TINY_N, "seed": 7, "augment": AugmentConfig(),
                             "extra_soundfonts": (), "soundfont_per": "sample",
                             "score": ScoreConfig()}
    kw.update(overrides)
    return DatasetConfig(**kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def make_config():  # noqa: ANN201 - Callable[..., DatasetConfig]
    """:func:`tiny_config`, for tests that build their own variant of the tiny dataset."""
    return tiny_config


def _plugin_modules() -> dict[str, object]:
    """Modules imported from plugin files (and test entry points), by name."""
    return {name: mod for name, mod in sys.modules.items()
            if name.startswith(("instrlab_plugin_", "instrlab_test_"))}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean world for plugin and CLI tests; yields the temporary working directory.

    - the working directory is an empty temporary directory (so ``./plugins`` is not
      the project's) and ``INSTRLAB_CACHE`` points into it; it stands in for the
      instrlab checkout (``plugins.PROJECT_ROOT``), so its ``./plugins`` loads;
    - ``INSTRLAB_PLUGINS`` and ``INSTRLAB_SOUNDFONT`` are unset;
    - the registries hold only the built-in components and plugins load again on the
      next lookup; afterwards the registries, the "plugins loaded" flag and
      ``sys.modules`` are restored, so plugins registered by a test leave no trace.
    """
    for reg in registry.ALL.values():  # built-ins register on first import
        for name in reg.builtin_modules:
            importlib.import_module(name)
    saved = {kind: dict(reg._entries) for kind, reg in registry.ALL.items()}
    saved_loaded = list(plugins._loaded)
    saved_modules = _plugin_modules()
    for name in saved_modules:  # so that plugin files load (and register) again
        del sys.modules[name]

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(plugins, "PROJECT_ROOT", work)
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(plugins.PATH_VARIABLE, raising=False)
    monkeypatch.delenv("INSTRLAB_SOUNDFONT", raising=False)
    for reg in registry.ALL.values():
        for name, entry in list(reg._entries.items()):
            if entry.source != registry.BUILTIN:
                reg.unregister(name)
    plugins._loaded.clear()
    try:
        yield work
    finally:
        for kind, reg in registry.ALL.items():
            reg._entries.clear()
            reg._entries.update(saved[kind])
        plugins._loaded[:] = saved_loaded
        for name in _plugin_modules():
            del sys.modules[name]
        sys.modules.update(saved_modules)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthDataset:
    """A real seed12/logmel dataset of 64 samples, built once, in one process."""
    out = tmp_path_factory.mktemp("tiny") / "dataset"
    path = generate_dataset(tiny_config(), out=out, workers=1, keep_audio=TINY_KEEP_AUDIO,
                            progress=False)
    return open_dataset(path)


@pytest.fixture(scope="session")
def synth():  # noqa: ANN201 - FluidSynthBackend
    """One FluidSynth backend with the default soundfont (FluidR3_GM)."""
    from instrlab.synth import FluidSynthBackend

    backend = FluidSynthBackend()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def seed12():  # noqa: ANN201 - InstrumentSet
    from instrlab.instruments import get_instrument_set

    return get_instrument_set("seed12")


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-music evaluation's parsed corpus (music21's quartets, parsed over the cores),
    built once: copy it into a test's cache with :func:`with_corpus`."""
    from instrlab.scores.corpus import load_corpus

    root = tmp_path_factory.mktemp("corpus-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("INSTRLAB_CACHE", str(root))
    try:
        load_corpus.cache_clear()  # parse here, so the file is written under root
        load_corpus()
    finally:
        mp.undo()
    return root / "corpus"


def with_corpus(corpus: Path, cache: Path) -> Path:
    """``cache`` (an INSTRLAB_CACHE) holding the parsed corpus of ``corpus_cache``."""
    import shutil

    shutil.copytree(corpus, cache / "corpus", dirs_exist_ok=True)
    return cache


def tracked_store(root: Path) -> tuple[pytest.MonkeyPatch, str]:
    """Work in ``root`` with its own dataset cache and SQLite MLflow store; returns the
    patch to undo and the tracking URI."""
    import mlflow

    mp = pytest.MonkeyPatch()
    mp.setenv("INSTRLAB_CACHE", str(root / "cache"))
    mp.chdir(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return mp, uri


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """INSTRLAB_TEST_POSTGRES_URL (scripts/test sets it), else one server for the session."""
    url = os.environ.get("INSTRLAB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = PROJECT_ROOT / "scripts" / "postgres-test.sh"
    proc = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail("the PostgreSQL tests need a server: set INSTRLAB_TEST_POSTGRES_URL or let "
                    f"scripts/postgres-test.sh start one; it said:\n{proc.stderr}")
    url, folder = proc.stdout.split()
    yield url
    subprocess.run(["bash", str(script), "stop", folder], check=False)
