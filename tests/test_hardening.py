"""Hardening (issue 13): names cannot escape the cache, ./plugins runs only on purpose, and
bad device, model parameters and registered-model names fail at once with one line.

The command-line cases run as real processes (``python -m instrlab.cli`` in a temporary
working directory, ``INSTRLAB_CACHE`` in a temporary directory), all started together by
one module fixture so the file stays fast on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from instrlab import plugins
from instrlab.dataset.config import DatasetConfig, safe_component
from instrlab.errors import InstrlabError, PluginError
from instrlab.models.factory import ModelConfig, build_model
from instrlab.registry import NAME_RULE, Registry, instrument_sets
from instrlab.training.config import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent

EVIL_TOML = """name = "../../escape"
[[instruments]]
name = "piano"
program = 0
"""
PAYLOAD = """from pathlib import Path
Path(__file__).resolve().parent.parent.joinpath("PWNED").write_text("ran")
"""
QUITTER = "import sys\nsys.exit(3)\n"
MAIN = ["main", "--n-samples", "8", "--epochs", "1", "--no-progress"]

# case -> (arguments, plugin files in ./plugins, opt in to ./plugins)
CASES: dict[str, tuple[list[str], dict[str, str], bool]] = {
    "traversal": (["generate", "--instruments", "../../escape", "--n-samples", "8", "--quiet"],
                  {"evil.toml": EVIL_TOML}, True),
    "untrusted": (["list"], {"payload.py": PAYLOAD}, False),
    "opted_in": (["list"], {"payload.py": PAYLOAD}, True),
    "exits": (["list"], {"quit.py": QUITTER}, True),
    "device": ([*MAIN, "--device", "tpu"], {}, False),
    "model_param": ([*MAIN, "--model-param", "width=-4"], {}, False),
    "register": ([*MAIN, "--register-model", "../../evil/name"], {}, False),
}


@dataclass
class Run:
    root: Path
    """Holds ``work`` (the working directory) and ``cache`` ($INSTRLAB_CACHE)."""
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every case of :data:`CASES`, run at the same time as real processes."""
    started = {}
    for case, (args, files, opt_in) in CASES.items():
        root = tmp_path_factory.mktemp(case)
        work = root / "work"
        work.mkdir()
        for name, text in files.items():
            (work / "plugins").mkdir(exist_ok=True)
            (work / "plugins" / name).write_text(text)
        env = {k: v for k, v in os.environ.items()
               if k not in ("INSTRLAB_PLUGINS", "INSTRLAB_SOUNDFONT", "MLFLOW_TRACKING_URI")}
        env.update(COLUMNS="200", INSTRLAB_CACHE=str(root / "cache"))
        if opt_in:
            env["INSTRLAB_PLUGINS"] = "./plugins"
        proc = subprocess.Popen([sys.executable, "-m", "instrlab.cli", *args], cwd=work,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        started[case] = (root, proc, time.monotonic())
    results = {}
    for case, (root, proc, t0) in started.items():
        out, err = proc.communicate(timeout=300)
        results[case] = Run(root, proc.returncode, out, err, time.monotonic() - t0)
    return results


def one_line_error(run: Run, *fragments: str) -> str:
    lines = run.stderr.splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("instrlab: error: "), run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# --- names cannot leave the cache -----------------------------------------------------------

def test_traversal_instrument_set_is_rejected_and_writes_nothing(runs: dict[str, Run]) -> None:
    run = runs["traversal"]
    one_line_error(run, "'../../escape'", NAME_RULE)
    assert sorted(p.name for p in run.root.iterdir()) == ["work"]  # no cache, no escape-*
    assert sorted(p.name for p in (run.root / "work").iterdir()) == ["plugins"]


def test_traversal_toml_set_is_rejected_when_loaded(isolated: Path) -> None:
    path = isolated / "plugins" / "evil.toml"
    path.parent.mkdir()
    path.write_text(EVIL_TOML)
    with pytest.raises(PluginError) as info:
        instrument_sets.names()
    msg = str(info.value)
    assert msg.startswith(f"{path}: instrument set name '../../escape' is not a valid name")
    assert NAME_RULE in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "-x", "Upper", "a..b", "",
                                  "x" * 65, "tab\there", "new\nline", "x\n"])
def test_every_registry_rejects_bad_names(name: str) -> None:
    reg = Registry("widget")
    with pytest.raises(InstrlabError, match="widget name .* is not a valid name") as info:
        reg.register(name, lambda: None)
    assert NAME_RULE in str(info.value)
    assert reg._entries == {}


@pytest.mark.parametrize("name", ["seed12", "mel_cnn", "brass6", "my-set.v2", "x" * 64, "0"])
def test_registries_accept_good_names(name: str) -> None:
    reg = Registry("widget")
    reg.register(name, lambda: None)
    assert list(reg._entries) == [name]


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(InstrlabError, match="widget name '<lambda>' is not a valid name"):
        Registry("widget").register(factory=lambda: None)


@pytest.mark.parametrize("key", ["instruments", "features", "synth"])
def test_dataset_config_rejects_names_that_are_not_one_path_component(key: str) -> None:
    with pytest.raises(InstrlabError, match=f"data.{key} '../../x' is not a valid name"):
        DatasetConfig(**{key: "../../x"})


