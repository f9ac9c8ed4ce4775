"""Nets that are a chain of blocks, each ending at a feedback point, trained by the rule's plan.

`ChainNet` implements the `jdfa.net.Net` protocol for any chain ``h_0 = embed(x)``,
``a_i = block_i(params_i, h_{i-1})`` (the feedback point ``i``), ``h_i = f(a_i)`` (``f`` the net's
point activation, or none: ``h_i = a_i``), then the output block ``a_y = block_depth(params_out,
h_depth)``. A subclass gives `ChainNet.init_params` (a `ChainParams`), `ChainNet.block_apply`
and, where they differ from the defaults, `embed`, `point_activation` and the checks; the rest --
feedback shaped to each point, the update of every rule with a plan, the per-block measurements,
the weight mask -- comes from here. `jdfa.blocks` (Flax layers) is built on it.

The update: one forward pass keeps each block's VJP; the deltas of the feedback points follow the
rule's `jdfa.rules.Rule.plan` (a `jdfa.rules.Source` per point: ``e`` or another point's delta
through a fixed ``B``, the block above's true VJP, its VJP with random weights for FA, or a draw
between the true VJP and ``e`` through ``B`` for mix); then
every block's parameter update is its own VJP at its own delta. What is sequential: the forward
chain, and the deltas only where the plan chains them; the ``depth + 1`` parameter VJPs are
independent, which XLA is free to run in parallel.

Feedback per point (`ChainFeedback`): ``"error"``, ``"mix"``: ``B_i`` (size_i, out_features), ``size_i`` the
point's number of units per example (`point_sizes`: a conv map H x W x C has ``H*W*C``), or
per position where the net has position axes (`ChainNet.position_axes`: a language model's point
(T, d) has ``B_i`` (d, V), applied to every token's error ``e_t`` alike);
``"delta"`` from point ``j``: (size_i, size_j); ``"fa"``: the block above's parameters with every
array of rank >= 2 (the weights) redrawn; ``"backprop"``: None. Memory: DFA holds ``sum_i size_i *
out_features`` floats; a point reading another point's delta ``size_i * size_j``, which grows as
the product of two maps' sizes. With ``shared_feedback`` every point that reads the same signal
gets the same array (its points must then be of one size).
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jdfa import batch_modes, losses, model
from jdfa.feedback import draw
from jdfa.net import Net
from jdfa.rules import Source


class ChainParams(NamedTuple):
    """The parameters of a `ChainNet`: one pytree per block, bottom-up, and the output block's."""

    blocks: tuple
    output: object


class ChainFeedback(NamedTuple):
    """One entry per feedback point, bottom-up, as the module docstring lays them out."""

    layers: tuple


class Point(NamedTuple):
    """What the forward pass keeps of one feedback point (``N`` the batch size).

    h_in: the block's input. a: the feedback point, the block's output.
    fprime: ``f'(a)`` times the dropout mask where units were dropped; None without a point
      activation and dropout (the delta lands on ``a`` as it is).
    keep: the dropout mask (``0`` or ``1 / (1 - dropout)``), None when no unit was dropped.
    vjp: the block's VJP at this batch: ``delta -> (param update, input cotangent)``.
    """

    h_in: jax.Array
    a: jax.Array
    fprime: jax.Array | None
    keep: jax.Array | None
    vjp: object


