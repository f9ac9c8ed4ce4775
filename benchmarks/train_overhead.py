r"""What `jdfa.train` costs per step beyond the bare jitted step, measured in one process.

For each rule: the bare step (`jdfa.make_train_step`, one call per step, the same batch, timed as
``step_time.py`` times it) for half of ``--bare-steps`` before and half after two `jdfa.train`
runs on MNIST as a user makes them (progress off, no files, evaluations at step 0 and at the end
only): a short one (``--short-steps``) and the full one (``--steps``). The record gives the
whole call per step against the bare step (``ratio``: what the user waits for), and splits it
into the fixed cost (compile, the two evaluations: ``fixed_s``, from the short run) and the
cost per step past it (``marginal_ms_per_step`` and ``marginal_ratio``, from the difference of
the two runs).

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
    bench = step_time.Bench(spec, rule, net, args.batch, opt.build(args.steps), jax.random.key(args.seed),
                            xb, yb)
    for _ in range(args.warmup):
        bench.step()
    load = common.ForeignLoad()
    before = [bench.step() for _ in range(args.bare_steps // 2)]
    short = common.time_train(net, rule, opt, args.batch, args.short_steps, data)
    full = common.time_train(net, rule, opt, args.batch, args.steps, data)
    after = [bench.step() for _ in range(args.bare_steps - len(before))]
    other_load = load.cores()
    bare_ms = statistics.median(before + after) * 1e3
    marginal_ms = (full["train_s"] - short["train_s"]) / (args.steps - args.short_steps) * 1e3
    return {
        "kind": "train_overhead", "rule": spec, "depth": net.depth, "width": net.width,
        "batch": args.batch, "optimizer": step_time.optimizer_label(opt), **env,
        "bare_steps": len(before) + len(after), "bare_ms_median": bare_ms,
        "bare_ms_mean": statistics.fmean(before + after) * 1e3,
        "bare_ms_median_before": statistics.median(before) * 1e3,
        "bare_ms_median_after": statistics.median(after) * 1e3,
        **full, "ratio": full["train_ms_per_step"] / bare_ms,
        "short_steps": args.short_steps, "short_train_s": short["train_s"],
        "fixed_s": short["train_s"] - args.short_steps * bare_ms / 1e3,
        "marginal_ms_per_step": marginal_ms, "marginal_ratio": marginal_ms / bare_ms,
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
    p.add_argument("--bare-steps", type=int, default=300, help="bare steps timed, half before, half after")
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
                       f"{rec['train_ms_per_step']:.2f} ms/step ({rec['ratio']:.3f}x; past the fixed "
                       f"{rec['fixed_s']:.1f} s: {rec['marginal_ms_per_step']:.2f} ms, "
                       f"{rec['marginal_ratio']:.3f}x), other load {rec['other_load_cores']} cores")
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
