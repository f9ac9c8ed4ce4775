r"""Step time of a rule's compiled plan against the hand-written stacked deltas it replaced.

    python benchmarks/plan_compile.py --out benchmarks/results/cpu/plan_compile.jsonl

Until commit bd94ca1 every rule wrote `jdfa.MLP`'s stacked deltas by hand (`deltas`), beside its
plan; since then a rule is its plan alone, and `jdfa.rules.stacked` compiles the plan to stacked
ops. This script times both in ONE process, interleaved as `step_time.py` interleaves rules (its
`Bench`: the jitted train step with Adam, the donated state fed back, the order rotating each
round): for each rule, the rule as it is (``plan``) and the same rule with the hand-written
``deltas`` of bd94ca1 restored below (``handwritten``). It prints one JSON object per (rule,
version) and a last ``"kind": "summary"`` line with plan / handwritten of the median and of the
minimum per rule; the target is within 5 % (``--steps`` 200 in ``--rounds`` 10, about 6 minutes
on 2 cores at the default depth 100, width 200, batch 128).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import step_time

import common  # this folder is on sys.path when the script runs


def handwritten(rule):
    """``rule`` with the stacked deltas it had before its plan was compiled (commit bd94ca1)."""
    from jax import lax

    import jdfa
    from jdfa.rules import chain, direct, stack

    def backprop(params, fprime, e, n):
        depth = fprime.shape[0]
        top = (e @ params.output.w.T) * fprime[depth - 1]
        return stack(chain(top, params.hidden.w[depth - n:], fprime[depth - n:depth - 1]), top[None])

    def fp(self, net, params, feedback, trace, e, context=None):
        fprime, n_dfa = self.feedback_fprime(trace.fprime, trace.keep), net.depth - self.bp_depth
        if self.bp_depth == 0:
            return direct(feedback.output, e, fprime)
        bp_part = backprop(params, trace.fprime, e, self.bp_depth)
        lower = (direct(feedback.output, e, fprime[:n_dfa]) if self.source == "error"
                 else direct(feedback.hidden, bp_part[0], fprime[:n_dfa]))
        return stack(lower, bp_part)

    def bdfa(self, net, params, feedback, trace, e, context=None):
        depth, fprime, fb = net.depth, trace.fprime, self.feedback_fprime(trace.fprime, trace.keep)
        k = min(self.block_size, depth)
        n_mid, r = divmod(depth - k, k)

        def mid_blocks(a, size):
            return a.reshape((n_mid, k) + a.shape[1:])[:, :size]

        def direct_block(s, xs):
            d = direct(xs[0], s, xs[1])
            return d[0], d

        def backprop_block(s, xs):
            w_above, b, fprime_top, f = xs
            t = (s @ w_above.T) * fprime_top
            d = stack(direct(b, t, f), t[None])
            return d[0], d

        if self.boundary == "direct":
            top = (feedback.output, fb[depth - k:])
            mid = (feedback.hidden[r:].reshape((n_mid, k) + feedback.hidden.shape[1:]),
                   mid_blocks(fb[r:depth - k], k))
            rem, block = (feedback.hidden[:r], fb[:r]), direct_block
        else:
            n_rem, hid, w = max(r - 1, 0), feedback.hidden, params.hidden.w
            top = (params.output.w, hid[hid.shape[0] - (k - 1):], fprime[depth - 1], fb[depth - k:depth - 1])
            mid = (w[r + k - 1:depth - k:k], hid[n_rem:n_rem + n_mid * (k - 1)].reshape(
                (n_mid, k - 1) + hid.shape[1:]), mid_blocks(fprime[r:depth - k], k)[:, k - 1],
                mid_blocks(fb[r:depth - k], k - 1))
            rem = (w[r - 1], hid[:n_rem], fprime[r - 1], fb[:n_rem]) if r else None
            block = backprop_block
        s, d_top = block(e, top)
        parts = [d_top]
        if n_mid:
            s, d_mid = lax.scan(block, s, mid, reverse=True)
            parts.insert(0, d_mid.reshape((-1,) + d_mid.shape[2:]))
        if r:
            parts.insert(0, block(s, rem)[1])
        return stack(*parts)

    deltas = {
        jdfa.rules.BP: lambda self, net, params, fb, trace, e, c=None: backprop(params, trace.fprime, e,
                                                                              net.depth),
        jdfa.rules.DFA: lambda self, net, params, fb, trace, e, c=None: direct(
            fb.output, e, self.feedback_fprime(trace.fprime, trace.keep)),
        jdfa.rules.FP: fp, jdfa.rules.BDFA: bdfa,
    }[type(rule)]
    cls = dataclasses.make_dataclass(f"Handwritten{type(rule).__name__}", [], bases=(type(rule),),
                                     frozen=True, namespace={"deltas": deltas})
    return cls(**{f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="dfa,bp,bdfa25,fp1", help="bp, dfa, fpK and bdfaK[-bp] specs")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", default=None, help="also write the JSON lines here")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import optax

    import jdfa

    out = common.Emitter(args.out)
    env = common.environment()
    net = jdfa.MLP(784, args.width, args.depth, 10)
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (args.batch, 784), jnp.float32)
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    benches = []
    for spec in args.rules.split(","):
        rule = jdfa.rules.parse(spec)
        for version, r in (("plan", rule), ("handwritten", handwritten(rule))):
            b = step_time.Bench(f"{rule.spec}/{version}", r, net, args.batch, optax.adam(1e-3), kp, x, y)
            common.log(f"  {b.spec:<22} compile {b.compile_s:6.2f}s")
            benches.append(b)
    for b in benches:
        for _ in range(args.warmup):
            b.step()
    load = common.ForeignLoad()
    for r, chunk in enumerate(common.interleaved_rounds(args.steps, args.rounds)):
        for b in benches[r % len(benches):] + benches[:r % len(benches)]:
            b.times.extend(b.step() for _ in range(chunk))
    other = load.cores()
    stats = {}
    for b in benches:
        rec = {"kind": "step", "rule": b.spec, "depth": args.depth, "width": args.width,
               "batch": args.batch, "compile_s": b.compile_s, **common.timing_fields(b.times, args.batch),
               "other_load_cores": other, **env, **common.jdfa_revision()}
        out.emit(rec)
        stats[b.spec] = rec
    summary = {"kind": "summary", "target": "plan/handwritten within 5 %", "ratios": {}}
    for spec in args.rules.split(","):
        name = jdfa.rules.parse(spec).spec
        plan, hand = stats[f"{name}/plan"], stats[f"{name}/handwritten"]
        summary["ratios"][name] = {stat: plan[f"step_ms_{stat}"] / hand[f"step_ms_{stat}"]
                                   for stat in ("median", "min")}
    summary["met"] = all(abs(v["median"] - 1) <= 0.05 for v in summary["ratios"].values())
    out.emit(summary)
    for name, v in summary["ratios"].items():
        common.log(f"  {name:<10} plan/handwritten median {v['median']:.3f}  min {v['min']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
