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


def test_jobs_give_the_numbers_of_serial_runs(tmp_path):
    """``--jobs 2`` trains each run in its own process; every metric but the timings is the
    serial run's, and the runs are read back from their folders."""
    code = f"""
import json, sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common
config = dict(rule="dfa", depth=1, width=4, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
              optimizer="sgd", lr=0.5, batch_size=1, steps=120, eval_every=40)
runs = {{f"seed{{s}}": dict(config, seed=s) for s in (0, 1)}}
for jobs in (2, 1):
    args = common.parse_args("", "t", datasets=("xor",), argv=["--out", {str(tmp_path)!r} + f"/jobs{{jobs}}",
                                                             "--jobs", str(jobs)])
    done = common.run_all(args, runs, data=common.load_data(args))
    print(json.dumps({{tag: [{{k: v for k, v in rec.items() if k not in ("wall_s", "steps_per_s")}} for rec in r["records"]]
                      for tag, r in done.items()}}))
"""
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parallel, serial = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    assert parallel == serial
    assert sorted(parallel) == ["seed0", "seed1"] and len(parallel["seed0"]) == 3
    assert parallel["seed0"] != parallel["seed1"]
    for tag in parallel:  # trained by a child process (its log), not in the parent
        assert (tmp_path / "jobs2" / "runs" / f"{tag}.log").is_file()
        assert not (tmp_path / "jobs1" / "runs" / f"{tag}.log").exists()


def test_a_half_written_run_folder_is_not_reused(tmp_path):
    """A run folder holding a summary but not its config (a run stopped while its folder was being
    replaced) is retrained, not read back or crashed on."""
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "summary.json").write_text('{"status": "interrupted"}')
    code = f"""
import sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common
print(common.load_run({str(tmp_path / "runs" / "r")!r}))
"""
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "None"
