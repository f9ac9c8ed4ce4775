r"""Run-steps per second of R training runs: one vmapped program, groups of G, or one after another.

    python benchmarks/sweep_throughput.py --quick
    python benchmarks/sweep_throughput.py --out benchmarks/results/cpu/sweep_throughput.jsonl \
        --plot benchmarks/results/cpu/sweep_throughput.png

For every configuration (``--configs``, DEPTHxWIDTH), rule and run count N (``--runs``) it trains N
runs of the driver's jitted chunk of ``--steps`` guarded steps (`jdfa.driver.chunks`, Adam, batches
drawn on the device from synthetic data) under three schedules: ``vmapped`` (all N runs in one
`make_chunk` program), ``grouped`` (programs of ``--group`` runs, one group after another) and
``sequential`` (programs of one run, as `jdfa.train` runs one, one after another). Every program is compiled
first (timed apart, ``compile_s``); then the schedules of one N take turns, ``--repeats`` times with
the order rotating, and the median is kept, so ``speedup_vs_sequential`` (run-steps/s over the
sequential schedule's at the same N) compares times taken side by side. ``vs_one_run`` divides by
the sequential rate at N = 1 of the same process. A last ``"kind": "conclusion"`` line says which
schedule was fastest for each configuration and N. The defaults take about 21 minutes on 2 CPU
cores; ``--quick`` (about 15 s) is a smoke check that never writes into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import common  # this folder is on sys.path when the script runs (tests add it to import it)

SCHEDULES = ("vmapped", "grouped", "sequential")
QUICK = dict(configs="3x16", runs="1,2,4", rules="dfa,bp", group=2, steps=3, repeats=2)
DEFAULTS = dict(configs="100x200,10x256", runs="1,2,4,8,16,32", rules="dfa,bp,bdfa25", group=4, steps=10,
                repeats=3)
TARGET = dict(depth=100, runs=32, bound=16.0)  # the GPU goal: 32 vmapped runs >= 16x one run


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"100x200,10x256"`` -> ``[(100, 200), (10, 256)]`` (depth, width)."""
    out = []
    for item in common.str_list(text):
        depth, _, width = item.lower().partition("x")
        if not (depth.isdigit() and width.isdigit()):
            raise SystemExit(f"--configs: {item!r} is not DEPTHxWIDTH")
        out.append((int(depth), int(width)))
    return out


