"""The sweep's report: per-run numbers, per-group statistics over seeds checked against numpy by
hand, the t half-width, runs that never evaluated, and the three files."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from jdfa.driver.sweep_report import confidence_halfwidth, summarize, write_report


def _run(name, settings, accuracies, status="finished", every=100):
    """A run evaluated every ``every`` steps with these test accuracies, with the train records
    (no accuracy) in between that the report must skip."""
    records = []
    for i, acc in enumerate(accuracies):
        step = i * every
        records.append({"step": step + every // 2, "loss": 1.0})
        records.append({"step": step, "test_accuracy": acc, "train_accuracy": acc, "test_loss": 1 - acc})
    return {"name": name, "settings": settings, "status": status, "records": records}


def _diverged(name, settings):
    """A run that stopped before its first evaluation: only the note of why."""
    return {"name": name, "settings": settings, "status": "diverged",
            "records": [{"step": 3, "stopped": True, "diverged": True, "message": "training diverged"}]}


FINALS = [0.91, 0.93, 0.90, 0.95, 0.92]


@pytest.fixture
def runs():
    """Two learning rates; lr=0.1 (first to appear) has five seeds, lr=0.01 two plus one that
    diverged before evaluating. The runs of the two groups are interleaved."""
    fast = [_run(f"lr=0.1_seed={s}", {"seed": s, "lr": 0.1}, [0.5, 0.85, final]) for s, final in
            enumerate(FINALS)]
    slow = [_run("lr=0.01_seed=0", {"seed": 0, "lr": 0.01}, [0.3, 0.6, 0.82, 0.79]),
            _run("lr=0.01_seed=1", {"seed": 1, "lr": 0.01}, [0.3, 0.7, 0.75, 0.81]),
            _diverged("lr=0.01_seed=2", {"seed": 2, "lr": 0.01})]
    return [fast[0], slow[0], *fast[1:3], slow[2], slow[1], *fast[3:]]


def test_confidence_halfwidth_uses_student_t():
    assert confidence_halfwidth(2.0, 5) == pytest.approx(2.776 * 2.0 / math.sqrt(5))
    assert confidence_halfwidth(1.0, 2) == pytest.approx(12.706 / math.sqrt(2))
    assert confidence_halfwidth(1.0, 31) == pytest.approx(2.042 / math.sqrt(31))  # the table's end
    # Past the table: t_{0.975, 31} = 2.0395 and t_{0.975, 999} = 1.9623 (exact to 4 decimals).
    assert confidence_halfwidth(1.0, 32) == pytest.approx(2.0395 / math.sqrt(32), abs=1e-4)
    assert confidence_halfwidth(1.0, 1000) == pytest.approx(1.9623 / math.sqrt(1000), abs=1e-5)
    assert math.isnan(confidence_halfwidth(1.0, 1))


def test_run_entries_final_best_and_first_crossings():
    run = _run("r", {"seed": 0}, [0.5, 0.82, 0.93, 0.79, 0.91])
    run["records"].append({"step": 450, "stopped": True, "message": "interrupted"})
    (entry,) = summarize([run])["runs"]
    assert entry == {"name": "r", "settings": {"seed": 0}, "status": "finished",
                     "final_test_accuracy": 0.91, "best_test_accuracy": 0.93, "best_step": 200,
                     "steps_to_80": 100, "steps_to_90": 200, "final_test_perplexity": None}


def test_best_step_is_the_earliest_of_equal_accuracies_and_nan_is_no_evaluation():
    run = _run("r", {"seed": 0}, [0.5, 0.7, 0.7, float("nan")])
    (entry,) = summarize([run])["runs"]
    assert (entry["best_step"], entry["final_test_accuracy"]) == (100, 0.7)
    assert entry["steps_to_80"] is None and entry["steps_to_90"] is None


def test_group_statistics_match_numpy(runs):
    fast = summarize(runs)["groups"][0]
    assert fast["settings"] == {"lr": 0.1} and fast["n"] == 5 and fast["diverged"] == 0
    std = np.std(FINALS, ddof=1)
    assert fast["final_test_accuracy"] == pytest.approx(
        {"mean": np.mean(FINALS), "std": std, "ci95": 2.776 * std / math.sqrt(5), "n": 5})
    assert fast["best_test_accuracy"]["mean"] == pytest.approx(np.mean(FINALS))
    assert fast["steps_to_80"] == {"reached": 5, "mean": 100.0, "std": 0.0}
    assert fast["steps_to_90"] == {"reached": 5, "mean": 200.0, "std": 0.0}


def test_a_run_that_never_evaluated_counts_but_does_not_break_means(runs):
    slow = summarize(runs)["groups"][1]
    assert slow["n"] == 3 and slow["diverged"] == 1
    assert slow["runs"] == ["lr=0.01_seed=0", "lr=0.01_seed=2", "lr=0.01_seed=1"]
    final = [0.79, 0.81]
    assert slow["final_test_accuracy"] == pytest.approx(
        {"mean": np.mean(final), "std": np.std(final, ddof=1),
         "ci95": 12.706 * np.std(final, ddof=1) / math.sqrt(2), "n": 2})
    assert slow["best_test_accuracy"]["mean"] == pytest.approx(np.mean([0.82, 0.81]))
    assert slow["steps_to_80"] == pytest.approx(
        {"reached": 2, "mean": 250.0, "std": np.std([200, 300], ddof=1)})
    assert slow["steps_to_90"] == {"reached": 0, "mean": None, "std": None}
    entry = next(r for r in summarize(runs)["runs"] if r["name"] == "lr=0.01_seed=2")
    assert entry["final_test_accuracy"] is None and entry["best_step"] is None


def test_groups_keep_first_appearance_order(runs):
    assert [g["settings"] for g in summarize(runs)["groups"]] == [{"lr": 0.1}, {"lr": 0.01}]
    assert [g["settings"] for g in summarize(runs[1:])["groups"]] == [{"lr": 0.01}, {"lr": 0.1}]


def test_a_seeds_only_sweep_is_one_group_with_no_settings(tmp_path):
    runs = [_run(f"seed={s}", {"seed": s}, [0.5, 0.9 + s / 100]) for s in range(3)]
    report = write_report(tmp_path, runs)
    (group,) = report["groups"]
    assert group["settings"] == {} and group["n"] == 3
    lines = (tmp_path / "sweep.md").read_text().splitlines()
    assert sum(line.startswith("| all runs | 3 |") for line in lines) == 1


def test_a_single_run_group_has_zero_std_and_no_interval():
    (group,) = summarize([_run("only", {"seed": 0, "lr": 1.0}, [0.95])])["groups"]
    assert group["final_test_accuracy"] == {"mean": 0.95, "std": 0.0, "ci95": None, "n": 1}


def test_write_report_writes_the_three_files(tmp_path, runs):
    out = tmp_path / "sweep"
    report = write_report(out, runs)
    assert json.loads((out / "sweep.json").read_text()) == report
    lines = (out / "sweep.md").read_text().splitlines()
    assert lines[0].startswith("# ")
    groups = [line for line in lines if line.startswith(("| lr=0.1 |", "| lr=0.01 |"))]
    assert groups == [
        "| lr=0.1 | 5 | 0 | 92.20 ± 1.92 [2.39] | 92.20 ± 1.92 [2.39] | 100 ± 0 (5/5) | 200 ± 0 (5/5) |",
        "| lr=0.01 | 3 | 1 | 80.00 ± 1.41 [12.71] | 81.50 ± 0.71 [6.35] | 250 ± 71 (2/3) | — |"]
    rows = [line for run in runs for line in lines if line.startswith(f"| {run['name']} |")]
    assert len(rows) == len(runs)
    assert "| lr=0.01_seed=2 | diverged | — | — | — |" in rows
    assert "| lr=0.1_seed=3 | finished | 95.00 | 95.00 | 200 |" in rows
    png = (out / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_language_models_get_their_perplexity_in_the_report_and_the_table(tmp_path, runs):
    """Runs whose records hold ``test_perplexity`` (a language model's): its final value per run and
    its statistics over seeds, and a perplexity column in ``sweep.md``; other sweeps keep theirs."""
    lms = [_run(f"seed={s}", {"seed": s}, [0.2, 0.3]) for s in range(2)]
    for run, ppl in zip(lms, (5.0, 7.0)):
        run["records"][-1]["test_perplexity"] = ppl
    report = write_report(tmp_path / "lm", lms)
    assert [r["final_test_perplexity"] for r in report["runs"]] == [5.0, 7.0]
    group = report["groups"][0]["final_test_perplexity"]
    assert group["mean"] == 6.0 and group["std"] == pytest.approx(math.sqrt(2)) and group["n"] == 2
    table = (tmp_path / "lm" / "sweep.md").read_text()
    assert "| settings | n | diverged | final test perplexity | final test acc |" in table
    assert "| all runs | 2 | 0 | 6.000 ± 1.414 [12.706] | 30.00 ± 0.00 [0.00] |" in table
    assert "| seed=1 | finished | 7.000 | 30.00 | 30.00 | 100 |" in table
    write_report(tmp_path / "mnist", runs)
    assert "perplexity" not in (tmp_path / "mnist" / "sweep.md").read_text()


def test_runs_sharing_a_name_are_refused(runs):
    with pytest.raises(ValueError, match="share a name"):
        summarize([*runs, runs[0]])


def test_figures_leave_the_callers_matplotlib_alone(tmp_path):
    """The run's and the sweep's figures are drawn on figures of their own: a notebook's backend
    is not switched and pyplot is never loaded (it would register the figures as open ones)."""
    code = f"""
import sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")
from jdfa.driver import plots, sweep_report
records = [{{"step": 0, "test_accuracy": 0.1, "train_accuracy": 0.1, "test_loss": 2.0}},
           {{"step": 5, "loss": 1.0, "alignment_angle": [40.0, 50.0, 60.0]}},
           {{"step": 10, "test_accuracy": 0.5, "train_accuracy": 0.5, "test_loss": 1.0}}]
plots.plot_curves(records, Path({str(tmp_path)!r}) / "curves.png", title="t")
sweep_report.plot_sweep([{{"name": "a", "settings": {{}}, "status": "finished", "records": records}}],
                        Path({str(tmp_path)!r}) / "sweep.png")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["svg", "False"]
    for name in ("curves.png", "sweep.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
