"""The sweep's report, written in the sweep's folder from its runs' metric records.

- ``sweep.json``: per run, its final and best test accuracy, the step of the best, and the first
  evaluated steps at which test accuracy reached 80% and 90%; per group of runs that differ only
  by seed, the mean, sample standard deviation and 95% confidence half-width of those numbers
  over the seeds, and how many runs did not finish.
  For a language model (records with ``test_perplexity``) also the final validation perplexity.
- ``sweep.md``: the same as two tables, groups then runs, accuracies in percent (and a perplexity
  column when the runs have one).
- ``sweep.png``: each group's mean test accuracy against step, with a band of ± one standard
  deviation over its seeds.

Missing values (a run that stopped before its first evaluation, a statistic of no runs) are
``None`` in ``sweep.json``, so the file is strict JSON, and "—" in ``sweep.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables, 3 decimals): scipy is not a
# dependency. Past the table, `_t975` uses the Cornish-Fisher expansion about the normal quantile.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964
THRESHOLDS = (80, 90)  # the test accuracies (percent) whose first crossing is reported
STATISTICS = ("final_test_accuracy", "best_test_accuracy", "final_test_perplexity")  # over seeds


def write_report(out: str | Path, runs: list[dict]) -> dict:
    """Writes ``sweep.json``, ``sweep.md`` and ``sweep.png`` in ``out``.

    Args:
        out: the sweep's folder (created if missing).
        runs: one dict per run: ``name`` (its sub-folder), ``settings`` (what varies across the
            sweep, e.g. ``{"seed": 0, "lr": 0.001}``), ``status`` ("finished", "diverged", ...) and
            ``records`` (its ``metrics.jsonl`` records).

    Returns:
        The content of ``sweep.json`` (`summarize`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = summarize(runs)
    (out / "sweep.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (out / "sweep.md").write_text(markdown(report))
    plot_sweep(runs, out / "sweep.png")
    return report


def summarize(runs: list[dict]) -> dict:
    """The content of ``sweep.json``, from the runs as `write_report` takes them.

    Returns:
        ``{"runs": [...], "groups": [...]}``. Each run: ``name``, ``settings``, ``status``,
        ``final_test_accuracy`` (the last evaluation's), ``best_test_accuracy``, ``best_step``,
        ``steps_to_80`` and ``steps_to_90`` (the first evaluated step at or above that accuracy),
        ``final_test_perplexity`` (a language model's), each ``None`` if it never happened. Each
        group (runs whose settings other than ``seed`` agree, in order of first appearance):
        ``settings`` (without ``seed``), ``runs`` (names), ``n``, ``diverged`` (how many did not
        finish, whatever the reason), for each of `STATISTICS` ``mean``, ``std`` (ddof=1), ``ci95``
        (`confidence_halfwidth`) and ``n`` over the runs that have one, and for the steps to 80%
        and 90% ``reached``, ``mean`` and ``std`` over the runs that reached it.
    """
    entries = {run["name"]: _run_entry(run) for run in runs}
    if len(entries) < len(runs):
        raise ValueError("two runs share a name; a run's name is its sub-folder in the sweep")
    groups = []
    for settings, members in _groups(runs):
        group = {"settings": settings, "runs": [run["name"] for run in members], "n": len(members),
                 "diverged": sum(run["status"] != "finished" for run in members)}
        for key in STATISTICS:
            values = [entries[run["name"]][key] for run in members]
            values = [v for v in values if v is not None]
            mean, std = _mean_std(values)
            ci95 = confidence_halfwidth(std, len(values)) if len(values) > 1 else None
            group[key] = {"mean": mean, "std": std, "ci95": ci95, "n": len(values)}
        for threshold in THRESHOLDS:
            key = f"steps_to_{threshold}"
            steps = [entries[run["name"]][key] for run in members]
            steps = [s for s in steps if s is not None]
            mean, std = _mean_std(steps)
            group[key] = {"reached": len(steps), "mean": mean, "std": std}
        groups.append(group)
    return {"runs": list(entries.values()), "groups": groups}


def confidence_halfwidth(std: float, n: int) -> float:
    """The half-width of the two-sided 95% Student-t confidence interval of a mean.

    Args:
        std: the sample standard deviation (ddof=1) of the ``n`` values.
        n: how many values.

    Returns:
        ``t_{0.975, n-1} * std / sqrt(n)``; NaN for ``n < 2``, where the interval is undefined.
        t comes from a table for ``n - 1 <= 30`` and a Cornish-Fisher expansion beyond, which is
        within 1e-4 of the exact quantile there.
    """
    if n < 2:
        return math.nan
    df = n - 1
    if df <= len(_T975):
        t = _T975[df - 1]
    else:
        z = _Z975
        t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    return t * std / math.sqrt(n)


def markdown(report: dict) -> str:
    """``sweep.md`` from `summarize`'s report: a table of groups, then a table of runs."""
    runs, groups = report["runs"], report["groups"]
    lm = any(r["final_test_perplexity"] is not None for r in runs)  # a perplexity column then
    lines = [f"# Sweep: {len(runs)} runs, {len(groups)} groups", "",
             "Accuracies in percent: mean ± std over seeds [95% confidence half-width]; steps to a "
             "test accuracy: mean ± std over the runs that reached it (reached/n); diverged: runs "
             "that did not finish.", "",
             "| settings | n | diverged | " + "final test perplexity | " * lm
             + "final test acc | best test acc | steps to 80% | steps to 90% |",
             "|---|---|---|---|---|---|---|" + "---|" * lm]
    for g in groups:
        ppl = [_perplexity_stats(g["final_test_perplexity"])] * lm
        accs = [_accuracy_stats(g[key]) for key in ("final_test_accuracy", "best_test_accuracy")]
        steps = [_steps_stats(g[f"steps_to_{threshold}"], g["n"]) for threshold in THRESHOLDS]
        lines.append(f"| {_label(g['settings'])} | {g['n']} | {g['diverged']} | "
                     + " | ".join(ppl + accs + steps) + " |")
    lines += ["", "| run | status | " + "final test perplexity | " * lm + "final test acc | best test acc | "
              "best step |", "|---|---|---|---|---|" + "---|" * lm]
    for r in runs:
        final, best = _percent(r["final_test_accuracy"]), _percent(r["best_test_accuracy"])
        step = "—" if r["best_step"] is None else str(r["best_step"])
        ppl = [_number(r["final_test_perplexity"])] * lm
        lines.append(f"| {r['name']} | {r['status']} | " + " | ".join(ppl + [final, best, step]) + " |")
    return "\n".join(lines) + "\n"


def plot_sweep(runs: list[dict], path: Path) -> None:
    """``sweep.png``: per group, the mean test accuracy over its runs against step, in a band of
    ± one standard deviation. At each step the mean is over the runs evaluated there, so a run
    that stopped early leaves the later points to the others."""
    # A figure of its own, never pyplot's: the caller's backend and open figures stay as they were.
    from matplotlib.figure import Figure

    groups = _groups(runs)
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for settings, members in groups:
        curves = [dict(_evaluations(run["records"])) for run in members]
        steps = sorted(set().union(*curves))
        if not steps:  # every run stopped before its first evaluation: named, so none looks lost
            ax.plot([], [], ls="none", label=f"{_label(settings)} (never evaluated)")
            continue
        stats = np.array([_mean_std([c[s] for c in curves if s in c]) for s in steps], dtype=float)
        (line,) = ax.plot(steps, stats[:, 0], marker="." if len(steps) == 1 else None,
                          label=_label(settings))
        ax.fill_between(steps, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1],
                        color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(f"{len(runs)} runs, {len(groups)} groups (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _evaluations(records: list[dict]) -> list[tuple[int, float]]:
    """(step, test accuracy) of each evaluation with a finite accuracy, in record order."""
    return [(r["step"], r["test_accuracy"]) for r in records
            if r.get("test_accuracy") is not None and math.isfinite(r["test_accuracy"])]


def _run_entry(run: dict) -> dict:
    evaluations = _evaluations(run["records"])
    entry = {"name": run["name"], "settings": dict(run["settings"]), "status": run["status"],
             "final_test_accuracy": evaluations[-1][1] if evaluations else None,
             "best_test_accuracy": None, "best_step": None}
    perplexities = [r["test_perplexity"] for r in run["records"] if r.get("test_perplexity") is not None]
    entry["final_test_perplexity"] = perplexities[-1] if perplexities else None
    if evaluations:  # max keeps the first of equal accuracies: the earliest step that got there
        entry["best_step"], entry["best_test_accuracy"] = max(evaluations, key=lambda e: e[1])
    for threshold in THRESHOLDS:
        entry[f"steps_to_{threshold}"] = next(
            (step for step, acc in evaluations if acc >= threshold / 100), None)
    return entry


def _groups(runs: list[dict]) -> list[tuple[dict, list[dict]]]:
    """The runs grouped by their settings other than ``seed``, in order of first appearance."""
    groups: dict[tuple, tuple[dict, list[dict]]] = {}
    for run in runs:
        settings = {k: v for k, v in run["settings"].items() if k != "seed"}
        # Sorted so that runs listing the same settings in another order share a group.
        key = tuple(sorted(settings.items()))
        groups.setdefault(key, (settings, []))[1].append(run)
    return list(groups.values())


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; 0 for one value); ``None`` for no values."""
    if not values:
        return None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std


def _label(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "all runs"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _accuracy_stats(stats: dict) -> str:
    if stats["mean"] is None:
        return "—"
    ci95 = "—" if stats["ci95"] is None else f"{100 * stats['ci95']:.2f}"
    return f"{_percent(stats['mean'])} ± {_percent(stats['std'])} [{ci95}]"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _perplexity_stats(stats: dict) -> str:
    if stats["mean"] is None:
        return "—"
    return f"{_number(stats['mean'])} ± {_number(stats['std'])} [{_number(stats['ci95'])}]"


def _steps_stats(stats: dict, n: int) -> str:
    if not stats["reached"]:
        return "—"
    return f"{stats['mean']:.0f} ± {stats['std']:.0f} ({stats['reached']}/{n})"
