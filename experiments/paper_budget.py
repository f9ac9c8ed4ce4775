"""The Blocked-DFA paper's tables at the paper's own budget (10,000 steps), over seeds, on the CPU:
one runner that survives any stop.

Parts, in this order (each lands when it is done):

1. ``table1``: width 200, depth 100: DFA, BDFA 50 and 25 in the paper's reading, BDFA 25 with the
   backprop boundary, under the shared recipe of the CPU screen (`bdfa_study.py --budget cpu`:
   orthogonal init, Adam 3e-4); DFA and BDFA 25 also under the paper-free recipe of section 1
   (uniform init, Adam 1e-3) as the contrast.
2. ``switching``: `mix(0.5, per="layer")` and `fp(1, source="error")` at depth 100 x 200, shared
   recipe (DFA and BDFA-25-bp come from part 1); equal steps and equal wall time compared by the
   report.
3. ``fig7``: FP on 15 x 720, ``bp_depth`` 0..5 and the error-reading 1, 3, 5 (uniform init, Adam
   1e-4, as section 10.2).
4. ``table2``: as part 1 at width 300.
5. ``bp``: backprop at 100 x 200 under both recipes, the curve the paper's Figure 8 shows failing
   ("makes back-propagation impossible to converge"; not in its tables). Last, as an addition.

Runs train one at a time: two side by side give 0.95-0.97x the runs per hour on the 2-core CPU
(`benchmarks/runs_at_once.py`).

Seeds run round-robin within a part (every setting's seed 0, then every seed 1, ...) so that a
part stopped half-way still compares every setting.

How it survives stops: each run trains in ``<work>/runs/<tag>`` with checkpoints; a run whose
folder holds a checkpoint continues from it (``resume``), bit for bit the run it would have been. A
finished run leaves a small record ``<results>/records/<tag>.json`` (config, seed, steps, wall
time, the commit that trained it, its metric curves) and its checkpoints are deleted; a run whose
record exists is never trained again. With ``--commit`` each record is committed to the git
repository that holds ``<results>`` as it is written, so work can continue on a fresh machine,
where only the committed records are found.

Run it from a fixed commit, so that code changed meanwhile never mixes into a result::

    git clone -q ~/jdfa /tmp/paper_code && cd /tmp/paper_code   # ~/jdfa: your checkout, at a landed commit
    nice -n 10 python experiments/paper_budget.py --commit --results ~/jdfa/experiments/results/paper_budget

(``--budget paper`` is the default; started again, it resumes where it stopped; ``--status``
prints the runs done per part and an estimate of the time left.)

``--budget tiny`` is the smoke version the tests kill and restart (two small runs, scratch folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jdfa

import common

SHARED = dict(weight_init="orthogonal", lr=3e-4)  # the CPU screen's best shared recipe
CONTRAST = dict(weight_init="uniform", lr=1e-3)   # section 1's paper-free recipe
DEEP = dict(depth=100, activation="tanh", loss="softmax_cross_entropy", optimizer="adam", batch_size=64,
            feedback_init="uniform", eval_every=500, train_eval_size=2000)
FP15 = dict(depth=15, width=720, activation="tanh", loss="softmax_cross_entropy", weight_init="uniform",
            optimizer="adam", lr=1e-4, batch_size=64, feedback_init="uniform", eval_every=500,
            train_eval_size=2000)


def _table(width: int) -> dict:
    shared = {r: dict(DEEP, width=width, rule=r, **SHARED) for r in ("dfa", "bdfa50", "bdfa25", "bdfa25-bp")}
    contrast = {r: dict(DEEP, width=width, rule=r, **CONTRAST) for r in ("dfa", "bdfa25")}
    return {**{f"w{width}_{r}_shared": c for r, c in shared.items()},
            **{f"w{width}_{r}_contrast": c for r, c in contrast.items()}}


def parts(budget: str) -> dict[str, dict[str, dict]]:
    """``{part: {setting: flat flags}}`` of a budget (steps and seeds are `BUDGETS`')."""
    if budget == "tiny":
        tiny = dict(depth=3, width=32, activation="tanh", optimizer="adam", lr=1e-3, batch_size=32,
                    eval_every=20, train_eval_size=500)
        return {"tiny": {"dfa": dict(tiny, rule="dfa"), "bdfa2": dict(tiny, rule="bdfa2")}}
    switching = {"w200_mix0.5-layer_shared": dict(DEEP, width=200, rule="mix", p_bp=0.5, per="layer",
                                                  **SHARED),
                 "w200_fp1-error_shared": dict(DEEP, width=200, rule="fp1-error", **SHARED)}
    fig7 = {f"fp15_{r}": dict(FP15, rule=r)
            for r in ("fp0", "fp1", "fp2", "fp3", "fp4", "fp5", "fp1-error", "fp3-error", "fp5-error")}
    bp = {f"w200_bp_{name}": dict(DEEP, width=200, rule="bp", **recipe)
          for name, recipe in (("shared", SHARED), ("contrast", CONTRAST))}
    return {"table1": _table(200), "switching": switching, "fig7": fig7, "table2": _table(300), "bp": bp}


BUDGETS = {"paper": dict(steps=10000, seeds=5, checkpoint_every=1000),
           "tiny": dict(steps=200, seeds=1, checkpoint_every=10)}


def plan(budget: str) -> list[tuple[str, str, dict]]:
    """``[(part, tag, flags)]`` in training order: part by part, seeds round-robin."""
    b = BUDGETS[budget]
    return [(part, f"{part}_{setting}_s{seed}", dict(flags, steps=b["steps"], seed=seed))
            for part, settings in parts(budget).items()
            for seed in range(b["seeds"]) for setting, flags in settings.items()]


# ------------------------------------------------------------------------------------------ runs

def commit_of(repo: Path) -> str:
    """The commit the code runs from, ``+dirty`` when its tracked files differ from it."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def train_one(tag: str, flags: dict, *, work: Path, data, budget: dict):
    """Trains (or continues) one run in ``work/runs/tag``; returns its summary."""
    out = work / "runs" / tag
    started = any(p.name.isdigit() for p in (out / "checkpoints").glob("*"))
    config, data = jdfa.driver.from_flags(
        {**common.for_rule(flags), "out": str(out), "progress": False,
         "checkpoint_every": budget["checkpoint_every"], "keep_checkpoints": 2,
         "resume": started, "overwrite": not started}, data)
    try:
        summary = jdfa.train(config, data=data)
    except jdfa.driver.Interrupted as stopped:  # SIGTERM or Ctrl-C: the checkpoint is saved
        summary = stopped.result
    summary.pop("state")
    return summary


def record_of(part: str, tag: str, flags: dict, run_dir: Path, summary: dict, commit: str) -> dict:
    config = common.saved_config(run_dir, run_dir.parent.parent)  # out "runs/<tag>": no machine's path
    for how_started in ("resume", "overwrite"):  # a resumed run is the same run
        config.pop(how_started)
    return {"part": part, "tag": tag, "seed": flags["seed"], "steps": flags["steps"], "flags": flags,
            "status": summary["status"], "commit": commit,
            "machine": platform.processor() or platform.machine(),
            "wall_s": summary["wall_s"], "steps_per_s": summary["steps_per_s"],
            "summary": {k: v for k, v in summary.items() if k not in ("out",)},
            "config": config, "records": common.read_records(run_dir)}


def commit_record(path: Path, tag: str) -> None:
    """Commits this one file (``git commit --only``), leaving anything else staged alone; retried
    while another git command holds the index."""
    repo = path.parent
    for _ in range(30):
        add = subprocess.run(["git", "-C", str(repo), "add", path.name], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", str(repo), "commit", "-q", "-m", f"paper_budget: record of {tag}", "--only",
             path.name], capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2)
    print(f"[paper_budget] could not commit {path}; it stays in the work tree", flush=True)


def status(args) -> int:
    """Prints, per part, the runs with records and an estimate of the time left (the median run of
    the part so far, else of all parts), and any run in progress here (its checkpoint's step)."""
    done, times = {}, {}
    for part, tag, _ in plan(args.budget):
        path = args.results / "records" / f"{tag}.json"
        done.setdefault(part, [0, 0])[1] += 1
        if path.exists():
            done[part][0] += 1
            times.setdefault(part, []).append(json.loads(path.read_text())["summary"]["wall_s"])
    everything = sorted(t for ts in times.values() for t in ts)
    left = 0.0
    for part, (n, total) in done.items():
        typical = sorted(times.get(part, everything) or [float("nan")])
        typical = typical[len(typical) // 2]
        left += (total - n) * typical
        more = f", ~{typical / 60:.1f} min a run" if n < total else ""
        print(f"[paper_budget] {part}: {n}/{total} runs{more}")
    progress = []
    for run_dir in sorted((args.work / "runs").glob("*")):
        steps = [int(c.name) for c in (run_dir / "checkpoints").glob("*") if c.name.isdigit()]
        if steps and not (args.results / "records" / f"{run_dir.name}.json").exists():
            progress.append(f"{run_dir.name} at step {max(steps)}")
    where = f"; in progress here: {', '.join(progress)}" if progress else ""
    eta = f"~{left / 3600:.1f} h of training left" if left == left else "no run finished yet to time"
    print(f"[paper_budget] {sum(n for n, _ in done.values())} of {len(plan(args.budget))} runs have "
          f"records; {eta}{where}")
    return 0


def run(args) -> int:
    budget = BUDGETS[args.budget]
    records = args.results / "records"
    records.mkdir(parents=True, exist_ok=True)
    commit = commit_of(common.REPO)
    args.name, args.dataset = "paper_budget", "mnist"
    data = common.load_data(args)
    todo = plan(args.budget)
    for i, (part, tag, flags) in enumerate(todo):
        path = records / f"{tag}.json"
        if path.exists():
            continue
        print(f"[paper_budget] {time.strftime('%H:%M:%S')} run {i + 1}/{len(todo)} {tag} (commit "
              f"{commit[:12]})", flush=True)
        summary = train_one(tag, flags, work=args.work, data=data, budget=budget)
        if summary["status"] not in ("finished", "diverged"):
            print(f"[paper_budget] {tag} ended {summary['status']!r}; its checkpoint stays for the "
                  "next start", flush=True)
            return 130 if summary["status"] in ("interrupted", "aborted") else 1
        rec = record_of(part, tag, flags, args.work / "runs" / tag, summary, commit)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=None, default=common._jsonable) + "\n")
        os.replace(tmp, path)  # a record is whole or absent
        print(f"[paper_budget] {tag}: {summary['status']}, test "
              f"{summary.get('test_accuracy', float('nan')):.4f}, {summary['wall_s']:.0f} s", flush=True)
        if args.commit:
            commit_record(path, tag)
        for ckpt in (args.work / "runs" / tag / "checkpoints").glob("*"):
            subprocess.run(["rm", "-rf", str(ckpt)])  # 50-100 MB each at depth 100; the record is what stays
    print(f"[paper_budget] all {len(todo)} runs of budget {args.budget!r} have records", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=tuple(BUDGETS), default="paper")
    p.add_argument("--results", type=Path, default=None,
                   help="folder of records/ (default experiments/results/paper_budget; tiny: scratch)")
    p.add_argument("--work", type=Path, default=None,
                   help="folder of the runs and their checkpoints (default experiments/scratch/paper_budget)")
    p.add_argument("--commit", action="store_true", help="git-commit each record as it is written")
    p.add_argument("--status", action="store_true",
                   help="print what is done and the time left; train nothing")
    args = p.parse_args(argv)
    scratch = common.HERE / "scratch" / "paper_budget"
    if args.results is None:
        args.results = common.HERE / "results" / "paper_budget" if args.budget == "paper" else scratch
    args.work = args.work or scratch / args.budget
    return status(args) if args.status else run(args)


if __name__ == "__main__":
    sys.exit(main())
