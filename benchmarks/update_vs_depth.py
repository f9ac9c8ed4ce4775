r"""The update phase of a train step against depth, per learning rule: DFA's parallelism in one picture.

For every depth (``--depths``) it builds the jitted forward pass alone (``jax.jit`` of `jdfa.apply`)
and, for each rule (``--rules``, `jdfa.rules.parse` specs), the full jitted train step of
`jdfa.make_train_step` (``optax.sgd(1e-3)``) on an MLP of 784 inputs, ``--width`` tanh units per
hidden layer and 10 classes (softmax cross-entropy), batch ``--batch``. All programs of one depth
are compiled first, get the same ``--warmup`` steps, then the ``--steps`` timed calls of each are
split into ``--rounds`` chunks and the forward and the rules take turns chunk by chunk (the order
rotating each round), so that machine noise falls on the forward and every step alike. Each call
is timed on its own, ending with `jax.block_until_ready`; the donated state a step returns is fed
to the next. The **update phase** of a rule is its median step time minus the median forward time
of the same depth (``update_ms``): everything the step does beyond the forward pass (keeping the
trace the update reads, the loss gradient, the rule's deltas, the weight-update contraction, SGD
and the step's metrics).

A rule that does not fit a depth (`jdfa.rules.Rule.check` raises ``ValueError``, e.g. ``fp3`` at
depth 2) is skipped there with a line on stderr. One JSON object per (depth, rule) goes to stdout
(and to ``--out``); progress, a table and each rule's log-log slope of ``update_ms`` against depth
go to stderr. ``--plot`` draws ``update_ms`` against depth, log-log, one line per rule, with two
dashed references anchored at DFA's smallest depth: slope 0 (flat: every layer's update in one
parallel step) and slope 1 (linear: a sequential chain over layers).

What to expect. On a GPU, where a width-200 layer is a microsecond of arithmetic and a step's time
is its number of sequential kernels, DFA's update phase should stay nearly flat in depth (one
batched feedback matmul and one batched weight-gradient contraction over all layers), while BP's
grows linearly: its backward pass is a chain of ``depth`` dependent matmuls. FP(1) should stay
near DFA (one BP layer, then one batched feedback matmul); BDFA(25) adds a scan over ``depth / 25``
blocks, a gentle slope. On a 2-core CPU every
rule's update is arithmetic-bound, so all of them grow about linearly in depth (the work, not the
dependency chain, sets the time), and the gap between BP and DFA is the backward chain's
sequential cost.

``--model transformer`` times `jdfa.blocks.TransformerLM` instead: ``--depths`` decoder blocks of
``--width`` (d_model), ``--heads`` heads, ``--context`` tokens per example, a vocabulary of 256 (a
byte-level model), batch ``--batch`` sequences of random tokens, the same forward-and-rules
interleaving. Its defaults: blocks 1..16, width 128, context 64, batch 32, rules bp and dfa; on
the CPU that takes about 4 minutes. Its update phase holds every block's VJP (a transformer block
is far more arithmetic per feedback point than an MLP layer, so on the CPU both rules are
arithmetic-bound and the slopes near 1; DFA saves the backward chain's input cotangents).

Examples::

    python benchmarks/update_vs_depth.py --quick                       # ~10 s on 2 cores
    python benchmarks/update_vs_depth.py --malloc tuned --out benchmarks/results/cpu/update_vs_depth.jsonl \
        --plot benchmarks/results/cpu/update_vs_depth.png
    python benchmarks/update_vs_depth.py --from benchmarks/results/cpu/update_vs_depth.jsonl --plot u.png
    python benchmarks/update_vs_depth.py --model transformer \
        --out benchmarks/results/cpu/transformer_update_vs_depth.jsonl \
        --plot benchmarks/results/cpu/transformer_update_vs_depth.png

The defaults (depths 10..400, rules bp, dfa, bdfa25, fp1, 20 timed calls each after 3 warm-up
calls, in 5 rounds) take about 3 minutes on 2 quiet CPU cores, about half of it compiling and
drawing the initial states (an estimate from the step times of the depth sweep in
benchmarks/README.md, not a measured run), and about a minute on a GPU, mostly compiling.
``--quick`` (depths 4 and 8, width 32, batch
16, rules bp and dfa, 6 timed calls; mostly compile time) is a smoke check that never writes into
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import common  # this folder is on sys.path when the script runs (tests add it to import it)

DEFAULTS = dict(depths="10,25,50,100,200,400", rules="bp,dfa,bdfa25,fp1", width=200, batch=128,
                steps=20, warmup=3, rounds=5)
QUICK = dict(depths="4,8", rules="bp,dfa", width=32, batch=16, steps=6, warmup=1, rounds=3)
TRANSFORMER = dict(depths="1,2,4,8,16", rules="bp,dfa", width=128, batch=32, steps=12, warmup=2, rounds=4)
TRANSFORMER_QUICK = dict(depths="1,2", rules="bp,dfa", width=32, batch=8, steps=6, warmup=1, rounds=3)
VOCAB = 256  # the transformer's: a byte-level language model
IN_FEATURES, OUT_FEATURES, LR = 784, 10, 1e-3
KIND = "update_vs_depth"


class Timed:
    """One compiled program (the forward, or a rule's train step) with its live arguments."""

    def __init__(self, name, fn, args, donates_state):
        import jax

        self.name, self.donates_state = name, donates_state
        jax.block_until_ready(args)
        t0 = time.perf_counter()
        self.compiled = fn.lower(*args).compile()
        self.compile_s = time.perf_counter() - t0
        self._args = args
        self.times: list[float] = []

    def call(self) -> float:
        import jax

        t0 = time.perf_counter()
        out = self.compiled(*self._args)
        jax.block_until_ready(out)
        dt = time.perf_counter() - t0
        if self.donates_state:
            state, _ = out  # the old state was donated: always rebind
            self._args = (state,) + self._args[1:]
        return dt

    def release(self):
        self._args = self.compiled = None


def _renamed(fields: dict, prefix: str) -> dict:
    """`common.timing_fields` of the forward as ``forward_ms_median`` etc. (no examples/s)."""
    return {prefix + k[len("step_"):]: v for k, v in fields.items() if k.startswith("step_ms")}


def measure_depth(depth, rules, args, env, emit):
    """Compiles the forward and every fitting rule at ``depth``, times them interleaved, emits one
    record per rule; returns the records."""
    import jax
    import jax.numpy as jnp
    import optax

    import jdfa

    kx, ky = jax.random.split(jax.random.key(args.seed))
    if args.model == "transformer":
        net = jdfa.blocks.TransformerLM(vocab=VOCAB, context=args.context, width=args.width,
                                        n_blocks=depth, heads=args.heads)
        x = jax.random.randint(kx, (args.batch, args.context), 0, VOCAB)
        y = jax.random.randint(ky, (args.batch, args.context), 0, VOCAB)
    else:
        net = jdfa.MLP(IN_FEATURES, args.width, depth, OUT_FEATURES)
        x = jax.random.normal(kx, (args.batch, IN_FEATURES), jnp.float32)
        y = jax.random.randint(ky, (args.batch,), 0, OUT_FEATURES)
    steps, params = [], None
    for rule in rules:
        try:
            rule.check(net)
        except ValueError as e:
            common.log(f"  skip {rule.spec} at depth {depth} ({e})")
            continue
        opt = optax.sgd(LR)
        state = jdfa.init_train_state(jax.random.key(0), net, rule, opt)
        if params is None:  # the forward's weights: a copy (the steps donate theirs), same key
            params = jax.tree.map(jnp.copy, state.params)
        steps.append((rule, Timed(rule.spec, jdfa.make_train_step(net, rule, opt), (state, x, y), True)))
    if not steps:
        return []
    forward = Timed("forward", jax.jit(lambda p, xb: jdfa.apply(net, p, xb)), (params, x), False)
    programs = [forward] + [t for _, t in steps]
    common.log(f"  depth {depth}: compiled " + ", ".join(f"{t.name} {t.compile_s:.2f}s" for t in programs))
    if args.wait_quiet > 0:
        common.wait_for_quiet(args.wait_quiet)
    other_load = common.time_interleaved(programs, lambda t: t.call(), args.warmup, args.steps, args.rounds)
    if other_load is not None and other_load > 0.25:
        common.log(f"  WARNING: other processes used {other_load:.2f} cores while timing")

    fwd = common.timing_fields(forward.times, args.batch)
    records = []
    for rule, t in steps:
        step = common.timing_fields(t.times, args.batch)
        rec = {
            "kind": KIND, "model": args.model, "rule": rule.spec, "rule_repr": str(rule),
            "depth": depth, "width": args.width, "batch": args.batch,
            "in_features": net.in_features, "out_features": net.out_features,
            **({"heads": args.heads, "context": args.context} if args.model == "transformer" else {}),
            "activation": net.activation, "loss": net.loss, "optimizer": f"sgd(lr={LR:g})",
            **env,
            "mode": "quick" if args.quick else "full",
            "warmup": args.warmup, "rounds": args.rounds,
            "forward_compile_s": forward.compile_s, "compile_s": t.compile_s,
            **_renamed(fwd, "forward_"),
            **step,
            "update_ms": step["step_ms_median"] - fwd["step_ms_median"],
            "update_ms_of_min": step["step_ms_min"] - fwd["step_ms_min"],
            "step_over_forward": step["step_ms_median"] / fwd["step_ms_median"],
            "other_load_cores": other_load,
        }
        emit(rec)
        records.append(rec)
        common.log(f"  depth {depth:>4} {rule.spec:<8} step {rec['step_ms_median']:9.3f} ms  forward "
                   f"{rec['forward_ms_median']:8.3f} ms  update {rec['update_ms']:9.3f} ms  "
                   f"step/forward {rec['step_over_forward']:5.2f}")
    for t in programs:
        t.release()
    return records


def loglog_slope(points) -> float | None:
    """Least-squares slope of log(y) against log(x) over the points with y > 0 (None if < 2)."""
    pts = [(math.log(d), math.log(v)) for d, v in points if v > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return None if sxx == 0 else sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def series(records) -> dict:
    """``{rule: [(depth, update_ms), ...]}`` sorted by depth, rules in order of appearance; of two
    records of the same rule and depth (files appended to) the last wins."""
    out = {}
    for r in records:
        out.setdefault(r["rule"], {})[r["depth"]] = r["update_ms"]
    return {rule: sorted(pts.items()) for rule, pts in out.items()}


def print_table(records) -> None:
    by_rule = series(records)
    depths = sorted({r["depth"] for r in records})
    common.log("\n== update phase (median step - median forward, ms) ==")
    common.log(f"  {'depth':>6} " + " ".join(f"{rule:>9}" for rule in by_rule))
    for d in depths:
        cells = [dict(pts).get(d) for pts in by_rule.values()]
        common.log(f"  {d:>6} " + " ".join("        -" if v is None else f"{v:9.3f}" for v in cells))
    common.log("  log-log slope of update_ms against depth (0: flat, 1: linear): " + ", ".join(
        f"{rule} {s:.2f}" if (s := loglog_slope(pts)) is not None else f"{rule} n/a"
        for rule, pts in by_rule.items()))


def plot(records, path: str) -> None:
    """``update_ms`` against depth, log-log, one line per rule, and the slope-0 and slope-1 references
    anchored at DFA's (or else the first rule's) smallest depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    by_rule = series(records)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, (rule, pts) in enumerate(by_rule.items()):
        pos = [(d, v) for d, v in pts if v > 0]  # a log axis cannot show an update <= 0 (noise)
        if len(pos) < len(pts):
            common.log(f"  plot: {rule} has {len(pts) - len(pos)} point(s) with update <= 0 ms, left out")
        if not pos:
            continue
        s = loglog_slope(pos)
        label = rule + ("" if s is None else f" (slope {s:.2f})")
        ax.plot(*zip(*pos), "-", marker="os^vDP<>"[i % 8], color=f"C{i}", ms=5, label=label)
    anchor_rule = "dfa" if "dfa" in by_rule else next(iter(by_rule), None)
    anchor = next(((d, v) for d, v in by_rule.get(anchor_rule, []) if v > 0), None)
    depths = sorted({r["depth"] for r in records})
    if anchor is not None and len(depths) > 1:
        d0, v0 = anchor
        ds = [d for d in depths if d >= d0]
        ax.plot(ds, [v0] * len(ds), "--", color="0.45", lw=1,
                label="flat: every layer's update in one parallel step")
        ax.plot(ds, [v0 * d / d0 for d in ds], "--", color="0.75", lw=1,
                label="linear: a sequential chain over layers")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # the depths only
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_formatter(plain)  # ms as numbers, not powers of ten; minor labels within a decade
    ax.yaxis.set_minor_formatter(plain if hi / lo < 10 else matplotlib.ticker.NullFormatter())
    transformer = r0_model(records) == "transformer"
    ax.set_xlabel("depth (decoder blocks)" if transformer else "depth (hidden layers)")
    ax.set_ylabel("update phase (ms): median step - median forward")
    r0 = records[0] if records else {}
    device = r0.get("device_kind") or r0.get("platform") or "?"
    ax.set_title(f"{'TransformerLM ' if transformer else ''}update phase against depth: {device}, "
                 f"width {r0.get('width')}, batch {r0.get('batch')}"
                 + (" (--quick)" if r0.get("mode") == "quick" else ""), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    common.save_figure(fig, path)


def r0_model(records) -> str:
    """The model the records time (records before ``--model`` existed: the MLP)."""
    return records[0].get("model", "mlp") if records else "mlp"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", "--depth", dest="depths",
                   help=f"comma-separated depths (default {DEFAULTS['depths']})")
    p.add_argument("--rules", help=f"comma-separated jdfa.rules.parse specs (default {DEFAULTS['rules']})")
    p.add_argument("--width", type=int, help=f"hidden width (default {DEFAULTS['width']})")
    p.add_argument("--batch", type=int, help=f"batch size (default {DEFAULTS['batch']})")
    p.add_argument("--steps", type=int, help=f"timed calls per program (default {DEFAULTS['steps']})")
    p.add_argument("--warmup", type=int, help=f"untimed calls per program (default {DEFAULTS['warmup']})")
    p.add_argument("--rounds", type=int,
                   help=f"interleaving rounds the timed calls are split into (default {DEFAULTS['rounds']})")
    p.add_argument("--model", choices=("mlp", "transformer"), default="mlp",
                   help="the MLP (default) or jdfa.blocks.TransformerLM (depth: decoder blocks)")
    p.add_argument("--heads", type=int, default=4, help="transformer: attention heads (default 4)")
    p.add_argument("--context", type=int, default=64, help="transformer: tokens per example (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch and the weights")
    common.add_malloc_flag(p)
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before timing each depth, wait up to this long for other processes to leave "
                   "the CPU (default 0: do not wait)")
    p.add_argument("--quick", action="store_true",
                   help="depths 4,8, width 32, batch 16, rules bp,dfa, few calls (about 10 s, mostly "
                   "compiling); explicit flags win")
    p.add_argument("--out", help="also write the JSON lines to this file")
    p.add_argument("--append", action="store_true", help="append to --out instead of overwriting")
    p.add_argument("--plot", metavar="FILE.png", help="plot update_ms against depth to this PNG")
    p.add_argument("--from", dest="from_jsonl", metavar="FILE.jsonl",
                   help="plot the records of this file (with --plot) instead of measuring")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.from_jsonl:
        if not args.plot:
            raise SystemExit("--from needs --plot FILE.png")
        with open(args.from_jsonl) as f:
            records = [r for r in map(json.loads, filter(str.strip, f)) if r.get("kind") == KIND]
        if not records:
            raise SystemExit(f"{args.from_jsonl} holds no {KIND!r} records")
        print_table(records)
        plot(records, args.plot)
        return 0
    defaults, quick = (TRANSFORMER, TRANSFORMER_QUICK) if args.model == "transformer" else (DEFAULTS, QUICK)
    if args.quick and args.model == "transformer":
        args.context = min(args.context, 16)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick.get(k, v) if args.quick else v)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.width < 1 or args.batch < 1:
        raise SystemExit("--steps, --rounds, --width and --batch must be >= 1, --warmup >= 0")
    committed = os.path.join(common.REPO_ROOT, "benchmarks", "results")
    if args.quick and any(p and os.path.abspath(p).startswith(committed) for p in (args.out, args.plot)):
        raise SystemExit("--quick writes to stdout or benchmarks/scratch/, never to benchmarks/results/")
    common.apply_malloc(args.malloc)


    import jdfa

    rules = [jdfa.rules.parse(s) for s in common.str_list(args.rules)]
    env = common.environment()
    emitter = common.Emitter(args.out, append=args.append)
    records = []
    try:
        for depth in common.int_list(args.depths):
            records += measure_depth(depth, rules, args, env, emitter.emit)
    finally:
        emitter.close()
    if records:
        print_table(records)
    if args.plot and records:
        plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
