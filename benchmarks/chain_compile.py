r"""Compile time and step time of `jdfa.blocks.TransformerLM`'s jitted train step against its depth.

    python benchmarks/chain_compile.py --out benchmarks/results/cpu/chain_compile.jsonl

The decoder blocks are one stacked run of a `jdfa.chain.ChainNet` (issue 30): one `lax.scan`
runs them forward and one vmapped VJP updates them all, so compile time should stay flat in the
number of blocks (target: within 1.5x between 4 and 64 blocks). For each rule and depth this
script builds the jitted train step with Adam (`step_time.Bench`: lowering and XLA compile timed
apart), then times ``--steps`` steps of it after ``--warmup``; one JSON line each, then a
``"kind": "summary"`` line with the compile-time ratio of the deepest to the shallowest net per
rule. ``--label`` tags the lines (e.g. "before" for a run with an older jdfa on PYTHONPATH);
``--feedback-points block,micro`` also times the blocks with three feedback points each (issue 31's
"micro" DFA: BP then takes ~3 VJPs a block).
"""

from __future__ import annotations

import argparse
import sys

import step_time

import common  # this folder is on sys.path when the script runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="dfa,bp", type=common.str_list)
    p.add_argument("--blocks", default="4,16,64", type=common.int_list, help="decoder blocks")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--feedback-points", default="block", type=common.str_list,
                   help="comma list of TransformerLM feedback_points to time (block, micro)")
    p.add_argument("--label", default="", help="a tag for every line (e.g. the version measured)")
    p.add_argument("--out", default=None, help="also write the JSON lines here")
    args = p.parse_args(argv)

    import jax
    import optax

    import jdfa

    out, env = common.Emitter(args.out), common.environment()
    kx, kp = jax.random.split(jax.random.key(0))
    tokens = jax.random.randint(kx, (args.batch, args.context + 1), 0, args.vocab)
    x, y = tokens[:, :-1], tokens[:, 1:]
    compile_s = {}
    for spec, points in [(s, p) for s in args.rules for p in args.feedback_points]:
        rule = jdfa.rules.parse(spec)
        name = rule.spec if points == "block" else f"{rule.spec} {points}"
        for n in args.blocks:
            net = jdfa.blocks.TransformerLM(vocab=args.vocab, context=args.context, width=args.width,
                                            n_blocks=n, heads=args.heads, feedback_points=points)
            b = step_time.Bench(rule.spec, rule, net, args.batch, optax.adam(1e-3), kp, x, y)
            for _ in range(args.warmup):
                b.step()
            times = [b.step() for _ in range(args.steps)]
            b.release()
            compile_s[name, n] = b.lower_s + b.compile_s
            common.log(f"  {name:<10} {n:3d} blocks: lower {b.lower_s:6.2f}s compile {b.compile_s:6.2f}s "
                       f"step {1e3 * sorted(times)[len(times) // 2]:8.2f}ms")
            out.emit({"kind": "step", "label": args.label, "rule": rule.spec, "feedback_points": points,
                      "blocks": n, "width": args.width, "context": args.context, "batch": args.batch,
                      "lower_s": b.lower_s, "compile_s": b.compile_s,
                      "lower_and_compile_s": b.lower_s + b.compile_s,
                      **common.timing_fields(times, args.batch),
                      **env, **common.jdfa_revision()})
    lo, hi = min(args.blocks), max(args.blocks)
    ratios = {spec: compile_s[spec, hi] / compile_s[spec, lo] for spec in {s for s, _ in compile_s}}
    out.emit({"kind": "summary", "label": args.label, "target": f"compile time at {hi} blocks within 1.5x "
              f"of {lo} blocks", "lower_and_compile_ratio": ratios,
              "met": all(r <= 1.5 for r in ratios.values())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
