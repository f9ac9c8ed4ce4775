"""The experiment scripts run end to end: XOR's --quick version as a subprocess, into tmp_path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def run_script(name, out, *flags, timeout=80):
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(out / "cache"))
    env.pop("XLA_FLAGS", None)  # one CPU device is enough; the 8 simulated ones only slow it down
    return subprocess.run([sys.executable, str(EXPERIMENTS / name), "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_xor_quick_writes_results(tmp_path):
    proc = run_script("xor.py", tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "xor.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "xor.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick"
    outputs = results["outputs"]
    assert len(outputs) == 2
    for o in outputs.values():
        assert len(o) == 4 and all(0.0 <= v <= 1.0 for v in o)
    for run in results["runs"].values():
        assert run["status"] == "finished" and run["step"] == 1000
    table = (tmp_path / "table.md").read_text()
    assert "0.0057" in table and "--quick" in table  # the report's number beside ours, mode stated


def test_missing_dataset_is_reported(tmp_path):
    """notMNIST is not shipped: the script says so and exits 3 instead of crashing or downloading."""
    env_dir = tmp_path / "empty"
    env_dir.mkdir()
    env = dict(os.environ, JDFA_DATA_DIR=str(env_dir), JDFA_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(EXPERIMENTS / "fp_depth15.py"), "--quick", "--dataset", "notmnist",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60, env=env)
    if proc.returncode == 0:
        pytest.skip("a notMNIST archive is present on this machine")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "MISSING" in proc.stderr
