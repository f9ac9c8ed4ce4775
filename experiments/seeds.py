"""Seeded experiments: every claim as mean ± std over seeds, with a 95 % interval.

- `run_seeds(args, runs, seeds, data=...)`: ``{label: config}`` x seeds through `common.run_all`
  (run folders ``<label>_s<seed>``; finished runs of the same config are reused, so a later stage
  or a larger seed count only trains what is missing); with ``--vmap-seeds`` each label's seeds
  are one vmapped program instead (`jdfa.driver.train_runs`, folders ``<label>/seed=<s>``): on a
  GPU about the cost of one run, on the 2-core CPU slower than one after another;
- `Stats` / `stats(values)`: mean, sample std, n and the 95 % t-interval half-width
  (`jdfa.driver.sweep_report.confidence_halfwidth`); `text(stats)` prints ``93.1 ± 0.4 (5)``;
- `steps_to(result, level)`: the first evaluated step at or above a test accuracy;
- `separated(a, b)`: whether two 95 % intervals do not overlap, and which is higher;
- `paired(differences)`: the per-seed differences of two settings, and whether they are real;
- `plot_bands(ax, groups, key)`: each group's mean against step, ± one std band over its seeds
  (`band` draws one such curve from any (seeds, points) array).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from jdfa.driver import train_runs
from jdfa.driver.sweep_report import confidence_halfwidth

import common


def run_seeds(args, runs: dict, seeds, *, data) -> dict[str, list[dict]]:
    """``{label: flat flags}`` x ``seeds`` (an int n: 0..n-1, or a list) -> ``{label: [result per
    seed]}``; ``label`` must be a folder-safe tag."""
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if args.vmap_seeds and len(seeds) > 1:
        return {label: _vmapped(args, label, cfg, seeds, data) for label, cfg in runs.items()}
    done = common.run_all(args, {f"{label}_s{s}": {**cfg, "seed": s} for label, cfg in runs.items()
                                 for s in seeds}, data=data)
    return {label: [done[f"{label}_s{s}"] for s in seeds] for label in runs}


def _vmapped(args, label: str, flags: dict, seeds: list[int], data) -> list[dict]:
    """One label's seeds as one sweep in ``runs/<label>``, reused when every seed's run there is
    finished with the same config."""
    folder, flags = args.out / "runs" / label, common.for_rule(flags)
    done = [common.finished_run(args, f"{label}/seed={s}", {**flags, "seed": s}, data) for s in seeds]
    if not args.fresh and all(d is not None for d in done):
        print(f"[{args.name}] {label}: reusing the finished seeds {seeds} in {folder}")
        return done
    config, _ = common.config_of(args, label, flags, data)
    configs = [dataclasses.replace(config, seed=s, overwrite=True) for s in seeds]
    print(f"[{args.name}] {label}: seeds {seeds} as one vmapped program", flush=True)
    train_runs(configs, data=data)
    return [common.load_run(folder / f"seed={s}", args.out) for s in seeds]


class Stats(NamedTuple):
    mean: float
    std: float  # sample std (ddof 1); NaN for one value
    n: int
    ci: float  # 95 % t-interval half-width; NaN for one value

    @property
    def interval(self) -> tuple[float, float]:
        return self.mean - self.ci, self.mean + self.ci


def stats(values) -> Stats:
    """`Stats` of the finite ``values`` (NaN, e.g. a level never reached, is left out of n)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return Stats(math.nan, math.nan, 0, math.nan)
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    ci = confidence_halfwidth(std, len(v)) if len(v) > 1 else math.nan
    return Stats(float(np.mean(v)), std, len(v), ci)


def text(s: Stats, percent: bool = True, digits: int = 1) -> str:
    """``93.1 ± 0.4 (5)`` (std, not the interval); '—' without values."""
    if not s.n:
        return "—"
    k = 100 if percent else 1
    spread = f" ± {k * s.std:.{digits}f}" if s.n > 1 else ""
    return f"{k * s.mean:.{digits}f}{spread} ({s.n})"


def final_accuracies(results: list[dict]) -> Stats:
    """Final test accuracy over seeds."""
    return stats([common.final(r) for r in results])


def steps_to(result: dict, level: float) -> float:
    """The first evaluated step whose test accuracy is at least ``level`` (NaN: never)."""
    s, acc = common.series(result, "test_accuracy")
    hit = s[acc >= level]
    return float(hit[0]) if len(hit) else math.nan


def reached(results: list[dict], level: float) -> str:
    """``"4/5 reach 90 %, step 1200 ± 300"``: how many seeds reach ``level`` and when."""
    s = stats([steps_to(r, level) for r in results])
    return f"{s.n}/{len(results)}" + (f", {_at_step(s)}" if s.n else "")


def _at_step(s: Stats) -> str:
    return f"step {s.mean:.0f}" + (f" ± {s.std:.0f}" if s.n > 1 else "")


def peak(results: list[dict], key: str = "test_accuracy") -> str:
    """``"52.7 ± 7.3 (5), step 3100 ± 418"``: each seed's best evaluation of ``key`` and its step,
    over seeds (a run that learns and then collapses ends far below its peak)."""
    evaluated = [common.series(r, key) for r in results]
    at = stats([steps[np.nanargmax(values)] for steps, values in evaluated if len(values)])
    return f"{text(stats([common.best(r, key) for r in results]))}, {_at_step(at)}" if at.n else "—"


def separated(a: Stats, b: Stats) -> str:
    """``"higher"`` / ``"lower"`` when a's 95 % interval lies wholly above / below b's, else
    ``"overlap"`` (also when either has fewer than two values)."""
    if a.n < 2 or b.n < 2:
        return "overlap"
    (a_lo, a_hi), (b_lo, b_hi) = a.interval, b.interval
    return "higher" if a_lo > b_hi else "lower" if a_hi < b_lo else "overlap"


def paired(differences, percent: bool = True, digits: int = 1) -> str:
    """Per-seed differences of two settings that share each seed's initial weights, batches and
    evaluation subset (pairing removes most of the seed-to-seed spread): ``+0.54 ± 0.08 (5), CI ±
    0.10: real``, "real" when 0 lies outside the 95 % interval of their mean."""
    d = stats(differences)
    k = 100 if percent else 1
    return (f"{k * d.mean:+.{digits}f} ± {k * d.std:.{digits}f} ({d.n}), CI ± {k * d.ci:.{digits}f}: "
            + ("real" if abs(d.mean) > d.ci else "within seed noise"))


def band(ax, x, values, label: str, **kw) -> None:
    """The mean of ``values`` (seeds, points) against ``x``, with a ± one std band."""
    mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else 0 * values[0]
    (line,) = ax.plot(x, mean, label=f"{label} (n={len(values)})", **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_bands(ax, groups: dict[str, list[dict]], key: str = "test_accuracy", **kw) -> None:
    """Each group's mean of ``key`` against step over its seeds, with a ± one std band."""
    for label, results in groups.items():
        curves = [common.series(r, key) for r in results]
        curves = [c for c in curves if len(c[0])]
        if not curves:
            continue
        n = min(len(c[0]) for c in curves)  # a diverged seed stops early: compare where all have data
        band(ax, curves[0][0][:n], np.stack([c[1][:n] for c in curves]), label, **kw)
    ax.set_xlabel("step")
    ax.set_ylabel(key.replace("_", " ") + " (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
