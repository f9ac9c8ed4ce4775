"""Plots ``step_time.py`` results: step time, XLA peak temp memory and compile time against depth,
one line per rule, log-log, one column of panels per (width, batch).

    python benchmarks/plot.py benchmarks/results/cpu/depth_sweep.jsonl --out depth_sweep.png

Several files may be given (records of the same rule and configuration: the last one wins).
Records without a value for a row (PyTorch has no XLA memory or compile time) are left out of it.
"""

from __future__ import annotations

import argparse
import json
import sys

ROWS = (("step_ms_median", "step time (ms, median)"),
        ("temp_bytes", "XLA temp memory (MiB)"),
        ("compile_s", "compile time (s)"))
MARKERS = "os^vD<>pPX*h"


def load(paths):
    recs = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if r.get("kind", "step") != "step":
                    continue
                recs[(r["rule"], r["depth"], r["width"], r["batch"])] = r
    return list(recs.values())


def plot(records, out, title=None, rows=("step_ms_median", "temp_bytes", "compile_s")):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = sorted({(r["width"], r["batch"]) for r in records})
    rules = list(dict.fromkeys(r["rule"] for r in records))
    row_defs = [rd for rd in ROWS if rd[0] in rows]
    fig, axes = plt.subplots(len(row_defs), len(panels), squeeze=False,
                             figsize=(5.2 * len(panels), 3.6 * len(row_defs)))
    for col, (width, batch) in enumerate(panels):
        for row, (field, label) in enumerate(row_defs):
            ax = axes[row][col]
            for i, rule in enumerate(rules):
                pts = sorted((r["depth"], r[field]) for r in records
                             if r["rule"] == rule and (r["width"], r["batch"]) == (width, batch)
                             and r.get(field) is not None)
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ys = [p[1] / 2**20 if field == "temp_bytes" else p[1] for p in pts]
                style = "--" if rule in ("forward", "torch_forward") else "-"
                ax.plot(xs, ys, style, marker=MARKERS[i % len(MARKERS)], ms=4, label=rule)
            ax.set_xscale("log")
            ax.set_yscale("log")
            depths = sorted({r["depth"] for r in records if (r["width"], r["batch"]) == (width, batch)})
            ax.set_xticks(depths)
            ax.set_xticklabels([str(d) for d in depths])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("depth (hidden layers)")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            if row == 0:
                ax.set_title(f"width {width}, batch {batch}")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8),
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        fig.suptitle(title, y=1.04)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="JSON-lines files from step_time.py")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--title", default=None)
    p.add_argument("--rows", default="step_ms_median,temp_bytes,compile_s",
                   help="comma-separated subset of step_ms_median,temp_bytes,compile_s")
    args = p.parse_args(argv)
    records = load(args.files)
    if not records:
        print("no step records in the input", file=sys.stderr)
        return 1
    plot(records, args.out, args.title, tuple(args.rows.split(",")))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
