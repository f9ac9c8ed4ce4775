"""Helpers shared by the experiment scripts: flags, data, running `jdfa.train`, tables and plots.

Every script's ``main(argv=None)`` does the same four things, in order (nothing runs on import):

1. ``args = common.parse_args(__doc__, "name", argv=argv)`` -- ``--quick``, ``--dataset``, ``--out``;
2. ``data = common.load_data(args)`` -- exits with a clear message if the dataset is missing;
3. ``common.run(args, "tag", data=data, **config)`` for each run -- ``config`` is flat flags
   (`jdfa.driver.from_flags`'s names), turned into a `jdfa.Config` and trained with `jdfa.train`;
   the run's ``metrics.jsonl``, ``config.json`` and ``summary.json`` stay under
   ``<out>/runs/<tag>/``, and it returns the summary plus the metric records -- or
   ``common.run_all(args, {tag: config}, data=data)`` for a group of independent runs, which
   ``--jobs N`` trains N at a time in separate processes;
4. ``common.write_results(args, results, table)`` and ``common.savefig(args, fig, "name.png")``.

Results go to ``experiments/results/<name>/`` (committed: full-budget runs only), ``--quick`` ones
to ``experiments/scratch/<name>/`` (ignored by git), unless ``--out`` says otherwise. Importing this
module changes neither the environment nor ``sys.path``; `load_data` sets this checkout's data and
cache folders as defaults of ``JDFA_DATA_DIR`` / ``JDFA_CACHE_DIR`` when a script runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt  # re-exported for the scripts (`common.plt`)
import numpy as np

import jdfa
from jdfa.data import DataError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # this checkout's MNIST folder, when it exists
CACHE_DIR = "/tmp/jdfa_cache"


# ----------------------------------------------------------------------------------------- flags

def parse_args(doc: str, name: str, datasets=("mnist", "notmnist"), extra=None,
               argv=None, budgets=None) -> argparse.Namespace:
    """``--quick`` (minutes-long smoke version), ``--dataset``, ``--out`` (results folder,
    default ``experiments/results/<name>``; with a non-default dataset ``<name>_<dataset>``),
    ``--fresh`` (retrain runs whose folder already holds a finished run of the same config) and
    ``--jobs`` (runs trained at once by `run_all`).
    ``extra(parser)`` adds a script's own flags. ``budgets`` (names, the first the default) adds
    ``--budget``: each budget's results get their own folder ``<name>/<budget>``, so a CPU-sized
    budget never writes over the full one's committed results."""
    plt.switch_backend("Agg")  # files only, never a window
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke version (minutes)")
    p.add_argument("--dataset", default=datasets[0], choices=datasets)
    p.add_argument("--out", default=None, help="results folder (default experiments/results/NAME; "
                                               "with --quick, experiments/scratch/NAME)")
    p.add_argument("--fresh", action="store_true",
                   help="retrain even where runs/<tag> holds a finished run of the same config")
    p.add_argument("--jobs", type=int, default=1,
                   help="train up to N independent runs at once, each in its own process (for a GPU, "
                        "which one small net leaves mostly idle; on a 2-core CPU keep 1)")
    p.add_argument("--vmap-seeds", action="store_true",
                   help="train each recipe's seeds as one vmapped program (jdfa.sweep): on a GPU about "
                        "the cost of one run; on a 2-core CPU slower than one after another")
    if budgets:
        p.add_argument("--budget", choices=budgets, default=budgets[0],
                       help="which budget to train (each writes its own results folder)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    args.name = name
    if args.out is None:  # committed results come from full runs only; quick ones go to scratch
        suffix = "" if args.dataset == datasets[0] else f"_{args.dataset}"
        folder = f"{name}{suffix}" + (f"/{args.budget}" if budgets and not args.quick else "")
        args.out = str(HERE / ("scratch" if args.quick else "results") / folder)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.mode = "quick" if args.quick else getattr(args, "budget", "full")
    return args


# ------------------------------------------------------------------------------------------ data

def data_defaults() -> None:
    """This checkout's defaults for `jdfa.data`, set when a script loads its data (never on
    import): ``JDFA_DATA_DIR`` the shared MNIST folder next to the repository (when it exists) and
    ``JDFA_CACHE_DIR`` a cache in /tmp. Only defaults: an exported value wins. Set in the
    environment so that `run_all`'s child processes inherit them."""
    if SHARED_DATA.is_dir():
        os.environ.setdefault("JDFA_DATA_DIR", str(SHARED_DATA))
    os.environ.setdefault("JDFA_CACHE_DIR", CACHE_DIR)


def load_data(args):
    """``((x_train, y_train), (x_test, y_test))`` for ``args.dataset``, loaded once per script.

    A missing dataset (notMNIST is not shipped with this checkout) ends the script with a message
    that says so and how to provide it, and exit status 3."""
    if args.dataset == "xor":
        x, y = jdfa.data.xor()
        return (x, y), (x, y)
    data_defaults()
    try:
        return (jdfa.data.load(args.dataset, "train", download=False),
                jdfa.data.load(args.dataset, "test", download=False))
    except DataError as err:
        print(f"[{args.name}] dataset {args.dataset!r} is MISSING here, so this experiment was not run.\n"
              f"{err}", file=sys.stderr)
        sys.exit(3)


# ------------------------------------------------------------------------------------------ runs

def run(args, tag: str, *, data, **config) -> dict:
    """One `jdfa.train` run into ``<out>/runs/<tag>``. ``config`` holds flat flags (the names of
    `jdfa.driver.from_flags`: ``rule``, ``depth``, ``lr``, ...; rule fields the rule does not have
    are dropped, see `for_rule`), plus ``keep_state``. Returns the summary (without the state
    unless ``keep_state``) with ``records`` (the metrics.jsonl lines) added."""
    keep_state = config.pop("keep_state", False)
    out = args.out / "runs" / tag
    flags = for_rule(config)
    if not keep_state and not args.fresh:
        done = finished_run(args, tag, flags, data)
        if done is not None:
            print(f"[{args.name}] {tag}: reusing the finished run in {out} (same config; --fresh retrains)")
            return done
    print(f"[{args.name}] {tag}: " + ", ".join(f"{k}={v}" for k, v in flags.items() if k != "progress"),
          flush=True)
    cfg, data = config_of(args, tag, flags, data)
    summary = jdfa.train(dataclasses.replace(cfg, overwrite=True), data=data)  # retrain: replace it
    state = summary.pop("state")
    (out / "curves.png").unlink(missing_ok=True)  # the experiment's own figures replace these
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # large for deep nets; not needed here
    summary["records"], summary["config"] = read_records(out), saved_config(out, args.out)
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
        todo = {tag: cfg for tag, cfg in runs.items()
                if args.fresh or finished_run(args, tag, for_rule(cfg), data) is None}
        _train_concurrently(args, todo)
        args = argparse.Namespace(**{**vars(args), "fresh": False})  # keep what just trained
    return {tag: run(args, tag, data=data, **cfg) for tag, cfg in runs.items()}


# Every rule field of any rule (``block_size``, ``bp_depth``, ``feedback_init``, ...).
_RULE_FIELDS = {f.name for cls in jdfa.rules.RULES.values() for f in dataclasses.fields(cls)}


def for_rule(config: dict) -> dict:
    """``config`` (flat flags) without ``keep_state`` and without the rule fields that its rule
    does not have (``feedback_init`` for ``bp``, ``block_size`` for ``dfa``), so that one recipe
    can be passed to every rule: such a field never changed what the rule does, and
    `jdfa.driver.from_flags` refuses it."""
    rule = config.get("rule", jdfa.driver.flags.defaults()["rule"])
    own = {f.name for f in dataclasses.fields(rule if isinstance(rule, jdfa.rules.Rule)
                                              else jdfa.rules.parse(rule))}
    return {k: v for k, v in config.items() if k != "keep_state" and (k not in _RULE_FIELDS or k in own)}


def config_of(args, tag: str, flags: dict, data):
    """``(config, data)``: the `jdfa.Config` of a run of ``flags`` into ``runs/<tag>``."""
    # No checkpoints: an experiment's runs are retrained, not resumed, and deep ones would pay for them.
    flags = {"progress": False, "checkpoint": False, **flags, "dataset": args.dataset,
             "out": str(args.out / "runs" / tag)}
    return jdfa.driver.from_flags(flags, data)


def finished_run(args, tag: str, flags: dict, data) -> dict | None:
    """The finished run in ``runs/<tag>`` if it was trained with the config of ``flags``, else None."""
    done = load_run(args.out / "runs" / tag, args.out)
    if done is None or done["status"] not in ("finished", "diverged"):
        return None
    wanted, _ = config_of(args, tag, flags, data)
    return done if _same(done["config"], wanted.to_dict()) else None


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
    """Same config (both `jdfa.Config.to_dict`'s nested dicts), ignoring where it was written and
    run fields a run saved before they existed (when the wanted value is the default)."""
    ignore = {"out", "progress", "data_dir", "tensorboard", "resume", "overwrite"}
    defaults = jdfa.Config().to_dict()
    return all(saved.get(k, defaults.get(k)) == v for k, v in wanted.items() if k not in ignore)


def read_records(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def saved_config(run_dir, results) -> dict:
    """The run's `jdfa.Config.to_dict` from its config.json, with ``out`` the run's folder relative
    to ``results`` (the folder its experiment's results are kept in: ``runs/<tag>``), so that a
    committed results file names no machine's folders and reads the same in any checkout."""
    config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    config["out"] = Path(os.path.relpath(run_dir, results)).as_posix()
    return config


def load_run(run_dir, results) -> dict | None:
    """A finished run's summary + records from its folder, or None (for reusing another
    experiment's runs instead of recomputing them); ``results`` as in `saved_config`. A folder that
    lacks any of its three files (a run stopped while its folder was being replaced) is not a
    finished run."""
    run_dir = Path(run_dir)
    if not all((run_dir / name).is_file() for name in ("summary.json", "config.json", "metrics.jsonl")):
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["config"], summary["records"] = saved_config(run_dir, results), read_records(run_dir)
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
    mode = {"quick": "**--quick run** (a smoke test with a tiny budget: the numbers are NOT comparable "
                     "with the paper)",
            "cpu": "**CPU-sized budget** (`--budget cpu`, below: shorter than the paper-like `--budget "
                   "full`)"}.get(args.mode, "full run (the budget below)")
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