def test_safe_component() -> None:
    assert safe_component("seed12-logmel-n8-0123456789abcdef") == (
        "seed12-logmel-n8-0123456789abcdef")
    for bad in ("", ".", "..", "a/b", "../a", "a\\b", "a\0b", "x" * 256):
        with pytest.raises(InstrlabError, match="is not a safe directory name"):
            safe_component(bad)


# --- ./plugins runs only on purpose ---------------------------------------------------------

def test_untrusted_plugins_directory_is_not_imported(runs: dict[str, Run]) -> None:
    run = runs["untrusted"]
    assert run.returncode == 0, run.stderr
    assert not (run.root / "work" / "PWNED").exists()
    skipped = [line for line in run.stdout.splitlines() if "skipped ./plugins" in line]
    assert len(skipped) == 1 and "INSTRLAB_PLUGINS=./plugins" in skipped[0], run.stdout
    assert "plugins: no plugin directory" in run.stdout


def test_plugins_directory_named_by_instrlab_plugins_is_imported(runs: dict[str, Run]) -> None:
    run = runs["opted_in"]
    assert run.returncode == 0, run.stderr
    assert (run.root / "work" / "PWNED").read_text() == "ran"
    assert (f"plugins: directory {run.root / 'work' / 'plugins'} (named by INSTRLAB_PLUGINS)"
            in run.stdout)
    assert "skipped" not in run.stdout


def test_the_checkout_loads_its_own_plugins_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from this (editable) checkout, ``./plugins`` is the project's and loads."""
    assert plugins.PROJECT_ROOT == PROJECT_ROOT
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv(plugins.PATH_VARIABLE, raising=False)
    assert plugins.plugin_dirs() == [PROJECT_ROOT / "plugins"]


def test_plugin_calling_sys_exit_is_one_line(runs: dict[str, Run]) -> None:
    run = runs["exits"]
    one_line_error(run, f"plugin {run.root / 'work' / 'plugins' / 'quit.py'}",
                   "called sys.exit(3)")
    assert run.stdout == ""


def test_entry_point_calling_sys_exit_is_a_plugin_error(isolated: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "instrlab_test_quit-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: instrlab_test_quit\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[instrlab.plugins]\nquit = instrlab_test_quit:register\n")
    (site / "instrlab_test_quit.py").write_text(textwrap.dedent("""
        import sys

        def register():
            sys.exit("bye")
    """))
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"entry point quit .* called sys.exit\('bye'\)"):
        instrument_sets.names()
    assert not plugins._loaded


# --- bad settings fail before any work ------------------------------------------------------

@pytest.mark.parametrize(("case", "fragments"), [
    ("device", ["device = 'tpu' is unknown", "cuda:N"]),
    ("model_param", ["model 'mel_cnn' rejected its parameters (width=-4)",
                     "negative dimension"]),
    ("register", ["--register-model '../../evil/name'", "cannot contain '/'"]),
])
def test_bad_settings_fail_at_once(runs: dict[str, Run], case: str,
                                   fragments: list[str]) -> None:
    run = runs[case]
    one_line_error(run, *fragments)
    assert run.stdout == ""
    assert sorted(p.name for p in run.root.iterdir()) == ["work"]  # no cache
    assert list((run.root / "work").iterdir()) == []  # no MLflow store either
    assert run.seconds < 60  # imports only, even with the other cases running beside it


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_devices_training_accepts(device: str) -> None:
    assert TrainConfig(device=device).device == device


@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:x", "CPU", "cuda:0 "])
def test_devices_training_rejects(device: str) -> None:
    with pytest.raises(InstrlabError, match="device = .* is unknown"):
        TrainConfig(device=device)


@pytest.mark.parametrize(("params", "message"), [
    ({"width": -4}, r"rejected its parameters \(width=-4\): RuntimeError"),
    ({"dropout": 2}, r"rejected its parameters \(dropout=2\): ValueError"),
    ({"width": 0}, r"\(width=0\) cannot take features of shape"),
    ({"n_blocks": -1}, r"mel_cnn needs n_blocks >= 1, got -1"),
    ({"n_blocks": 0}, r"mel_cnn needs n_blocks >= 1, got 0"),
])
def test_build_model_errors_are_one_line(params: dict, message: str,
                                         recwarn: pytest.WarningsRecorder) -> None:
    with pytest.raises(InstrlabError, match=message) as info:
        build_model(ModelConfig("mel_cnn", params), (128, 431), 12)
    assert "\n" not in str(info.value) and "--model-param" in str(info.value)
    assert not [w for w in recwarn if "zero-element" in str(w.message)]


@pytest.mark.parametrize("kind", ["a file", "under a file", "in /proc"])
def test_generate_out_that_cannot_hold_a_dataset_is_one_line(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = {"a file": blocker, "under a file": blocker / "sub",
           "in /proc": Path("/proc/instrlab-test-out")}[kind]
    proc = subprocess.run(
        [sys.executable, "-m", "instrlab.cli", "generate", "--n-samples", "2", "--workers", "1",
         "--quiet", "--preset", "plain", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "INSTRLAB_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("instrlab: error: "), proc.stderr
    assert str(out.parent if kind == "under a file" else out) in lines[0]
    assert blocker.read_text() == "x"
