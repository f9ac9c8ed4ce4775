r"""Step time of jdfa at two git revisions, measured in ONE process: did a change make a step slower?

Two processes run minutes apart on a shared machine differ by more than the 5 % a refactor may
cost, so both revisions' ``jdfa`` are imported side by side in this process (each exported with
``git archive`` to a temporary folder, ``sys.modules`` swapped between the imports) and their
jitted train steps (`jdfa.make_train_step`, the MLP, one batch, SGD) are timed interleaved: rounds
of ``--steps`` calls, the order of the programs reversed every round. Each record gives, per rule
and revision, the median wall and CPU time of a step and their ratio to ``--old``'s (CPU time is
far less sensitive to the other processes of a shared machine), and ``other_load``, the cores
other processes kept busy meanwhile (`common.ForeignLoad`; well above 0: the times are suspect).

Example (issue 30's check: the MLP through the one chain interpreter against the stacked path)::

    python benchmarks/revisions.py --old 1bdb223 --new HEAD --rules dfa,bp,bdfa25,fp1 \
        --out benchmarks/results/cpu/revisions.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common  # this folder is on sys.path when the script runs


def export(revision: str, into: str) -> tuple[str, str]:
    """The ``jdfa`` package of ``revision`` (a git revision of this repository) in the new folder
    ``into``; returns ``into`` (to put on ``sys.path``) and the full commit it resolved to."""
    commit = subprocess.run(["git", "-C", common.REPO_ROOT, "rev-parse", "--verify",
                             f"{revision}^{{commit}}"], capture_output=True, text=True)
    if commit.returncode:
        raise SystemExit(f"revisions.py: {revision!r} is not a revision of {common.REPO_ROOT}: "
                         f"{commit.stderr.strip()}")
    sha = commit.stdout.strip()
    os.makedirs(into)
    archive = subprocess.run(["git", "-C", common.REPO_ROOT, "archive", sha, "jdfa"], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into, sha


def import_jdfa(folder: str):
    """``jdfa`` imported from ``folder``, whatever ``jdfa`` was imported before."""
    for name in [m for m in sys.modules if m == "jdfa" or m.startswith("jdfa.")]:
        del sys.modules[name]
    sys.path.insert(0, folder)
    try:
        jdfa = importlib.import_module("jdfa")
    finally:
        sys.path.remove(folder)
    if not jdfa.__file__.startswith(folder):
        raise RuntimeError(f"imported {jdfa.__file__}, not the export in {folder}")
    return jdfa


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the baseline revision (ratios are to it)")
    p.add_argument("--new", default="HEAD", help="the revision to compare (default HEAD)")
    p.add_argument("--rules", default="dfa,bp,bdfa25,fp1", help="comma-separated rule specs")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps of each program per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = p.parse_args(argv)
    import jax
    import numpy as np
    import optax

    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.random((args.batch, 784), np.float32))
    y = jax.numpy.asarray(rng.integers(0, 10, args.batch), jax.numpy.int32)
    programs, shas = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for tag in ("old", "new"):
            folder, shas[tag] = export(getattr(args, tag), os.path.join(tmp, tag))
            jdfa = import_jdfa(folder)
            jdfa.tune_allocator()  # once per process: the first revision's call sets it for both
            net = jdfa.MLP(784, width=args.width, depth=args.depth, out_features=10, weight_init="orthogonal")
            for spec in common.str_list(args.rules):
                rule, opt = jdfa.rules.parse(spec), optax.sgd(1e-3)
                state = jdfa.init_train_state(jax.random.key(0), net, rule, opt)
                step = jdfa.make_train_step(net, rule, opt)
                for _ in range(args.warmup):
                    state, metrics = step(state, x, y)
                jax.block_until_ready(metrics)
                programs[spec, tag] = [step, state]
        env = {k: v for k, v in common.environment().items() if k not in ("jdfa_commit", "jdfa_dirty")}
        wall = {k: [] for k in programs}
        cpu = {k: [] for k in programs}
        load = common.ForeignLoad()
        keys = list(programs)
        for r in range(args.rounds):
            for key in keys if r % 2 == 0 else keys[::-1]:
                step, state = programs[key]
                for _ in range(args.steps):
                    t, c = time.perf_counter(), time.process_time()
                    state, metrics = step(state, x, y)
                    jax.block_until_ready(metrics)
                    wall[key].append(time.perf_counter() - t)
                    cpu[key].append(time.process_time() - c)
                programs[key][1] = state
        other_load = load.cores()
    out = common.Emitter(args.out, append=True)
    for spec in common.str_list(args.rules):
        old_wall, old_cpu = (statistics.median(d[spec, "old"]) * 1e3 for d in (wall, cpu))
        for tag in ("old", "new"):
            w, c = (statistics.median(d[spec, tag]) * 1e3 for d in (wall, cpu))
            out.emit({"kind": "revisions", "rule": spec, "revision": tag, "commit": shas[tag],
                      "depth": args.depth, "width": args.width, "batch": args.batch,
                      "steps": len(wall[spec, tag]), "wall_ms_median": round(w, 3),
                      "cpu_ms_median": round(c, 3), "wall_ratio": round(w / old_wall, 4),
                      "cpu_ratio": round(c / old_cpu, 4), "other_load": other_load, **env})
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
