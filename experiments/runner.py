"""A list of runs trained one at a time that survives any stop: the runner of `paper_budget.py` and
`transformer_screen.py`.

A plan is ``[(part, tag, flags)]`` (flat flags of `jdfa.driver.from_flags`, ``steps`` and ``seed``
among them). Each run trains in ``<work>/runs/<tag>`` with checkpoints; a run whose folder holds a
checkpoint continues from it (``resume``), bit for bit the run it would have been. A finished run
leaves a small record ``<results>/records/<tag>.json`` (config, seed, steps, wall time, the commit
that trained it, its metric curves) and its checkpoints are deleted; a run whose record exists is
never trained again. With ``commit`` each record is committed to the git repository that holds
``<results>`` as it is written, so work can continue on a fresh machine, where only the committed
records are found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jdfa

import common


def parse_args(doc: str, name: str, budgets, argv=None, extra=None) -> argparse.Namespace:
    """``--budget`` (``budgets``' first is the full one), ``--results`` (the records' folder:
    ``experiments/results/<name>`` for the full budget, the scratch folder for the others),
    ``--work`` (the runs and their checkpoints, under ``experiments/scratch/<name>``),
    ``--commit`` and ``--status``; ``extra(parser)`` adds a script's own flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    full = tuple(budgets)[0]
    p.add_argument("--budget", choices=tuple(budgets), default=full)
    p.add_argument("--results", type=Path, default=None,
                   help=f"folder of records/ (default experiments/results/{name}; other budgets: scratch)")
    p.add_argument("--work", type=Path, default=None,
                   help=f"folder of the runs and their checkpoints (default experiments/scratch/{name})")
    p.add_argument("--commit", action="store_true", help="git-commit each record as it is written")
    p.add_argument("--status", action="store_true",
                   help="print what is done and the time left; train nothing")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    scratch = common.HERE / "scratch" / name
    if args.results is None:
        args.results = common.HERE / "results" / name if args.budget == full else scratch
    args.work = args.work or scratch / args.budget
    return args


def commit_of(repo: Path) -> str:
    """The commit the code runs from, ``+dirty`` when its tracked files differ from it."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def train_one(tag: str, flags: dict, *, work: Path, data, checkpoint_every: int):
    """Trains (or continues) one run in ``work/runs/tag``; returns its summary."""
    out = work / "runs" / tag
    started = any(p.name.isdigit() for p in (out / "checkpoints").glob("*"))
    config, data = jdfa.driver.from_flags(
        {**common.for_rule(flags), "out": str(out), "progress": False,
         "checkpoint_every": checkpoint_every, "keep_checkpoints": 2,
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


def commit_record(name: str, path: Path, tag: str) -> None:
    """Commits this one file (``git commit --only``), leaving anything else staged alone; retried
    while another git command holds the index."""
    repo = path.parent
    for _ in range(30):
        add = subprocess.run(["git", "-C", str(repo), "add", path.name], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", str(repo), "commit", "-q", "-m", f"{name}: record of {tag}", "--only",
             path.name], capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2)
    print(f"[{name}] could not commit {path}; it stays in the work tree", flush=True)


def status(name: str, plan: list, results: Path, work: Path) -> int:
    """Prints, per part, the runs with records and an estimate of the time left (the median run of
    the part so far, else of all parts), and any run in progress here (its checkpoint's step)."""
    done, times = {}, {}
    for part, tag, _ in plan:
        path = results / "records" / f"{tag}.json"
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
        print(f"[{name}] {part}: {n}/{total} runs{more}")
    progress = []
    for run_dir in sorted((work / "runs").glob("*")):
        steps = [int(c.name) for c in (run_dir / "checkpoints").glob("*") if c.name.isdigit()]
        if steps and not (results / "records" / f"{run_dir.name}.json").exists():
            progress.append(f"{run_dir.name} at step {max(steps)}")
    where = f"; in progress here: {', '.join(progress)}" if progress else ""
    eta = f"~{left / 3600:.1f} h of training left" if left == left else "no run finished yet to time"
    print(f"[{name}] {sum(n for n, _ in done.values())} of {len(plan)} runs have "
          f"records; {eta}{where}")
    return 0


def run(name: str, plan: list, *, results: Path, work: Path, data, checkpoint_every: int,
        commit: bool) -> int:
    """Trains every run of ``plan`` without a record, in order; 0 when all have records, 130 when
    stopped (the checkpoint stays for the next start), 1 when a run ended otherwise."""
    records = results / "records"
    records.mkdir(parents=True, exist_ok=True)
    code = commit_of(common.REPO)
    for i, (part, tag, flags) in enumerate(plan):
        path = records / f"{tag}.json"
        if path.exists():
            continue
        print(f"[{name}] {time.strftime('%H:%M:%S')} run {i + 1}/{len(plan)} {tag} (commit "
              f"{code[:12]})", flush=True)
        summary = train_one(tag, flags, work=work, data=data, checkpoint_every=checkpoint_every)
        if summary["status"] not in ("finished", "diverged"):
            print(f"[{name}] {tag} ended {summary['status']!r}; its checkpoint stays for the "
                  "next start", flush=True)
            return 130 if summary["status"] in ("interrupted", "aborted") else 1
        rec = record_of(part, tag, flags, work / "runs" / tag, summary, code)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=None, default=common._jsonable) + "\n")
        os.replace(tmp, path)  # a record is whole or absent
        shown = {k: summary[k] for k in ("test_accuracy", "test_loss") if k in summary}
        print(f"[{name}] {tag}: {summary['status']}, "
              + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + f", {summary['wall_s']:.0f} s",
              flush=True)
        if commit:
            commit_record(name, path, tag)
        for ckpt in (work / "runs" / tag / "checkpoints").glob("*"):
            subprocess.run(["rm", "-rf", str(ckpt)])  # the record is what stays
    print(f"[{name}] all {len(plan)} runs have records", flush=True)
    return 0
