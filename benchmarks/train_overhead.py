r"""What `jdfa.train` costs per step beyond the bare jitted step, measured in one process.

For each rule: first the `jdfa.train` run on MNIST as a user makes it (``--steps``; progress
off, no files, evaluations at step 0 and at the end only; for the first rule a cold start, as
``jdfa train`` is: the init's and the chunk's compiles included), then the bare step
(`jdfa.make_train_step`, one call per step on one batch, timed as ``step_time.py`` times it), then
a short `jdfa.train` run (``--short-steps``, warm) whose time past its steps is the fixed cost of
a run (``fixed_s``: the chunk's compile, the two evaluations, the data to the device). The record
gives the whole call per step against the bare step (``ratio``: what the user waits for), the same
past the fixed cost (``ratio_past_fixed``), the summary's own ``summary_steps_per_s``, and the
ratio of the CPU time this process spent per step (``cpu_ratio``: on a shared machine, far less
sensitive than wall time to the other processes, whose load changes between the runs).

Example (the issue's configuration)::

    python benchmarks/train_overhead.py --rules dfa --depth 100 --width 200 --batch 64 \
        --optimizer adam --steps 3000 --out benchmarks/results/cpu/train_overhead.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import sys

import common  # this folder is on sys.path when the script runs


def run_rule(spec: str, net, args, data, env: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import step_time

    import jdfa

    spec, rule = step_time.parse_rule(spec)
    opt = jdfa.Optimizer(args.optimizer, args.lr)
    (x, y), _ = data
    xb, yb = jnp.asarray(x[:args.batch]), jnp.asarray(y[:args.batch])
    load = common.ForeignLoad()
    full = common.time_train(net, rule, opt, args.batch, args.steps, data)
    bench = step_time.Bench(spec, rule, net, args.batch, opt.build(args.steps), jax.random.key(args.seed),
                            xb, yb)
    for _ in range(args.warmup):
        bench.step()
    cpu0 = common.own_cpu()
    bare = [bench.step() for _ in range(args.bare_steps)]
    bare_cpu_ms = (common.own_cpu() - cpu0) / args.bare_steps * 1e3
    short = common.time_train(net, rule, opt, args.batch, args.short_steps, data)
    other_load = load.cores()
    bare_ms = statistics.median(bare) * 1e3
    fixed_s = short["train_s"] - args.short_steps * bare_ms / 1e3
    past_fixed_ms = (full["train_s"] - fixed_s) / args.steps * 1e3
    return {
        "kind": "train_overhead", "rule": spec, "depth": net.depth, "width": net.width,
        "batch": args.batch, "optimizer": step_time.optimizer_label(opt), **env,
        **full, "bare_steps": len(bare), "bare_ms_median": bare_ms,
        "bare_ms_mean": statistics.fmean(bare) * 1e3, "ratio": full["train_ms_per_step"] / bare_ms,
        "summary_ratio": 1e3 / full["summary_steps_per_s"] / bare_ms,
        "bare_cpu_ms_per_step": bare_cpu_ms,
        "cpu_ratio": full["train_cpu_s"] / args.steps * 1e3 / bare_cpu_ms,
        "short_steps": args.short_steps, "short_train_s": short["train_s"], "fixed_s": fixed_s,
        "past_fixed_ms_per_step": past_fixed_ms, "ratio_past_fixed": past_fixed_ms / bare_ms,
        "other_load_cores": other_load,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default="dfa", help="comma list of rule specs (default dfa)")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=3000, help="the full jdfa.train run")
    p.add_argument("--short-steps", type=int, default=20, help="the short run: the fixed cost")
    p.add_argument("--bare-steps", type=int, default=300, help="bare steps timed")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="the MNIST folder (default: $JDFA_DATA_DIR)")
    common.add_malloc_flag(p)
    p.add_argument("--out", default=None)
    p.add_argument("--append", action="store_true")
    args = p.parse_args(argv)
    if not 0 < args.short_steps < args.steps:
        raise SystemExit("--short-steps must be between 0 and --steps")
    common.apply_malloc(args.malloc)
    import jdfa

    data = tuple(jdfa.data.load("mnist", split, args.data_dir) for split in ("train", "test"))
    net = jdfa.MLP(data[0][0].shape[1], args.width, args.depth, 10)
    env = common.environment()
    emitter = common.Emitter(args.out, append=args.append)
    try:
        for spec in common.str_list(args.rules):
            rec = run_rule(spec, net, args, data, env)
            emitter.emit(rec)
            common.log(f"  {rec['rule']}: bare {rec['bare_ms_median']:.2f} ms, jdfa.train "
                       f"{rec['train_ms_per_step']:.2f} ms/step ({rec['ratio']:.3f}x; past a run's fixed "
                       f"{rec['fixed_s']:.1f} s: {rec['past_fixed_ms_per_step']:.2f} ms, "
                       f"{rec['ratio_past_fixed']:.3f}x; CPU time {rec['cpu_ratio']:.3f}x), "
                       f"other load {rec['other_load_cores']:.2f} cores")
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
