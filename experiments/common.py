"""Helpers shared by the experiment scripts: flags, data, running `jdfa.train`, tables and plots.

Every script does the same four things, in order:

1. ``args = common.parse_args(__doc__, "name")`` -- ``--quick``, ``--dataset``, ``--out``;
2. ``data = common.load_data(args)`` -- exits with a clear message if the dataset is missing;
3. ``common.run(args, "tag", data=data, **config)`` for each run -- a thin call of `jdfa.train`
   that keeps the run's ``metrics.jsonl``, ``config.json`` and ``summary.json`` under
   ``<out>/runs/<tag>/`` and returns the summary plus the metric records -- or
   ``common.run_all(args, {tag: config}, data=data)`` for a group of independent runs, which
   ``--jobs N`` trains N at a time in separate processes;
4. ``common.write_results(args, results, table)`` and ``common.savefig(args, fig, "name.png")``.

Results go to ``experiments/results/<name>/`` unless ``--out`` says otherwise (the tests write to a
temporary folder so they never overwrite the committed results).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Defaults for this checkout: the shared MNIST folder next to the repository and a cache in /tmp.
# Both are only defaults; an exported JDFA_DATA_DIR / JDFA_CACHE_DIR wins.
if (REPO.parent / "shared" / "data").is_dir():
    os.environ.setdefault("JDFA_DATA_DIR", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("JDFA_CACHE_DIR", "/tmp/jdfa_cache")
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (re-exported for the scripts)
import numpy as np  # noqa: E402

import jdfa  # noqa: E402
from jdfa.data import DataError  # noqa: E402


# ----------------------------------------------------------------------------------------- flags

def parse_args(doc: str, name: str, datasets=("mnist", "notmnist"), extra=None,
               argv=None) -> argparse.Namespace:
    """``--quick`` (minutes-long smoke version), ``--dataset``, ``--out`` (results folder,
    default ``experiments/results/<name>``; with a non-default dataset ``<name>_<dataset>``),
    ``--fresh`` (retrain runs whose folder already holds a finished run of the same config) and
    ``--jobs`` (runs trained at once by `run_all`).
    ``extra(parser)`` adds a script's own flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke version (minutes)")
    p.add_argument("--dataset", default=datasets[0], choices=datasets)
    p.add_argument("--out", default=None, help="results folder (default experiments/results/NAME)")
    p.add_argument("--fresh", action="store_true",
                   help="retrain even where runs/<tag> holds a finished run of the same config")
    p.add_argument("--jobs", type=int, default=1,
                   help="train up to N independent runs at once, each in its own process (for a GPU, "
                        "which one small net leaves mostly idle; on a 2-core CPU keep 1)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    args.name = name
    if args.out is None:
        suffix = "" if args.dataset == datasets[0] else f"_{args.dataset}"
        args.out = str(HERE / "results" / f"{name}{suffix}")
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.mode = "quick" if args.quick else "full"
    return args


# ------------------------------------------------------------------------------------------ data

def load_data(args):
    """``((x_train, y_train), (x_test, y_test))`` for ``args.dataset``, loaded once per script.

    A missing dataset (notMNIST is not shipped with this checkout) ends the script with a message
    that says so and how to provide it, and exit status 3."""
    if args.dataset == "xor":
        x, y = jdfa.data.xor()
        return (x, y), (x, y)
    try:
        return (jdfa.data.load(args.dataset, "train", download=False),
                jdfa.data.load(args.dataset, "test", download=False))
    except DataError as err:
        print(f"[{args.name}] dataset {args.dataset!r} is MISSING here, so this experiment was not run.\n"
              f"{err}", file=sys.stderr)
        sys.exit(3)


# ------------------------------------------------------------------------------------------ runs

def run(args, tag: str, *, data, **config) -> dict:
    """One `jdfa.train` run into ``<out>/runs/<tag>``. Returns the summary (without the state
    unless ``keep_state``) with ``records`` (the metrics.jsonl lines) added."""
    keep_state = config.pop("keep_state", False)
    out = args.out / "runs" / tag
    config.setdefault("progress", False)
    if not keep_state and not args.fresh:
        done = _finished(args, tag, config)
        if done is not None:
            print(f"[{args.name}] {tag}: reusing the finished run in {out} (same config; --fresh retrains)")
            return done
    print(f"[{args.name}] {tag}: " + ", ".join(f"{k}={v}" for k, v in config.items() if k != "progress"),
          flush=True)
    summary = jdfa.train(data=data, out=str(out), dataset=args.dataset, **config)
    state = summary.pop("state")
    (out / "curves.png").unlink(missing_ok=True)  # the experiment's own figures replace these
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # large for deep nets; not needed here
    summary["records"] = read_records(out)
    if keep_state:
        summary["state"] = state
    print(f"[{args.name}] {tag}: {summary['status']} at step {summary['step']}, "
          f"train {summary.get('train_accuracy', float('nan')):.4f}, "
          f"test {summary.get('test_accuracy', float('nan')):.4f}, {summary['steps_per_s']} steps/s",
          flush=True)
    return summary


def run_all(args, runs: dict, *, data) -> dict:
    """``{tag: config}`` -> ``{tag: result}``: `run` for each. With ``args.jobs > 1`` the runs
    that are not finished yet first train ``args.jobs`` at a time, each in its own Python process
    (its output in ``runs/<tag>.log``), and are then read back like any finished run. The numbers
    are those of the same runs trained one after the other: each run is a function of its config."""
    if args.jobs > 1:
        todo = {tag: cfg for tag, cfg in runs.items() if args.fresh or _finished(args, tag, cfg) is None}
        _train_concurrently(args, todo)
        args = argparse.Namespace(**{**vars(args), "fresh": False})  # keep what just trained
    return {tag: run(args, tag, data=data, **cfg) for tag, cfg in runs.items()}


def _finished(args, tag: str, config: dict) -> dict | None:
    """The finished run in ``runs/<tag>`` if it was trained with ``config``, else None."""
    out = args.out / "runs" / tag
    done = load_run(out)
    config = {k: v for k, v in config.items() if k != "keep_state"}
    config.setdefault("progress", False)
    wanted = dataclasses.asdict(jdfa.Config(**config, dataset=args.dataset, out=str(out)))
    if done is not None and done["status"] in ("finished", "diverged") and _same(done["config"], wanted):
        return done
    return None


# A child process trains one run through `run` itself, so its folder ends up as a serial run's.
_CHILD = """
import argparse, json, sys
from pathlib import Path
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["here"])
import common
args = argparse.Namespace(out=Path(spec["out"]), fresh=True, name=spec["name"], dataset=spec["dataset"])
common.run(args, spec["tag"], data=common.load_data(args), **spec["config"])
"""


def _train_concurrently(args, runs: dict) -> None:
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # N processes share one device
    queue, running, failed = list(runs.items()), [], []
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    print(f"[{args.name}] training {len(queue)} run(s), {args.jobs} at a time", flush=True)
    while queue or running:
        while queue and len(running) < args.jobs:
            tag, config = queue.pop(0)
            spec = dict(here=str(HERE), out=str(args.out), name=args.name, dataset=args.dataset,
                        tag=tag, config=config)
            log = open(args.out / "runs" / f"{tag}.log", "w")
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            running.append((tag, proc, log))
        time.sleep(1.0)
        for item in [r for r in running if r[1].poll() is not None]:
            tag, proc, log = item
            log.close()
            running.remove(item)
            print(f"[{args.name}] {tag}: process ended with status {proc.returncode}", flush=True)
            if proc.returncode != 0:
                failed.append(tag)
    if failed:
        raise SystemExit(f"[{args.name}] run(s) failed: {', '.join(failed)}; see "
                         f"{args.out / 'runs'}/<tag>.log")


def _same(saved: dict, wanted: dict) -> bool:
    """Same config, ignoring where it was written and fields a run saved before they existed
    (when the wanted value is the default)."""
    ignore = {"out", "progress", "data_dir", "tensorboard", "resume"}
    defaults = dataclasses.asdict(jdfa.Config())
    return all(saved.get(k, defaults.get(k)) == v for k, v in wanted.items() if k not in ignore)


def read_records(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run(run_dir) -> dict | None:
    """A finished run's summary + records from its folder, or None (for reusing another
    experiment's runs instead of recomputing them). A folder that lacks any of its three files (a
    run stopped while its folder was being replaced) is not a finished run."""
    run_dir = Path(run_dir)
    if not all((run_dir / name).is_file() for name in ("summary.json", "config.json", "metrics.jsonl")):
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["config"] = json.loads((run_dir / "config.json").read_text())["config"]
    summary["records"] = read_records(run_dir)
    return summary


def series(run_result: dict, key: str):
    """(steps, values) of ``key`` over the run's records that have it."""
    recs = [r for r in run_result["records"] if key in r]
    return np.array([r["step"] for r in recs]), np.array([r[key] for r in recs], dtype=float)


def final(run_result: dict, key: str = "test_accuracy") -> float:
    """The last evaluation's value of ``key`` (NaN for a run that never evaluated)."""
    return float(run_result.get(key, float("nan")))


def best(run_result: dict, key: str = "test_accuracy") -> float:
    _, v = series(run_result, key)
    return float(np.nanmax(v)) if len(v) else float("nan")


def slim(run_result: dict) -> dict:
    """A run's summary without its records/state, for the results JSON."""
    return {k: v for k, v in run_result.items() if k not in ("records", "state", "out")}


# --------------------------------------------------------------------------------------- outputs

def pct(value, digits: int = 1) -> str:
    """A fraction as a percentage string; '—' for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{digits}f}"


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(args, results: dict, table: str, title: str, notes: str = "") -> None:
    """``results.json`` and ``table.md`` (title, mode, the table, then notes) in ``args.out``."""
    results = {"experiment": args.name, "mode": args.mode, "dataset": args.dataset, **results}
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    mode = ("**--quick run** (a smoke test with a tiny budget: the numbers are NOT comparable with "
            "the paper)" if args.quick else "full run (the budget below)")
    text = f"# {title}\n\nMode: {mode}. Dataset: {args.dataset}.\n\n{table}\n{notes.strip()}\n"
    (args.out / "table.md").write_text(text)
    print(text)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def savefig(args, fig, filename: str) -> Path:
    path = args.out / filename
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"[{args.name}] wrote {path}")
    return path


def plot_metric(ax, runs: dict, key: str, *, error: bool = False, label_fmt="{}", **kw) -> None:
    """One line per run of ``key`` against step (``error=True`` plots ``1 - key``)."""
    for tag, r in runs.items():
        steps, values = series(r, key)
        if len(steps):
            ax.plot(steps, 1 - values if error else values, label=label_fmt.format(tag), **kw)
    ax.set_xlabel("step")
    ax.set_ylabel(("1 - " if error else "") + key.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
