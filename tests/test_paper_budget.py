"""The paper-budget runner survives SIGKILL: restarted, it continues the killed run from its
checkpoint, never retrains a finished one, and ends with the records of an uninterrupted run
(``--status`` says where it stands meanwhile); the
report's wall times leave out the runner's pauses."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = [sys.executable, str(ROOT / "experiments" / "paper_budget.py"), "--budget", "tiny"]
TIMING = ("wall_s", "steps_per_s")  # what differs between two runs of the same program


def _runner(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(RUNNER + ["--results", str(folder / "results"), "--work", str(folder / "work")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _without_timing(record: dict) -> dict:
    def strip(d):
        return {k: v for k, v in d.items() if k not in TIMING}

    return {**strip(record), "summary": strip(record["summary"]),
            "records": [strip(r) for r in record["records"]]}


def _records(folder: Path) -> dict:
    return {p.name: _without_timing(json.loads(p.read_text()))
            for p in sorted((folder / "results" / "records").glob("*.json"))}


def test_a_killed_runner_restarts_to_the_uninterrupted_records(tmp_path):
    whole = _runner(tmp_path / "whole")
    killed = _runner(tmp_path / "killed")
    first = tmp_path / "killed" / "results" / "records" / "tiny_dfa_s0.json"
    second_ckpt = tmp_path / "killed" / "work" / "runs" / "tiny_bdfa2_s0" / "checkpoints" / "40"
    end = time.time() + 300
    while not (first.exists() and second_ckpt.exists()):
        assert killed.poll() is None, killed.communicate()[0]
        assert time.time() < end, "the runner did not reach the second run's checkpoint"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not first.with_name("tiny_bdfa2_s0.json").exists()  # killed mid-run
    first_bytes, first_mtime = first.read_bytes(), os.stat(first).st_mtime_ns
    said = subprocess.run(RUNNER + ["--status", "--results", str(tmp_path / "killed" / "results"), "--work",
                                    str(tmp_path / "killed" / "work")], capture_output=True, text=True)
    assert said.returncode == 0, said.stderr
    assert "tiny: 1/2 runs" in said.stdout and "1 of 2 runs have records; ~0.0 h" in said.stdout
    assert "in progress here: tiny_bdfa2_s0 at step " in said.stdout

    restarted = _runner(tmp_path / "killed")
    out = restarted.communicate(timeout=300)[0]
    assert restarted.returncode == 0, out
    assert "tiny_dfa_s0" not in out and "run 2/2 tiny_bdfa2_s0" in out  # the finished run is skipped
    assert first.read_bytes() == first_bytes and os.stat(first).st_mtime_ns == first_mtime
    assert whole.wait(timeout=300) == 0, whole.communicate()[0]
    # The resumed run is the same program from the same checkpoint: equal to the bit, timing aside.
    assert _records(tmp_path / "killed") == _records(tmp_path / "whole")
    assert len(_records(tmp_path / "whole")) == 2


def test_the_report_does_not_count_a_paused_runner():
    """A run stopped for an hour between two evaluations (SIGSTOP, a machine gone before the
    resume) counts that interval as its median one in the wall times the report compares, and
    keeps a merely slow interval (twice the median) as it was."""
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "experiments")!r})
import paper_report
clock = [0.0, 10.0, 20.0, 40.0, 3640.0, 3650.0]   # 20 s slow, then a 3600 s pause
run = {{"records": [{{"step": 500 * i, "wall_s": w, "test_accuracy": 0.1 * i}} for i, w in enumerate(clock)]
       + [{{"step": 2600, "wall_s": 3651.0, "loss": 0.1}}]}}
print(json.dumps([paper_report.active_wall(run), paper_report.at_wall_time(run, 45.0),
                  paper_report.at_wall_time(run, 55.0)]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    walls, at_45, at_55 = json.loads(proc.stdout.splitlines()[-1])
    assert [w[1] for w in walls] == [0.0, 10.0, 20.0, 40.0, 50.0, 60.0]
    assert [w[0] for w in walls] == [0, 500, 1000, 1500, 2000, 2500]
    assert (at_45, at_55) == (pytest.approx(0.3), pytest.approx(0.4))


def test_the_report_shows_where_a_collapsing_run_peaked():
    """BP at depth 100 learns to about half the test set and then falls back to chance: the table
    gives each seed's best evaluation and its step beside the final one, over seeds."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "experiments")!r})
import seeds
def run(curve):
    return {{"records": [{{"step": 500 * i, "test_accuracy": a}} for i, a in enumerate(curve)]
            + [{{"step": 500 * len(curve), "loss": 2.3}}]}}
print(seeds.peak([run([0.1, 0.3, 0.5, 0.1]), run([0.1, 0.6, 0.2, 0.1])]))
print(seeds.peak([{{"records": [{{"step": 0, "loss": 2.3}}]}}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["55.0 ± 7.1 (2), step 750 ± 354", "—"]


def test_the_report_names_a_folder_without_records(tmp_path):
    report = [sys.executable, str(ROOT / "experiments" / "paper_report.py"), "--results", str(tmp_path)]
    proc = subprocess.run(report, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"no run records in {tmp_path / 'records'}" in proc.stderr
    assert not list(tmp_path.iterdir())
