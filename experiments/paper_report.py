"""The report of `paper_budget.py`'s runs: tables, figures and ``results.json`` from whatever records
exist (a part half done is reported as such, with n per row).

    python experiments/paper_report.py            # experiments/results/paper_budget/{table.md,...}

Table 1 / Table 2: per setting the final test accuracy (mean ± std over seeds, 95 % t-interval),
the paper's number and "vs DFA" (whether the 95 % intervals separate, against DFA under the same
recipe), the steps to 80 % / 90 % and the wall time of a run. The switching comparison: at equal
steps (10,000) and at equal wall time (each setting's test accuracy at the last evaluation within
the wall time of the fastest setting's runs). Figures: bands over seeds (mean ± one std).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import paper_budget
from bdfa_study import PAPER

import common
import seeds

TABLES = {"table1": 200, "table2": 300}
SWITCHING = ("w200_dfa_shared", "w200_bdfa25-bp_shared", "w200_mix0.5-layer_shared", "w200_fp1-error_shared")


def load(results: Path) -> dict[str, dict[str, list[dict]]]:
    """``{part: {setting: [record per seed, by seed]}}``; a record reads like a run result
    (`common.series` and `seeds` take it: its summary's keys plus ``records``)."""
    parts: dict = {}
    for path in sorted((results / "records").glob("*.json")):
        rec = json.loads(path.read_text())
        setting = rec["tag"][len(rec["part"]) + 1:].rsplit("_s", 1)[0]
        run = {**rec["summary"], "records": rec["records"], "seed": rec["seed"], "commit": rec["commit"]}
        parts.setdefault(rec["part"], {}).setdefault(setting, []).append(run)
    order = {part: list(settings) for part, settings in paper_budget.parts("paper").items()}
    return {part: {s: sorted(parts[part][s], key=lambda r: r["seed"])
                   for s in order[part] if s in parts[part]} for part in order if part in parts}


def wall(runs: list[dict]) -> str:
    s = seeds.stats([r["wall_s"] for r in runs])
    return f"{s.mean / 60:.1f} min" if s.n else "—"


def table(settings: dict[str, list[dict]], width: int) -> str:
    rows = []
    for setting, runs in settings.items():
        rule, recipe = setting.split("_")[1], setting.split("_")[2]
        acc = seeds.final_accuracies(runs)
        dfa = settings.get(f"w{width}_dfa_{recipe}")
        versus = "—" if rule == "dfa" or not dfa else seeds.separated(acc, seeds.final_accuracies(dfa))
        rows.append((rule, recipe, PAPER[width].get(rule, "—"), seeds.text(acc),
                     f"± {100 * acc.ci:.1f}" if acc.n > 1 else "—", versus,
                     seeds.reached(runs, 0.8), seeds.reached(runs, 0.9), wall(runs)))
    return common.markdown_table(["rule", "recipe", "paper %", "final test % mean ± std (n)", "95 % CI",
                                  "vs DFA (95 % CI)", "seeds reaching 80 %, at step",
                                  "seeds reaching 90 %, at step", "wall time per run"], rows)


def at_wall_time(run: dict, seconds: float) -> float:
    """The test accuracy of the last evaluation at or before ``seconds`` of the run's wall time."""
    before = [r["test_accuracy"] for r in run["records"] if "test_accuracy" in r and r["wall_s"] <= seconds]
    return float(before[-1]) if before else float("nan")


def switching(groups: dict[str, list[dict]]) -> str:
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return "No switching runs yet.\n"
    budget = min(seeds.stats([r["wall_s"] for r in runs]).mean for runs in groups.values())
    dfa_step = seeds.stats([r["wall_s"] / r["step"] for r in groups.get("w200_dfa_shared", [])]).mean
    rows = []
    for setting, runs in groups.items():
        per_step = seeds.stats([r["wall_s"] / r["step"] for r in runs]).mean
        rows.append((setting.split("_")[1], seeds.text(seeds.final_accuracies(runs)),
                     seeds.text(seeds.stats([at_wall_time(r, budget) for r in runs])),
                     f"{1000 * per_step:.1f} ms"
                     + (f" ({per_step / dfa_step:.2f}x DFA)" if dfa_step else "")))
    return (f"Equal wall time: {budget / 60:.1f} min, the fastest setting's mean run. Wall times are "
            "those of the runs on the 2-core CPU, shared with other work while they ran: the per-step "
            "ratios are rough.\n\n"
            + common.markdown_table(["rule", "test % at 10,000 steps", f"test % at {budget / 60:.1f} min",
                                     "wall time per step"], rows))


def figure(path: Path, panels: dict[str, dict[str, list[dict]]]) -> None:
    fig, axes = common.plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (title, groups) in zip(axes[0], panels.items()):
        seeds.plot_bands(ax, groups)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    common.plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=common.HERE / "results" / "paper_budget")
    args = p.parse_args(argv)
    common.plt.switch_backend("Agg")
    parts = load(args.results)
    text = ["# The Blocked-DFA paper's tables at 10,000 steps, over seeds (CPU)\n",
            "Written by `python experiments/paper_report.py` from the records of "
            "`experiments/paper_budget.py` (commits: "
            + ", ".join(sorted({r["commit"][:12] for s in parts.values() for rs in s.values() for r in rs}))
            + "). Depth 100, tanh, batch 64, Adam; shared recipe: orthogonal init, lr 3e-4; "
              "contrast: uniform init, lr 1e-3.\n",
            f"{sum(len(rs) for s in parts.values() for rs in s.values())} of "
            f"{len(paper_budget.plan('paper'))} runs have records; a row with n < 5 is still training.\n"]
    for part, width in TABLES.items():
        if part in parts:
            text += [f"## Table {part[-1]} (width {width})\n", table(parts[part], width)]
            figure(args.results / f"{part}.png", {
                f"width {width}, {recipe} recipe": {s.split("_")[1]: r for s, r in parts[part].items()
                                                   if s.endswith(recipe)}
                for recipe in ("shared", "contrast")})
    runs = {**parts.get("table1", {}), **parts.get("switching", {})}
    text += ["## Switching BP and DFA per layer (depth 100 x 200)\n",
             switching({s: runs.get(s, []) for s in SWITCHING})]
    if "fig7" in parts:
        text += ["## Figure 7: FP on 15 x 720\n", common.markdown_table(
            ["rule", "final test % mean ± std (n)", "95 % CI"],
            [(s.split("_")[1], seeds.text(seeds.final_accuracies(r)),
              f"± {100 * seeds.final_accuracies(r).ci:.1f}") for s, r in parts["fig7"].items()])]
        figure(args.results / "fig7.png",
               {"FP on 15 x 720": {s.split("_")[1]: r for s, r in parts["fig7"].items()}})
    (args.results / "table.md").write_text("\n".join(text))
    summary = {part: {s: [{k: r[k] for k in ("seed", "step", "test_accuracy", "wall_s", "commit")}
                          for r in rs] for s, rs in settings.items()} for part, settings in parts.items()}
    (args.results / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
