"""benchmarks/sweep_throughput.py: a tiny run writes one record per (configuration, rule, N, schedule)
with the expected fields and a conclusion; --quick never writes into benchmarks/results/."""

import importlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "sweep_throughput.py")
FIELDS = ("kind", "config", "depth", "width", "batch", "rule", "optimizer", "runs", "schedule", "group_size",
          "steps_per_chunk", "repeats", "time_s_median", "time_s_min", "run_steps_per_s", "ms_per_run_step",
          "speedup_vs_sequential", "vs_one_run", "compile_s", "temp_mib", "state_mib_per_run", "n_train",
          "other_load_cores", "device_kind", "platform", "jax_version", "malloc", "jdfa_commit")


def _module():
    """The script as a module, imported as its siblings import `common` (benchmarks/ on the path),
    then benchmarks/' generic module names taken out of sys.modules again."""
    here = os.path.join(ROOT, "benchmarks")
    before = set(sys.modules)
    sys.path.insert(0, here)
    try:
        return importlib.import_module("sweep_throughput")
    finally:
        sys.path.remove(here)
        for mod in set(sys.modules) - before:
            if os.path.dirname(getattr(sys.modules[mod], "__file__", None) or "") == here:
                del sys.modules[mod]


def test_tiny_run_writes_every_schedule(tmp_path):
    out, png = tmp_path / "sweep.jsonl", tmp_path / "sweep.png"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--configs", "2x8", "--rules", "dfa", "--runs", "1,2",
         "--group", "2", "--steps", "2", "--repeats", "1", "--malloc", "inherit", "--out", str(out),
         "--plot", str(png)],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    rows, last = lines[:-1], lines[-1]
    assert [(r["runs"], r["schedule"]) for r in rows] == [
        (n, s) for n in (1, 2) for s in ("vmapped", "grouped", "sequential")]
    for r in rows:
        assert set(FIELDS) <= set(r), set(FIELDS) - set(r)
        assert (r["kind"], r["config"], r["depth"], r["width"]) == ("throughput", "2x8", 2, 8)
        assert r["rule"] == "dfa"
        assert r["run_steps_per_s"] == pytest.approx(r["runs"] * 2 / r["time_s_median"])
        assert r["group_size"] == {"vmapped": r["runs"], "grouped": min(2, r["runs"]), "sequential": 1}[
            r["schedule"]]
        assert r["compile_s"] > 0 and r["n_train"] >= 64 * 3
        if r["schedule"] == "sequential":
            assert r["speedup_vs_sequential"] == pytest.approx(1.0)
    assert last["kind"] == "conclusion" and set(last["fastest"]["2x8"]) == {"1", "2"}
    assert set(last["fastest"]["2x8"].values()) <= {"vmapped", "grouped", "sequential"}
    assert "--quick" in last["text"] and png.stat().st_size > 0


def test_quick_refuses_the_committed_results():
    target = os.path.join(ROOT, "benchmarks", "results", "cpu", "never_written.jsonl")
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", target], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0 and "never to benchmarks/results" in proc.stderr
    assert not os.path.exists(target)


def test_configs_and_conclusion():
    sweep = _module()
    assert sweep.parse_configs("100x200, 10X256") == [(100, 200), (10, 256)]
    with pytest.raises(SystemExit):
        sweep.parse_configs("100-200")
    recs = [{"config": "100x200", "depth": 100, "rule": rule, "runs": n, "schedule": s,
             "speedup_vs_sequential": v, "run_steps_per_s": v, "vs_one_run": v * 0.9}
            for rule in ("dfa", "bp") for n, s, v in
            [(32, "vmapped", 0.7), (32, "grouped", 0.9), (32, "sequential", 1.0), (1, "vmapped", 1.1),
             (1, "sequential", 1.0)]]
    c = sweep.conclusion(recs, quick=False)
    assert c["fastest"] == {"100x200": {"32": "sequential", "1": "vmapped"}}
    assert c["target"]["value"] == pytest.approx(0.63) and c["target"]["met"] is False
    assert "--quick" not in c["text"] and "not met" in c["text"]
