"""Where a rule's step time goes: cumulative stages and the pieces of the step, each jitted and
timed on its own, interleaved (same warm-up and rounds as ``step_time.py``).

Stages for one rule (default ``dfa``) at one configuration (default the headline, depth 100,
width 200, batch 128):

* ``apply``           jitted `jdfa.apply` (the floor: forward only)
* ``forward_trace``   `jdfa.forward` with ``f'``, returning the trace the update needs
* ``deltas``          + the output error and the rule's hidden deltas
* ``update``          + the weight updates of every layer (`jdfa.update_direction`)
* ``step_no_metrics`` + the optax optimizer (no metrics)
* ``step``            `jdfa.make_train_step` as shipped (metrics included)

Pieces, on inputs of the same shapes (each alone):

* ``wgrad_einsum``    the batched weight-gradient contraction ``einsum("lbi,lbj->lij")`` as
                      `jdfa.weight_update` does it
* ``wgrad_scan``      the same contraction as a `lax.scan` of one ``h_l^T @ d_l`` matmul per layer
* ``matmul_chain``    ``depth - 1`` dependent ``(N, width) @ (width, width)`` matmuls, nothing else
                      (the arithmetic of the forward pass without tanh or bias)
* ``sgd_update``      ``params - lr * g`` over all parameters
* ``proto_dfa_step``  (``dfa`` on tanh only) a PROTOTYPE of a leaner DFA step, for comparison with
                      ``step``: the forward scan emits each layer's INPUT (the weight gradient
                      reads it with no concatenate copy), ``f'`` is not stored but recomputed as
                      ``1 - h^2`` inside the delta fusion (as the library's forward now does for
                      tanh and sigmoid), no metrics; then SGD. Checked against
                      `jdfa.update_direction` before it is timed.

The stage differences tell where the step's time goes; the pieces show what the contractions
cost against the forward's arithmetic. The headline (a ``"part": "summary"`` record and the last
line on stderr) is ``step / (apply + wgrad_einsum)``: the step against its floor, the forward pass
plus the one batched contraction, all timed in this process. Uses jdfa's pieces (`jdfa.model.forward`,
`jdfa.losses.output_error`, `jdfa.rules.Rule.deltas`); a diagnostic, not an API.

    python benchmarks/breakdown.py --rule dfa --malloc tuned
"""

from __future__ import annotations

import argparse
import sys
import time

import common  # this folder is on sys.path when the script runs


def build(net, rule, optimizer, x, y, key):
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    import jdfa
    from jdfa import losses, model

    params, feedback = jdfa.init(key, net, rule)
    width, depth, batch = net.width, net.depth, x.shape[0]

    def fwd_trace(p, xb):
        return tuple(model.forward(net, p, xb))  # every field the trace keeps

    def deltas(p, fb, xb, yb):
        t = model.forward(net, p, xb)
        _, e = losses.output_error(net, t.a_y, yb)
        return rule.deltas(net, p, fb, t, e), e

    def upd(p, fb, xb, yb):
        return jdfa.update_direction(net, rule, p, fb, xb, yb)

    def step_nm(p, s, fb, xb, yb):
        g = jdfa.update_direction(net, rule, p, fb, xb, yb)
        u, s = optimizer.update(g, s, p)
        return optax.apply_updates(p, u), s

    kh, kd = jax.random.split(key)
    h = jax.random.normal(kh, (depth, batch, width))
    d = jax.random.normal(kd, (depth, batch, width))

    def wgrad_einsum(hh, dd):
        return jnp.einsum("lbi,lbj->lij", hh[:-1], dd[1:])

    def wgrad_scan(hh, dd):
        return lax.scan(lambda c, hd: (c, hd[0].T @ hd[1]), None, (hh[:-1], dd[1:]))[1]

    def matmul_chain(p, h0):
        return lax.scan(lambda c, w: (c @ w, None), h0, p.hidden.w)[0]

    def sgd(p, g):
        return jax.tree.map(lambda a, b: a - 1e-3 * b, p, g)

    def proto_dfa_grads(p, fb, xb, yb):
        h1 = jnp.tanh(xb @ p.input.w + p.input.b)
        h_top, h_in = lax.scan(lambda h, wb: (jnp.tanh(h @ wb[0] + wb[1]), h), h1,
                               (p.hidden.w, p.hidden.b))  # h_in: inputs of layers 2..depth
        a_y = h_top @ p.output.w + p.output.b
        e = (jax.nn.softmax(a_y) - jax.nn.one_hot(yb, a_y.shape[1])) / xb.shape[0]
        fbe = jnp.einsum("bs,lws->lbw", e, fb.output)
        h_out = jnp.concatenate([h_in[1:], h_top[None]])  # fused into the multiply below
        d = fbe[1:] * (1.0 - h_out * h_out)
        d1 = fbe[0] * (1.0 - h1 * h1)
        return jdfa.Params(jdfa.Dense(xb.T @ d1, d1.sum(0)),
                           jdfa.Dense(jnp.einsum("lbi,lbj->lij", h_in, d), d.sum(1)),
                           jdfa.Dense(h_top.T @ e, e.sum(0)))

    def proto_dfa_step(p, fb, xb, yb):
        return jax.tree.map(lambda a, g: a - 1e-3 * g, p, proto_dfa_grads(p, fb, xb, yb))

    state = jdfa.init_train_state(key, net, rule, optimizer)
    opt_state = optimizer.init(params)
    runs = [
        ("apply", jax.jit(lambda p, xb: jdfa.apply(net, p, xb)), (params, x), None),
        ("forward_trace", jax.jit(fwd_trace), (params, x), None),
        ("deltas", jax.jit(deltas), (params, feedback, x, y), None),
        ("update", jax.jit(upd), (params, feedback, x, y), None),
        ("step_no_metrics", jax.jit(step_nm, donate_argnums=(0, 1)),
         (params, opt_state, feedback, x, y), "params_opt"),
        ("step", jdfa.make_train_step(net, rule, optimizer), (state, x, y), "state"),
        ("wgrad_einsum", jax.jit(wgrad_einsum), (h, d), None),
        ("wgrad_scan", jax.jit(wgrad_scan), (h, d), None),
        ("matmul_chain", jax.jit(matmul_chain), (params, h[0]), None),
        ("sgd_update", jax.jit(sgd), (params, params), None),
    ]
    if rule.name == "dfa" and net.activation == "tanh" and net.loss == "softmax_cross_entropy":
        want = jax.jit(upd)(params, feedback, x, y)
        got = jax.jit(proto_dfa_grads)(params, feedback, x, y)
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            assert jnp.allclose(a, b, rtol=1e-4, atol=1e-6), "prototype disagrees with jdfa"
        runs.append(("proto_dfa_step", jax.jit(proto_dfa_step, donate_argnums=0),
                     (params, feedback, x, y), "params"))
    return runs