def measure_rule(depth, width, spec, args, env, emit):
    """All N and schedules of one (configuration, rule); returns the records."""
    import jax
    import jax.numpy as jnp

    import jdfa
    from jdfa.driver.chunks import Epochs, hyper, init_runs, make_chunk, run_keys

    rule, optimizer = jdfa.rules.parse(spec), jdfa.Optimizer("adam", lr=args.lr)
    net, b = jdfa.MLP(784, width, depth, 10), args.batch
    kx, ky = jax.random.split(jax.random.key(args.seed))
    x = jax.random.uniform(kx, (args.n_train, 784), jnp.float32)
    y = jax.random.randint(ky, (args.n_train,), 0, 10)
    n_steps, length = jnp.int32(args.steps), 100 * args.steps  # length: the (constant) lr schedule's
    programs = {}  # runs per program -> (compiled, compile seconds, temp MiB)

    def program(r):
        if r not in programs:
            s, h, z = stacked(r)
            order = Epochs(args.n_train, b).orders(h.data_key, s.step)
            t0 = time.perf_counter()
            c = make_chunk(net, rule, optimizer, length, b, "mean", False, args.n_train, r).lower(
                s, h, x, y, n_steps, z, z, order).compile()
            mem = c.memory_analysis()
            programs[r] = (c, time.perf_counter() - t0, mem.temp_size_in_bytes / 2**20 if mem else None)
        return programs[r]

    def stacked(n, first=0):
        keys = [run_keys(args.seed + first + i) for i in range(n)]
        state = init_runs(jnp.stack([k[0] for k in keys]), [rule] * n, net, optimizer, length)
        hyp = jax.tree.map(lambda *a: jnp.stack(a), *[hyper(k[1], optimizer) for k in keys])
        return state, hyp, jnp.zeros((n,), jnp.float32)

    def schedule(name, n):
        """A closure that runs one chunk of every run as ``name`` says, and its program sizes."""
        size = {"vmapped": n, "grouped": min(args.group, n), "sequential": 1}[name]
        parts = [(i, min(size, n - i)) for i in range(0, n, size)]
        sizes = {s for _, s in parts}
        for s in sizes:
            program(s)
        # each part with its own Epochs: the loop's epoch orders, drawn again only at a new epoch
        live = [[*stacked(s, i), Epochs(args.n_train, b)] for i, s in parts]

        def run(k=n_steps):
            for item in live:  # one program after another: each ends before the next starts
                order = item[3].orders(item[1].data_key, item[0].step)
                item[0], _ = programs[len(item[2])][0](item[0], item[1], x, y, k, item[2], item[2], order)
                jax.block_until_ready(item[0])
        return run, size, sum(programs[s][1] for s in sizes), programs[max(sizes)][2]

    state_mib = sum(a.nbytes for a in jax.tree.leaves(stacked(1)[0])) / 2**20
    records, one_run = [], None
    for n in common.int_list(args.runs):
        runs = {name: schedule(name, n) for name in args.schedules}
        for fn, *_ in runs.values():
            fn(jnp.int32(1))  # warm-up: one step (the step count is traced: no recompilation)
        if args.wait_quiet > 0:
            common.wait_for_quiet(args.wait_quiet)
        load, times = common.ForeignLoad(), {name: [] for name in runs}
        names = list(runs)
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(common.time_call(runs[name][0]))
        other = load.cores()
        rate = {name: n * args.steps / statistics.median(t) for name, t in times.items()}
        if n == 1 and "sequential" in rate:
            one_run = rate["sequential"]
        for name in names:
            _, size, compile_s, temp = runs[name]
            rec = {"kind": "throughput", "config": f"{depth}x{width}", "depth": depth, "width": width,
                   "batch": b, "rule": rule.spec, "optimizer": f"adam(lr={args.lr:g})", "runs": n,
                   "schedule": name, "group_size": size, "steps_per_chunk": args.steps,
                   "repeats": args.repeats, "time_s_median": statistics.median(times[name]),
                   "time_s_min": min(times[name]), "run_steps_per_s": rate[name],
                   "ms_per_run_step": 1e3 / rate[name],
                   "speedup_vs_sequential": rate[name] / rate["sequential"] if "sequential" in rate else None,
                   "vs_one_run": rate[name] / one_run if one_run else None,
                   "compile_s": compile_s, "temp_mib": temp, "state_mib_per_run": state_mib,
                   "n_train": args.n_train, "other_load_cores": other, **env}
            emit(rec)
            records.append(rec)
        common.log(f"  {depth}x{width} {rule.spec:<7} N={n:<3} " + "  ".join(
            f"{k} {rate[k]:7.1f}/s" for k in names) + f"  (other load {other or 0:.2f})")
        del runs
    return records


def conclusion(records, quick: bool) -> dict:
    """Which schedule is fastest per configuration and N (summed over the rules' run-steps/s), and
    the GPU target's ratio where the configuration and N were measured."""
    best, text = {}, []
    for cfg in dict.fromkeys(r["config"] for r in records):
        per_n = {}
        for r in (r for r in records if r["config"] == cfg):
            score = r["speedup_vs_sequential"] or r["run_steps_per_s"]  # no sequential: raw rates
            per_n.setdefault(r["runs"], {}).setdefault(r["schedule"], []).append(score)
        best[cfg] = {str(n): max(s, key=lambda k: statistics.mean(s[k])) for n, s in per_n.items()}
        text.append(f"{cfg}: " + ", ".join(f"N={n} {k}" for n, k in best[cfg].items()))
    hit = [r["vs_one_run"] for r in records if r["schedule"] == "vmapped" and r["depth"] == TARGET["depth"]
           and r["runs"] == TARGET["runs"] and r["rule"] == "dfa" and r["vs_one_run"]]
    target = {"name": f"dfa, {TARGET['runs']} vmapped depth-{TARGET['depth']} runs / one run",
              "value": hit[0] if hit else None, "bound": f">= {TARGET['bound']:g}",
              "met": hit[0] >= TARGET["bound"] if hit else None}
    words = "fastest schedule (mean speed-up over sequential across rules): " + "; ".join(text)
    if target["value"] is not None:
        words += f". Target {target['name']}: {target['value']:.2f} ({'met' if target['met'] else 'not met'})"
    if quick:
        words += ". This was --quick: a smoke check, not a measurement."
    return {"kind": "conclusion", "fastest": best, "target": target, "text": words}


