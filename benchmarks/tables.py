"""Markdown tables from the benchmark JSON lines (the tables of benchmarks/README.md).

Examples::

    python benchmarks/tables.py benchmarks/results/cpu/headline_w200.jsonl        # per-rule table
    python benchmarks/tables.py --sweep benchmarks/results/cpu/depth_sweep_w200.jsonl
    python benchmarks/tables.py --breakdown benchmarks/results/cpu/breakdown_dfa.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys


def read(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def _mib(v):
    return "–" if v is None else f"{v / 2**20:.1f}"


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def rule_table(recs):
    rows = ["| rule | depth | width | batch | median ms | min ms | max ms | examples/s | compile s "
            "| temp MiB | other load (cores) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        if r.get("kind") != "step":
            continue
        rows.append(f"| {r['rule']} | {r['depth']} | {r['width']} | {r['batch']} | "
                    f"{r['step_ms_median']:.1f} | {r['step_ms_min']:.1f} | {r['step_ms_max']:.1f} | "
                    f"{r['examples_per_s']:.0f} | {_f(r.get('compile_s'), '.2f')} | "
                    f"{_mib(r.get('temp_bytes'))} | {_f(r.get('other_load_cores'), '.2f')} |")
    return "\n".join(rows)


def sweep_table(recs, field="step_ms_median", fmt=".1f", scale=1.0):
    step = [r for r in recs if r.get("kind") == "step"]
    rules = list(dict.fromkeys(r["rule"] for r in step))
    depths = sorted({r["depth"] for r in step})
    at = {(r["rule"], r["depth"]): r for r in step}
    rows = ["| depth | " + " | ".join(rules) + " | other load |",
            "|---:|" + "---:|" * (len(rules) + 1)]
    for d in depths:
        cells = []
        for rule in rules:
            r = at.get((rule, d))
            v = None if r is None else r.get(field)
            cells.append("–" if v is None else format(v * scale, fmt))
        loads = [at[(rule, d)].get("other_load_cores") or 0 for rule in rules if (rule, d) in at]
        rows.append(f"| {d} | " + " | ".join(cells) + f" | {max(loads):.2f} |")
    return "\n".join(rows)


def breakdown_table(recs):
    rows = ["| part | median ms | min ms | max ms |", "|---|---:|---:|---:|"]
    for r in recs:
        if r.get("kind") == "breakdown":
            rows.append(f"| {r['rule']}: {r['part']} | {r['step_ms_median']:.1f} | "
                        f"{r['step_ms_min']:.1f} | {r['step_ms_max']:.1f} |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sweep", action="store_true", help="step time: depth x rule")
    g.add_argument("--sweep-compile", action="store_true", help="compile s: depth x rule")
    g.add_argument("--sweep-temp", action="store_true", help="temp MiB: depth x rule")
    g.add_argument("--breakdown", action="store_true")
    args = p.parse_args(argv)
    recs = read(args.files)
    if args.sweep:
        print(sweep_table(recs))
    elif args.sweep_compile:
        print(sweep_table(recs, "compile_s", ".2f"))
    elif args.sweep_temp:
        print(sweep_table(recs, "temp_bytes", ".1f", 1 / 2**20))
    elif args.breakdown:
        print(breakdown_table(recs))
    else:
        print(rule_table(recs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