class Runner:
    def __init__(self, name, fn, args, feed):
        import jax

        self.name, self.feed = name, feed
        # Donated stages need their own buffers: copy what they will consume.
        if feed is not None:
            args = jax.tree.map(lambda a: a.copy() if hasattr(a, "copy") else a, args)
        t0 = time.perf_counter()
        self.compiled = fn.lower(*args).compile()
        self.compile_s = time.perf_counter() - t0
        self.args = args
        self.times = []

    def step(self):
        import jax

        t0 = time.perf_counter()
        out = self.compiled(*self.args)
        jax.block_until_ready(out)
        dt = time.perf_counter() - t0
        if self.feed == "state":
            self.args = (out[0],) + self.args[1:]
        elif self.feed == "params":
            self.args = (out,) + self.args[1:]
        elif self.feed == "params_opt":
            self.args = (out[0], out[1]) + self.args[2:]
        return dt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rule", default="dfa", help="a step_time.py rule spec (not forward)")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    common.add_malloc_flag(p)
    p.add_argument("--only", default=None, help="comma-separated subset of the stages/pieces")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--out", default=None)
    p.add_argument("--append", action="store_true")
    args = p.parse_args(argv)
    common.apply_malloc(args.malloc)

    import jax
    import jax.numpy as jnp
    import step_time  # its parse_rule: the same rule specs

    import jdfa

    spec, rule = step_time.parse_rule(args.rule)
    if rule is None:
        raise SystemExit("--rule must be a learning rule, not forward")
    net = jdfa.MLP(784, args.width, args.depth, 10)
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (args.batch, 784), jnp.float32)
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    only = set(common.str_list(args.only)) if args.only else None
    sgd = jdfa.Optimizer("sgd", 1e-3).build(1)
    runners = [Runner(n, f, a, feed) for n, f, a, feed in build(net, rule, sgd, x, y, kp)
               if only is None or n in only]
    if args.wait_quiet > 0:
        common.wait_for_quiet(args.wait_quiet)
    other_load = common.time_interleaved(runners, Runner.step, args.warmup, args.steps, args.rounds)
    emitter = common.Emitter(args.out, append=args.append)
    dev = jax.devices()[0]
    median = {}
    for r in runners:
        rec = {"kind": "breakdown", "rule": spec, "part": r.name, "depth": args.depth,
               "width": args.width, "batch": args.batch, "platform": dev.platform,
               "jax_version": jax.__version__, "malloc": common.malloc_setting(),
               **common.jdfa_revision(),
               "compile_s": r.compile_s, **common.timing_fields(r.times, args.batch),
               "other_load_cores": other_load}
        emitter.emit(rec)
        median[r.name] = rec["step_ms_median"]
        common.log(f"  {spec} {r.name:<16} median {rec['step_ms_median']:8.3f} ms  "
                   f"[{rec['step_ms_min']:.3f}, {rec['step_ms_max']:.3f}]")
    if {"apply", "wgrad_einsum", "step"} <= set(median):
        # The floor of a DFA-shaped step: the forward pass plus the one batched contraction.
        floor = median["apply"] + median["wgrad_einsum"]
        emitter.emit({"kind": "breakdown", "rule": spec, "part": "summary", "depth": args.depth,
                      "width": args.width, "batch": args.batch, "platform": dev.platform,
                      "floor_ms": floor, "step_ms": median["step"], "step_over_floor": median["step"] / floor,
                      **common.jdfa_revision(), "other_load_cores": other_load})
        common.log(f"  {spec} step / (forward + contraction) = {median['step']:.3f} / {floor:.3f} ms "
                   f"= {median['step'] / floor:.3f}  (target <= 1.15)")
    emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