class ChainNet(Net):
    """A chain of blocks trained by the rule's plan; see the module docstring."""

    # Axes after the batch axis that index positions (tokens) sharing one feedback matrix; the
    # output error has them too: e (N, *positions, out_features).
    position_axes: ClassVar[int] = 0
    # What the shallow control (a rule without a plan) trains besides the output block: False, no
    # feedback point; True, also block 0 (an embedding), by its true gradient through the frozen
    # blocks above it.
    shallow_trains_embedding: ClassVar[bool] = False

    # --- what a subclass gives ---------------------------------------------------------------------
    def block_apply(self, i: int, params, h: jax.Array) -> jax.Array:
        """Block ``i`` (``depth``: the output block) on ``h`` with its ``params``."""
        raise NotImplementedError(f"{type(self).__name__} does not define block_apply")

    def embed(self, x: jax.Array) -> jax.Array:
        """The first block's input from the net's input ``x``. Default: ``x`` itself."""
        return x

    def point_activation(self):
        """The function ``f`` applied after each feedback point, or None (``h_i = a_i``)."""
        return None

    def check_inputs(self, x, y=None):
        """Default: flat inputs (N, in_features) and labels (N,) or targets (N, out_features)."""
        model.check_inputs(self, x, y)

    @functools.cached_property
    def point_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each feedback point's shape without the batch axis, bottom-up (one abstract pass)."""
        x = self.batch_struct(1)[0]
        points = jax.eval_shape(lambda p, x: [pt.a for pt in self.forward(p, x, False)[0]],
                                self.params_shapes, x)
        return tuple(p.shape[1:] for p in points)

    @property
    def depth(self) -> int:
        """The number of feedback points."""
        return len(self.point_shapes)

    @functools.cached_property
    def params_shapes(self) -> ChainParams:
        """The parameters' shapes and dtypes (`jax.ShapeDtypeStruct` leaves), drawn abstractly."""
        return jax.eval_shape(self.init_params, jax.random.key(0))

    @property
    def point_sizes(self) -> list[int]:
        """The number of units of each feedback point (at one position), bottom-up."""
        return [math.prod(s[self.position_axes:]) for s in self.point_shapes]

    # --- the forward pass and the update -----------------------------------------------------------
    def apply(self, params, x):
        self.check_inputs(x)
        f, h = self.point_activation(), self.embed(x)
        for i, p in enumerate(params.blocks):
            h = self.block_apply(i, p, h)
            h = h if f is None else f(h)
        return self.block_apply(len(params.blocks), params.output, h)

    def forward(self, params: ChainParams, x: jax.Array, with_derivative: bool = True, key=None):
        """``(points, h_top, a_y, vjp_out)``: a `Point` per feedback point, bottom-up, the output
        block's input, the logits and the output block's VJP; ``key`` drops units (dropout)."""
        f, depth = self.point_activation(), len(params.blocks)
        drop = self.dropout > 0 and key is not None
        keys = jax.random.split(key, depth) if drop else [None] * depth
        h, points = self.embed(x), []
        for i, k in enumerate(keys):
            a, vjp = jax.vjp(functools.partial(self.block_apply, i), params.blocks[i], h)
            h_next, fprime = a, None
            if f is not None:  # the JVP with ones is f'(a) for an elementwise f
                h_next, fprime = jax.jvp(f, (a,), (jnp.ones_like(a),)) if with_derivative else (f(a), None)
            keep = None
            if drop:
                keep = jax.random.bernoulli(k, 1.0 - self.dropout, a.shape) / (1.0 - self.dropout)
                h_next, fprime = h_next * keep, keep if fprime is None else fprime * keep
            points.append(Point(h, a, fprime, keep, vjp))
            h = h_next
        a_y, vjp_out = jax.vjp(functools.partial(self.block_apply, depth), params.output, h)
        return points, h, a_y, vjp_out

    def compute_update(self, rule, params, feedback, x, y, batch_mode="mean", remat=False, context=None,
                       dropout=True):
        self.check_inputs(x, y)
        self.check_params(params)
        self.check_feedback(rule, feedback)
        self.check_run(rule, batch_mode, remat)
        plan, depth = rule.plan(len(params.blocks)), len(params.blocks)
        frozen = range(0)
        if plan is None and self.shallow_trains_embedding:  # BP's deltas, kept for block 0 only
            plan, frozen = (Source("backprop"),) * depth, range(1, depth)
        # One key drops units, the other is the rule's, as `jdfa.update` splits them for the MLP.
        k_dropout, k_rule = jax.random.split(context.key) if context is not None else (None, None)
        k_dropout = k_dropout if dropout else None
        points, h_top, a_y, vjp_out = self.forward(params, x, plan is not None, k_dropout)
        loss, e = losses.output_error(self, a_y, y)
        if plan is None:
            zeros = tuple(jax.tree.map(jnp.zeros_like, p) for p in params.blocks)
            return ChainParams(zeros, vjp_out(e)[0]), (loss, a_y)
        taken = {}  # block -> its param update, where a BP step already ran the block's VJP
        vjps, inputs = [p.vjp for p in points] + [vjp_out], [p.h_in for p in points] + [h_top]
        deltas = [None] * depth
        draws = (rule.draws(depth, context._replace(key=k_rule) if context is not None else None)
                 if any(s.kind == "mix" for s in plan) else None)
        for i in reversed(range(depth)):
            source, above, point = plan[i], deltas[i + 1] if i + 1 < depth else e, points[i]
            if source.kind in ("backprop", "mix"):  # the VJP of the block above is its update too
                taken[i + 1], signal = vjps[i + 1](above)
            if source.kind == "mix":  # BP where this step's draw says so, else the error through B
                fb_signal = jnp.reshape(self._rows(e) @ feedback.layers[i].T, point.a.shape)
                fb_fprime = rule.feedback_fprime(point.fprime, point.keep)
                bp = jnp.reshape(signal, point.a.shape) * (1 if point.fprime is None else point.fprime)
                fb = fb_signal * (1 if fb_fprime is None else fb_fprime)
                deltas[i] = jnp.where(draws[i], bp, fb)
                continue
            if source.kind == "fa":
                own = params.blocks[i + 1] if i + 1 < depth else params.output
                stand_in = jax.tree.map(lambda b, p: b if b.ndim >= 2 else p, feedback.layers[i], own)
                _, vjp_h = jax.vjp(functools.partial(self.block_apply, i + 1, stand_in), inputs[i + 1])
                signal = vjp_h(above)[0]
            elif source.kind != "backprop":
                s = e if source.kind == "error" else deltas[source.of]
                signal = self._rows(s) @ feedback.layers[i].T
            # a BP step keeps the true f'; a feedback delta takes the rule's
            fprime = (point.fprime if source.kind == "backprop"
                      else rule.feedback_fprime(point.fprime, point.keep))
            signal = jnp.reshape(signal, point.a.shape)
            deltas[i] = signal if fprime is None else signal * fprime
        blocks = tuple(taken[i] if i in taken else vjps[i](deltas[i])[0] for i in range(depth))
        blocks = tuple(jax.tree.map(jnp.zeros_like, b) if i in frozen else b for i, b in enumerate(blocks))
        output = taken[depth] if depth in taken else vjp_out(e)[0]
        return ChainParams(blocks, output), (loss, a_y)

    def _rows(self, s: jax.Array) -> jax.Array:
        """(N, *positions, ...) -> (N * positions, units): a delta or the error as rows ``B`` reads."""
        return jnp.reshape(s, (math.prod(s.shape[:1 + self.position_axes]), -1))

    def layer_dots(self, u, v):
        def dot(a, b):
            return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

        return jnp.stack([dot(a, b) for a, b in zip(u.blocks + (u.output,), v.blocks + (v.output,))])

    def weight_mask(self, params):
        return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)

    # --- feedback --------------------------------------------------------------------------------
    def init_feedback(self, key, rule):
        rule.check(self)
        plan = rule.plan(self.depth)
        if plan is None:
            return ChainFeedback(())
        sizes, keys = self.point_sizes, jax.random.split(key, self.depth)
        shared = getattr(rule, "shared_feedback", False)
        drawn = {}  # (signal, shape) -> the one array of shared feedback

        def new(signal, k, shape, fan):
            if not shared:
                return draw(k, rule, shape, fan)
            if any(sig == signal and s != shape for sig, s in drawn):
                raise ValueError(f"shared_feedback needs one shape for every point that reads the same "
                                 f"signal; this {type(self).__name__}'s points read {signal} through "
                                 f"{sorted({s for sig, s in drawn if sig == signal} | {shape})}: draw "
                                 "them apart (shared_feedback=False)")
            if (signal, shape) not in drawn:  # drawn once, with the first such point's key
                drawn[signal, shape] = draw(k, rule, shape, fan)
            return drawn[signal, shape]

        above = self.params_shapes  # the "fa" stand-ins' shapes
        layers = []
        for i, source in enumerate(plan):
            if source.kind == "backprop":
                layers.append(None)
            elif source.kind == "fa":
                block = above.blocks[i + 1] if i + 1 < self.depth else above.output
                leaves, tree = jax.tree.flatten(block)
                stand_ins = [new(f"fa{j}", k, w.shape, math.prod(w.shape) // w.shape[-2]) if len(w.shape) >= 2
                             else jnp.zeros(w.shape, w.dtype)
                             for j, (k, w) in enumerate(zip(jax.random.split(keys[i], len(leaves)), leaves))]
                layers.append(tree.unflatten(stand_ins))
            else:
                error = source.kind in ("error", "mix")
                src = self.out_features if error else sizes[source.of]
                layers.append(new("e" if error else "a delta", keys[i], (sizes[i], src), src))
        return ChainFeedback(tuple(layers))

    def check_feedback(self, rule, feedback):
        if not isinstance(feedback, ChainFeedback):
            raise TypeError(f"feedback for a {type(self).__name__} must be a ChainFeedback, got "
                            f"{type(feedback).__name__}; draw it with jdfa.init(key, net, rule)")
        want = jax.tree.map(jnp.shape, jax.eval_shape(lambda: self.init_feedback(jax.random.key(0), rule)))
        got = jax.tree.map(jnp.shape, feedback)
        if got != want:
            raise ValueError(f"feedback does not fit {rule} on {type(self).__name__}: expected shapes "
                             f"{want}, got {got}; draw it with jdfa.init(key, net, rule)")

    # --- checks ----------------------------------------------------------------------------------
    def check_params(self, params):
        want = jax.tree.map(lambda s: s.shape, self.params_shapes)
        got = jax.tree.map(jnp.shape, params)
        if not isinstance(params, ChainParams) or got != want:
            raise ValueError(f"params do not fit {type(self).__name__}: expected shapes {want}, got "
                             f"{got}; draw them with jdfa.init(key, net, rule)")

    def check_run(self, rule, batch_mode="mean", remat=False, devices=1):
        rule.check(self)
        batch_modes.check_batch_mode(batch_mode)
        if batch_mode != "mean" or remat:
            raise ValueError(f"a {type(self).__name__} trains with batch_mode='mean' and without remat; "
                             f"got batch_mode={batch_mode!r}, remat={remat}")
        if devices > 1:
            raise ValueError(f"a mesh splits jdfa.MLP's stacked layers; a {type(self).__name__} runs "
                             "on one device (mesh_data=1, mesh_layers=1)")
        rule.plan(self.depth)  # raises for rules without a plan