def plot(records, path: str) -> None:
    """Run-steps/s against N, one panel per configuration; colour: rule, line style: schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfgs = list(dict.fromkeys(r["config"] for r in records))
    rules = list(dict.fromkeys(r["rule"] for r in records))
    fig, axes = plt.subplots(1, len(cfgs), figsize=(6 * len(cfgs), 4.4), squeeze=False)
    styles = {"vmapped": ("-", "o"), "grouped": ("--", "s"), "sequential": (":", "^")}
    for ax, cfg in zip(axes[0], cfgs):
        for i, rule in enumerate(rules):
            for sched, (ls, mk) in styles.items():
                pts = sorted((r["runs"], r["run_steps_per_s"]) for r in records
                             if (r["config"], r["rule"], r["schedule"]) == (cfg, rule, sched))
                if pts:
                    g = max(r["group_size"] for r in records if r["schedule"] == sched)
                    label = f"{rule}, {sched}" + (f" (G={g})" if sched == "grouped" else "")
                    ax.plot(*zip(*pts), ls, marker=mk, color=f"C{i}", ms=4, label=label)
        ns = sorted({r["runs"] for r in records if r["config"] == cfg})
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("runs N")
        ax.set_ylabel("run-steps / s")
        depth, width = cfg.split("x")
        r0 = next(r for r in records if r["config"] == cfg)
        ax.set_title(f"depth {depth}, width {width}, batch {r0['batch']} ({r0['platform']})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(rules))
    common.save_figure(fig, path)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", help=f"comma-separated DEPTHxWIDTH (default {DEFAULTS['configs']})")
    p.add_argument("--runs", help=f"comma-separated run counts N (default {DEFAULTS['runs']})")
    p.add_argument("--rules", help=f"comma-separated jdfa.rules.parse specs (default {DEFAULTS['rules']})")
    p.add_argument("--schedules", default=",".join(SCHEDULES), help="a subset of " + ",".join(SCHEDULES))
    p.add_argument("--group", type=int, help=f"runs per program of 'grouped' (default {DEFAULTS['group']})")
    p.add_argument("--steps", type=int, help=f"steps per timed chunk (default {DEFAULTS['steps']})")
    p.add_argument("--repeats", type=int, help=f"timed chunks per schedule (default {DEFAULTS['repeats']})")
    p.add_argument("--n-train", type=int, help="synthetic training examples (default: 64 x 50, more if the "
                   "timed chunks need it: a chunk stays within one epoch)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    common.add_malloc_flag(p, default="tuned")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before timing each N, wait up to this long for other processes to leave the CPU")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds); explicit flags win")
    p.add_argument("--out", help="also write the JSON lines to this file")
    p.add_argument("--plot", help="plot run-steps/s against N to this PNG")
    p.add_argument("--from-jsonl", help="plot these earlier results instead of measuring")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.from_jsonl:
        with open(args.from_jsonl) as f:
            plot([r for r in map(json.loads, f) if r.get("kind") == "throughput"], args.plot)
        return 0
    for k, v in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    committed = os.path.join(common.REPO_ROOT, "benchmarks", "results")
    if args.quick and any(p and os.path.abspath(p).startswith(committed) for p in (args.out, args.plot)):
        raise SystemExit("--quick writes to stdout or benchmarks/scratch/, never to benchmarks/results/")
    # The chunk draws one epoch order per call (jdfa.driver.chunks.Epochs.chunk_steps): no chunk of this
    # benchmark (a one-step warm-up, then `repeats` chunks from a fresh state) may cross an epoch.
    least = args.batch * (1 + args.steps * args.repeats)
    args.n_train = args.n_train or max(least, 0 if args.quick else 64 * 50)
    if args.n_train < least:
        raise SystemExit(f"--n-train must be at least {least} (--batch x (1 + --steps x --repeats))")
    args.schedules = common.str_list(args.schedules)
    if not set(args.schedules) <= set(SCHEDULES) or min(args.steps, args.repeats, args.group) < 1:
        raise SystemExit(f"--schedules must be a subset of {SCHEDULES}; --steps, --repeats, --group >= 1")
    common.apply_malloc(args.malloc)


    configs = parse_configs(args.configs)
    env = common.environment()
    out, records = common.Emitter(args.out), []
    try:
        for depth, width in configs:
            for spec in common.str_list(args.rules):
                records += measure_rule(depth, width, spec, args, env, out.emit)
        summary = conclusion(records, args.quick)
        out.emit(summary)
        common.log(summary["text"])
    finally:
        out.close()
    if args.plot:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
