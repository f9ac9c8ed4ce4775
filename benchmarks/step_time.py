r"""Step time of jdfa's compiled train step, per learning rule, over depth, width and batch.

For every configuration (depth, width, batch) it builds, for each rule, the jitted train step of
`jdfa.make_train_step` (update + optax optimizer), times ``lower`` and ``compile`` separately, warms
every rule up, then times ``--steps`` single steps per rule, interleaved: the steps are split into
``--rounds`` chunks and the rules take turns chunk by chunk (the order rotating each round), so
slow drifts of a noisy machine fall on all rules alike and the ratios within one configuration are
fair. Each step is timed on its own, ending with `jax.block_until_ready`; the donated state a step
returns is fed to the next.

The ``forward`` pseudo-rule is the floor: jitted `jdfa.apply` on the same batch (forward only, no
loss, no update).

One JSON object per (configuration, rule) goes to stdout (and to ``--out``); when the sweep holds
depth 100 width 200, a last ``"kind": "summary"`` line gives the ratios of that headline
configuration, all measured in this run. Progress and the summary table go to stderr.

Rule specs (``--rules``, comma separated): any `jdfa.rules.parse` spec -- ``bp``, ``fa``, ``dfa``,
``shallow``, ``fpK`` (FP with the top K layers trained by BP, e.g. ``fp1``), ``bdfaK`` (blocked DFA,
blocks of K, the ``direct`` boundary), ``bdfaK-bp`` (the ``backprop`` boundary) -- recorded under
the rule's canonical spec (`jdfa.rules.Rule.spec`: ``bdfa25-backprop`` is recorded as
``bdfa25-bp``), and the benchmark's own pseudo-rules ``forward`` (above), ``dfa-remat`` (DFA
recomputing its activations, ``make_train_step(..., remat=True)``) and ``dfa-noguard`` (DFA without
the guard that skips steps on invalid data, ``make_train_step(..., guard=False)``: the summary's
``dfa/dfa-noguard`` is the guard's cost).

``--quick`` runs the headline configuration too (depth 100, width 200, batch 128), with few steps:
its summary is a smoke check of the same ratios, noisier than a full run.

Examples::

    python benchmarks/step_time.py --quick
    python benchmarks/step_time.py --rules forward,bp,dfa,bdfa25 --depths 100 --width 200 \
        --batch 128 --malloc tuned --out benchmarks/results/cpu/headline.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time

import common  # this folder is on sys.path when the script runs (tests add it to import it)

DEFAULT_RULES = "forward,bp,fa,dfa,fp1,fp3,bdfa25,bdfa25-bp,bdfa10,bdfa10-bp"
DEFAULT_DEPTHS = "1,2,5,10,25,50,100,200"
DEFAULT_WIDTHS = "200,800"
DEFAULT_BATCHES = "64,256"
QUICK = dict(rules="forward,bp,dfa,dfa-noguard,bdfa25", depths="2,10,100", widths="200", batches="128",
             steps=10, warmup=2, rounds=2)
HEADLINE = dict(depth=100, width=200, batch=128)

# The benchmark's own specs on top of jdfa.rules.parse; "wgrad" is DFA's floor beside the forward:
# the batched weight-gradient contraction alone, as `jdfa.update` writes it.
PSEUDO_RULES = ("forward", "wgrad", "dfa-remat", "dfa-noguard")
ALONE = {"forward": "forward (jdfa.apply)",
         "wgrad": "the weight-gradient contraction alone (einsum lni,lnj->lij over depth - 1 layers)"}


def parse_rule(spec: str):
    """``spec`` -> ``(canonical spec, jdfa rule or None for forward)``.

    Learning rules go through `jdfa.rules.parse` (the canonical spec is the rule's `spec`, so
    ``bdfa25-backprop`` becomes ``bdfa25-bp``); ``forward``, ``dfa-remat`` and ``dfa-noguard`` are
    this benchmark's pseudo-rules. Raises ``ValueError`` for anything else.
    """
    import jdfa

    name = spec.strip().lower()
    if name in ("forward", "wgrad"):
        return name, None
    if name in ("dfa-remat", "dfa-noguard"):  # DFA built with remat=True / guard=False
        return name, jdfa.dfa()
    try:
        rule = jdfa.rules.parse(name)
    except ValueError as e:
        raise ValueError(f"{e} (or one of the benchmark's pseudo-rules: "
                         f"{', '.join(PSEUDO_RULES)})") from e
    return rule.spec, rule


def optimizer_label(opt) -> str:
    """The ``"optimizer"`` field of a record: ``"sgd(lr=0.001)"``."""
    return f"{opt.name}(lr={opt.lr:g})"


def memory_fields(compiled) -> dict:
    """Sizes from ``compiled.memory_analysis()``; None where the backend does not tell."""
    keys = {"temp_bytes": "temp_size_in_bytes", "argument_bytes": "argument_size_in_bytes",
            "output_bytes": "output_size_in_bytes", "alias_bytes": "alias_size_in_bytes",
            "generated_code_bytes": "generated_code_size_in_bytes"}
    try:
        stats = compiled.memory_analysis()
    except Exception:  # some backends raise instead of returning None
        stats = None
    out = {}
    for field, attr in keys.items():
        value = getattr(stats, attr, None) if stats is not None else None
        out[field] = int(value) if value is not None else None
    return out


class Bench:
    """One rule on one configuration: compiled, with its live state, ready to step."""

    def __init__(self, spec, rule, net, batch, optimizer, key, x, y):
        import jax
        import jax.numpy as jnp

        import jdfa

        self.spec, self.rule = spec, rule
        if spec == "wgrad":
            kh, kd = jax.random.split(key)
            shape = (net.depth - 1, batch, net.width)
            fn = jax.jit(lambda h, d: jnp.einsum("lni,lnj->lij", h, d))
            args = (jax.random.normal(kh, shape), jax.random.normal(kd, shape))
        elif rule is None:
            params, _ = jdfa.init(key, net, jdfa.bp())
            fn = jax.jit(lambda p, xb: jdfa.apply(net, p, xb))
            args = (params, x)
        else:
            fn = jdfa.make_train_step(net, rule, optimizer, remat=spec == "dfa-remat",
                                      guard=spec != "dfa-noguard")
            args = (jdfa.init_train_state(key, net, rule, optimizer), x, y)
        jax.block_until_ready(args)
        t0 = time.perf_counter()
        lowered = fn.lower(*args)
        t1 = time.perf_counter()
        self.compiled = lowered.compile()
        t2 = time.perf_counter()
        self.lower_s, self.compile_s = t1 - t0, t2 - t1
        self.memory = memory_fields(self.compiled)
        self._args = args
        self.times: list[float] = []
        self.description = ALONE.get(spec, str(rule))

    def step(self) -> float:
        import jax

        t0 = time.perf_counter()
        if self.rule is None:
            out = self.compiled(*self._args)
            jax.block_until_ready(out)
        else:
            state, x, y = self._args
            state, metrics = self.compiled(state, x, y)  # the old state is donated
            jax.block_until_ready((state, metrics))
            self._args = (state, x, y)
        return time.perf_counter() - t0

    def release(self):
        self._args = None
        self.compiled = None


def run_config(depth, width, batch, specs, args, optimizer, opt_name, env, emit):
    import jax
    import jax.numpy as jnp

    import jdfa

    net = jdfa.MLP(args.in_features, width, depth, args.out_features, activation=args.activation)
    kx, ky, kp = jax.random.split(jax.random.key(args.seed), 3)
    x = jax.random.normal(kx, (batch, args.in_features), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, args.out_features)

    benches = []
    for spec, rule in specs:
        if rule is not None:
            try:
                rule.check(net)
            except ValueError as e:  # e.g. fp3 at depth 2
                common.log(f"  skip {spec} at depth {depth} ({e})")
                continue
        b = Bench(spec, rule, net, batch, optimizer, kp, x, y)
        common.log(f"  d={depth} w={width} b={batch} {spec:<10} lower {b.lower_s:6.2f}s "
                   f"compile {b.compile_s:6.2f}s temp {_mb(b.memory['temp_bytes'])}")
        benches.append(b)
    if args.wait_quiet > 0:
        common.wait_for_quiet(args.wait_quiet)
    load = common.ForeignLoad()
    for b in benches:  # the same warm-up for every rule
        for _ in range(args.warmup):
            b.step()
    chunks = common.interleaved_rounds(args.steps, args.rounds)
    for r, chunk in enumerate(chunks):
        order = benches[r % len(benches):] + benches[:r % len(benches)]
        for b in order:
            b.times.extend(b.step() for _ in range(chunk))
    other_load = load.cores()
    if other_load is not None and other_load > 0.25:
        common.log(f"  WARNING: other processes used {other_load:.2f} cores while timing")

    records = []
    for b in benches:
        rec = {
            "kind": "step",
            "rule": b.spec,
            "rule_repr": b.description,
            "depth": depth, "width": width, "batch": batch,
            "in_features": args.in_features, "out_features": args.out_features,
            "activation": args.activation,
            "optimizer": None if b.rule is None else opt_name,
            **env,
            "lower_s": b.lower_s,
            "compile_s": b.compile_s,
            **common.timing_fields(b.times, batch),
            **b.memory,
            "other_load_cores": other_load,
        }
        emit(rec)
        records.append(rec)
        common.log(f"  d={depth} w={width} b={batch} {b.spec:<10} median "
                   f"{rec['step_ms_median']:8.3f} ms  [{rec['step_ms_min']:.3f}, "
                   f"{rec['step_ms_max']:.3f}]")
        b.release()
    return records


def _mb(n):
    return "n/a" if n is None else f"{n / 2**20:8.2f} MiB"


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


TARGETS = {  # ratio name: (comparison, bound)
    "dfa/forward": ("<=", 2.2),
    "bp/dfa": (">=", 2.0),
    "bdfa25/dfa": ("<=", 1.15),
    "dfa/forward@width800": ("<=", 2.5),
    "temp_bytes dfa/bp": ("<=", 1.0),
}


def summarize(records, env):
    """The headline ratios (depth 100, width 200; batch 128 if present) within this run."""
    step = [r for r in records if r.get("kind") == "step"]
    at = {(r["rule"], r["depth"], r["width"], r["batch"]): r for r in step}
    hd, hw = HEADLINE["depth"], HEADLINE["width"]
    batches = sorted({r["batch"] for r in step if r["depth"] == hd and r["width"] == hw})
    if not batches:
        return None
    hb = HEADLINE["batch"] if HEADLINE["batch"] in batches else batches[0]

    def ms(rule, depth=hd, width=hw, batch=hb, stat="step_ms_median"):
        r = at.get((rule, depth, width, batch))
        return None if r is None else r.get(stat)

    def temp(rule):
        r = at.get((rule, hd, hw, hb))
        return None if r is None else r["temp_bytes"]

    rules = sorted({r["rule"] for r in step if (r["depth"], r["width"], r["batch"]) == (hd, hw, hb)})
    def ratios_of(stat):
        def m(rule, width=hw):
            return ms(rule, width=width, stat=stat)

        return {
            "bp/dfa": _ratio(m("bp"), m("dfa")),
            "dfa/forward": _ratio(m("dfa"), m("forward")),
            "bdfa25/dfa": _ratio(m("bdfa25"), m("dfa")),
            "dfa/dfa-noguard": _ratio(m("dfa"), m("dfa-noguard")),
            "bdfa25-bp/dfa": _ratio(m("bdfa25-bp"), m("dfa")),
            "fa/dfa": _ratio(m("fa"), m("dfa")),
            "fp1/dfa": _ratio(m("fp1"), m("dfa")),
            "bp/forward": _ratio(m("bp"), m("forward")),
            "dfa/forward@width800": _ratio(m("dfa", 800), m("forward", 800)),
            "bp/dfa@width800": _ratio(m("bp", 800), m("dfa", 800)),
        }

    ratios = ratios_of("step_ms_median")
    ratios["temp_bytes dfa/bp"] = _ratio(temp("dfa"), temp("bp"))
    ratios_min = ratios_of("step_ms_min")
    compile_ratio = {}
    for rule in sorted({r["rule"] for r in step}):
        for w in sorted({r["width"] for r in step}):
            lo, hi = at.get((rule, 10, w, hb)), at.get((rule, 200, w, hb))
            if lo and hi:
                compile_ratio[f"{rule}@width{w}"] = _ratio(hi["compile_s"], lo["compile_s"])
    targets = {}
    for name, (op, bound) in TARGETS.items():
        v = ratios.get(name)
        if v is not None:
            targets[name] = {"value": v, "bound": f"{op} {bound}",
                             "met": v <= bound if op == "<=" else v >= bound}
    if compile_ratio:
        worst = max(compile_ratio.values())
        targets["compile d200/d10 (worst rule)"] = {"value": worst, "bound": "<= 1.5",
                                                    "met": worst <= 1.5}
    return {
        "kind": "summary",
        "depth": hd, "width": hw, "batch": hb,
        "step_ms_median": {r: ms(r) for r in rules},
        "temp_bytes": {r: temp(r) for r in rules},
        "ratios": {k: v for k, v in ratios.items() if v is not None},
        "ratios_of_min": {k: v for k, v in ratios_min.items() if v is not None},
        "other_load_cores_max": max((r.get("other_load_cores") or 0.0 for r in step), default=None),
        "compile_ratio_d200_d10": compile_ratio,
        "targets": targets,
        **env,
    }


def print_summary(summary):
    common.log(f"\n== headline: depth {summary['depth']}, width {summary['width']}, "
               f"batch {summary['batch']}, malloc {summary['malloc']}, other processes used up to "
               f"{summary['other_load_cores_max'] or 0:.2f} cores ==")
    for rule, v in summary["step_ms_median"].items():
        common.log(f"  {rule:<12} {v:9.3f} ms   temp {_mb(summary['temp_bytes'][rule])}")
    common.log(f"  {'ratio':<24} {'median':>7} {'min':>7}")
    for name, v in summary["ratios"].items():
        vmin = summary["ratios_of_min"].get(name)
        common.log(f"  {name:<24} {v:7.3f} " + ("" if vmin is None else f"{vmin:7.3f}"))
    for name, v in summary["compile_ratio_d200_d10"].items():
        common.log(f"  compile d200/d10 {name:<18} {v:7.3f}")
    for name, t in summary["targets"].items():
        common.log(f"  target {name:<30} {t['value']:7.3f} {t['bound']:<7} "
                   f"{'MET' if t['met'] else 'NOT MET'}")


def conclusion(summary, quick: bool, steps: int) -> str:
    """One paragraph that says what this run measured, in words."""
    if summary is None:
        return (f"conclusion: the sweep has no headline configuration (depth {HEADLINE['depth']}, "
                f"width {HEADLINE['width']}), so no ratios were formed; add it to --depths/--widths.")
    r, met = summary["ratios"], summary["targets"]
    parts = [f"{name} = {r[name]:.2f}" for name in ("dfa/forward", "bp/dfa", "bdfa25/dfa") if name in r]
    if "dfa/dfa-noguard" in r:
        parts.append(f"the invalid-data guard costs {100 * (r['dfa/dfa-noguard'] - 1):+.1f} %")
    n_met = sum(t["met"] for t in met.values())
    text = (f"conclusion: at depth {summary['depth']}, width {summary['width']}, batch "
            f"{summary['batch']}: " + ", ".join(parts) + f"; targets met {n_met} of {len(met)}.")
    if quick:
        text += (f" This was --quick ({steps} timed steps per rule): a smoke check; the committed "
                 "figures come from full runs (benchmarks/README.md).")
    return text


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default=None, help=f"comma-separated rule specs (default "
                   f"{DEFAULT_RULES})")
    p.add_argument("--depths", "--depth", dest="depths", default=None,
                   help=f"comma-separated (default {DEFAULT_DEPTHS})")
    p.add_argument("--widths", "--width", dest="widths", default=None,
                   help=f"comma-separated (default {DEFAULT_WIDTHS})")
    p.add_argument("--batches", "--batch", dest="batches", default=None,
                   help=f"comma-separated (default {DEFAULT_BATCHES})")
    p.add_argument("--steps", type=int, default=None, help="timed steps per rule (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per rule (default 3)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaving rounds the timed steps are split into (default 5)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--activation", default="tanh")
    p.add_argument("--in-features", type=int, default=784)
    p.add_argument("--out-features", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    common.add_malloc_flag(p)
    p.add_argument("--quick", action="store_true",
                   help="a tiny sweep (about a minute on 2 CPU cores); explicit flags still win")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before timing each configuration, wait up to this long for other "
                   "processes to leave the CPU (default 0: do not wait)")
    p.add_argument("--out", default=None, help="also write the JSON lines to this file")
    p.add_argument("--append", action="store_true", help="append to --out instead of overwriting")
    p.add_argument("--no-summary", action="store_true", help="no summary line")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.apply_malloc(args.malloc)
    base = dict(rules=DEFAULT_RULES, depths=DEFAULT_DEPTHS, widths=DEFAULT_WIDTHS,
                batches=DEFAULT_BATCHES, steps=20, warmup=3, rounds=5)
    if args.quick:
        base.update(QUICK)
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        raise SystemExit("--steps and --rounds must be >= 1, --warmup >= 0")


    import jdfa

    specs = [parse_rule(s) for s in common.str_list(args.rules)]
    opt = jdfa.Optimizer(args.optimizer, args.lr)
    optimizer, opt_name = opt.build(1), optimizer_label(opt)  # constant lr: the step count is moot
    env = common.environment()
    emitter = common.Emitter(args.out, append=args.append)
    records = []
    try:
        for width in common.int_list(args.widths):
            for batch in common.int_list(args.batches):
                for depth in common.int_list(args.depths):
                    records += run_config(depth, width, batch, specs, args, optimizer, opt_name,
                                          env, emitter.emit)
        if not args.no_summary:
            summary = summarize(records, env)
            if summary is not None:
                summary["mode"] = "quick" if args.quick else "full"
                emitter.emit(summary)
                print_summary(summary)
            common.log(conclusion(summary, args.quick, args.steps))
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
