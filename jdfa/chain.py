"""Nets that are a chain of blocks, each ending at a feedback point, trained by the rule's plan.

`ChainNet` implements the `jdfa.net.Net` protocol for any chain ``h_0 = embed(x)``,
``a_i = block_i(params_i, h_{i-1})`` (the feedback point ``i``), ``h_i = f(a_i)`` (``f`` the net's
point activation, or none: ``h_i = a_i``), then the output block ``a_y = block_depth(params_out,
h_depth)``. A subclass gives `ChainNet.init_params` (a `ChainParams`), `ChainNet.block_apply`
and, where they differ from the defaults, `segment_lengths`, `embed`, `point_activation` and the
checks; the rest -- feedback shaped to each point, the update of every rule with a plan, the
per-block measurements, the weight mask -- comes from here. `jdfa.blocks` (Flax layers) is built
on it.

A run of identical blocks (a transformer's decoder blocks, a residual MLP's blocks) is *stacked*:
`segment_lengths` names it, its parameters carry a leading layer axis, one `lax.scan` runs it
forward (keeping every block's VJP, stacked) and `jdfa.chain_plan` forms the deltas and the
updates of all its blocks at once, so compile time stays flat in its length. A block may also
mark feedback points inside it (`ChainNet.marks_points`, `jdfa.chain_points`); the plan keeps one
source per block, which all its points read.

The update: one forward pass keeps each block's VJP; the deltas of the feedback points follow the
rule's `jdfa.rules.Rule.plan` (a `jdfa.rules.Source` per point: ``e`` or another point's delta
through a fixed ``B``, the block above's true VJP, its VJP with random weights for FA, or a draw
between the true VJP and ``e`` through ``B`` for mix); every block's parameter update is its own
VJP at its own delta. What is sequential: the forward chain, and the deltas only where the plan
chains them. Feedback: `jdfa.chain_units` lays it out.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa import batch_modes, chain_plan, chain_points, chain_units, losses, model
from jdfa.net import Net, mean_rms
from jdfa.rules import Source


class ChainParams(NamedTuple):
    """The parameters of a `ChainNet`: one pytree per segment (`ChainNet.segment_lengths`: a lone
    block's, or a run's stacked on a leading layer axis), bottom-up, and the output block's."""

    blocks: tuple
    output: object


class ChainFeedback(NamedTuple):
    """One entry per segment, bottom-up, as `jdfa.chain_units` lays them out: a lone block's
    point's feedback; for a run, a tuple of its units' feedback, each stacked on a leading axis
    (a net without runs: one entry per feedback point)."""

    layers: tuple


class Point(NamedTuple):
    """What the forward pass keeps of the feedback points of one segment, each array on a leading
    layer axis (of one for a lone block); ``N`` the batch size.

    h_in: the blocks' inputs. a: the feedback points, the blocks' outputs (blocks that mark points
      inside them: a tuple of their points, the output last; `jdfa.chain_points`).
    fprime: ``f'(a)`` of the output times the dropout mask where units were dropped; None without
      a point activation and dropout (the delta lands on ``a`` as it is).
    keep: the dropout mask (``0`` or ``1 / (1 - dropout)``), None when no unit was dropped.
    vjp: the blocks' VJPs at this batch (a `jax.tree_util.Partial`, its residuals stacked):
      ``delta -> (param update, input cotangent)`` (`jdfa.chain_points.block_vjp`).
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
        """Block ``i`` (``depth``: the output block) on ``h`` with its ``params`` (one block's:
        in a run, any ``i`` of the run)."""
        raise NotImplementedError(f"{type(self).__name__} does not define block_apply")

    def marks_points(self, i: int) -> bool:
        """Whether block ``i`` marks feedback points inside it (`jdfa.chain_points`) by calling
        ``point`` in ``block_apply(i, params, h, point=point)``. Default: no block does."""
        return False

    def segment_lengths(self) -> tuple[int | None, ...]:
        """One entry per entry of `ChainParams.blocks`, bottom-up: None for a lone block, ``L``
        for a run of ``L`` identical blocks whose parameters are stacked on a leading axis.
        Default: every entry a lone block."""
        return (None,) * len(self.params_shapes.blocks)

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
    def segments(self) -> tuple[chain_units.Segment, ...]:
        """The blocks' segments (`jdfa.chain_units.Segment`), bottom-up."""
        return chain_units.segments(self.segment_lengths())

    @functools.cached_property
    def block_points(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """Each block's feedback points' shapes without the batch axis, bottom-up, its output last:
        one per block but where it marks points inside (one abstract pass)."""
        x = self.batch_struct(1)[0]
        points = jax.eval_shape(lambda p, x: [pt.a for pt in self.forward(p, x, False)[0].points],
                                self.params_shapes, x)
        return tuple(tuple(a.shape[2:] for a in (a if isinstance(a, tuple) else (a,)))
                     for a in points for _ in range(chain_points.output(a).shape[0]))

    @property
    def point_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each block's output point's shape without the batch axis, bottom-up."""
        return tuple(p[-1] for p in self.block_points)

    @property
    def depth(self) -> int:
        """The number of blocks below the output block (the plan's sources: one per block)."""
        return len(self.block_points)

    @functools.cached_property
    def params_shapes(self) -> ChainParams:
        """The parameters' shapes and dtypes (`jax.ShapeDtypeStruct` leaves), drawn abstractly."""
        return jax.eval_shape(self.init_params, jax.random.key(0))

    @property
    def point_sizes(self) -> list[int]:
        """The number of units of each block's output point (at one position), bottom-up."""
        return [math.prod(s[self.position_axes:]) for s in self.point_shapes]

    # --- the forward pass and the update -----------------------------------------------------------
    def apply(self, params, x):
        return self.measured_apply(params, x)[0]  # under jit the norms are never computed

    def measured_apply(self, params, x):
        """The blocks on ``x`` without dropout, each point's `mean_rms` taken as the scan goes."""
        self.check_inputs(x)
        f, h, norms = self.point_activation(), self.embed(x), []
        for seg, p in zip(self.segments, params.blocks):
            def block(h, p, i=seg.lo):
                a = self.block_apply(i, p, h)
                h = a if f is None else f(a)
                return h, mean_rms(h, 1 + self.position_axes)

            h, m = lax.scan(block, h, p) if seg.run else block(h, p)
            norms.append(m if seg.run else m[None])
        return self.block_apply(self.segments[-1].hi, params.output, h), jnp.concatenate(norms)

    def forward(self, params: ChainParams, x: jax.Array, with_derivative: bool = True, key=None):
        """``(trace, a_y, vjp_out)``: the `jdfa.chain_plan.Trace` (a `Point` per segment, the
        output block's input), the logits and the output block's VJP; ``key`` drops units."""
        drop = self.dropout > 0 and key is not None
        keys = jax.random.split(key, self.segments[-1].hi) if drop else None
        h, points = self.embed(x), []
        for seg, p in zip(self.segments, params.blocks):
            step = functools.partial(self._block_step, seg.lo, with_derivative)
            ks = keys[seg.lo:seg.hi] if drop else None
            if seg.run:
                h, point = lax.scan(step, h, (p, ks))
            else:
                h, point = step(h, (p, None if ks is None else ks[0]))
                point = jax.tree.map(lambda a: a[None], point)
            points.append(point)
        a_y, vjp_out = jax.vjp(functools.partial(self.block_apply, self.segments[-1].hi),
                               params.output, h)
        return chain_plan.Trace(points, h), a_y, vjp_out

    def _block_step(self, i, with_derivative, h, p_key):
        """One block of segment's first block ``i`` on ``h`` (a scan step): ``(h_next, Point)``."""
        (p, k), f = p_key, self.point_activation()
        a, vjp = chain_points.block_vjp(self, i, p, h)
        h_next, fprime = chain_points.output(a), None
        if f is not None:  # the JVP with ones is f'(a) for an elementwise f
            h_next, fprime = (jax.jvp(f, (h_next,), (jnp.ones_like(h_next),)) if with_derivative
                              else (f(h_next), None))
        keep = None
        if k is not None:
            keep = jax.random.bernoulli(k, 1.0 - self.dropout, h_next.shape) / (1.0 - self.dropout)
            h_next, fprime = h_next * keep, keep if fprime is None else fprime * keep
        return h_next, Point(h, a, fprime, keep, vjp)

    def compute_update(self, rule, params, feedback, x, y, batch_mode="mean", remat=False, context=None,
                       dropout=True):
        self.check_inputs(x, y)
        self.check_params(params)
        self.check_feedback(rule, feedback)
        self.check_run(rule, batch_mode, remat)
        depth = self.depth
        plan, frozen = rule.plan(depth), ()
        if plan is None and self.shallow_trains_embedding:  # BP's deltas, kept for block 0 only
            plan, frozen = (Source("backprop"),) * depth, range(1, depth)
        # One key drops units, the other is the rule's, as `jdfa.update` splits them for the MLP.
        k_dropout, k_rule = jax.random.split(context.key) if context is not None else (None, None)
        trace, a_y, vjp_out = self.forward(params, x, plan is not None, k_dropout if dropout else None)
        loss, e = losses.output_error(self, a_y, y)
        if plan is None:
            zeros = jax.tree.map(jnp.zeros_like, params.blocks)
            return ChainParams(zeros, vjp_out(e)[0]), (loss, a_y)
        draws = (rule.draws(depth, context._replace(key=k_rule) if context is not None else None)
                 if any(s.kind == "mix" for s in plan) else None)
        blocks, output = chain_plan.run_plan(self, rule, plan, params, feedback, trace, e, vjp_out, draws)
        if frozen:
            blocks = tuple(chain_units.zero_blocks(b, seg, frozen) for b, seg in zip(blocks, self.segments))
        return ChainParams(blocks, output), (loss, a_y)

    def rows(self, s: jax.Array) -> jax.Array:
        """(N, *positions, ...) -> (N * positions, units): a delta or the error as rows ``B`` reads."""
        return jnp.reshape(s, (math.prod(s.shape[:1 + self.position_axes]), -1))

    def layer_dots(self, u, v):
        def dots(a, b, run):  # (blocks,): per block of a run, over every axis but the layer axis
            return sum(jnp.sum(x * y, axis=tuple(range(1, x.ndim))) if run else jnp.vdot(x, y)[None]
                       for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

        runs = [seg.run for seg in self.segments] + [False]
        return jnp.concatenate([dots(a, b, run) for a, b, run in
                                zip(u.blocks + (u.output,), v.blocks + (v.output,), runs)])

    def weight_mask(self, params):
        """Kernels: leaves of rank >= 2 per block (a run's layer axis not counted)."""
        runs = [seg.run for seg in self.segments]
        return ChainParams(tuple(jax.tree.map(lambda p, run=run: jnp.ndim(p) - run >= 2, b)
                                 for b, run in zip(params.blocks, runs)),
                           jax.tree.map(lambda p: jnp.ndim(p) >= 2, params.output))

    def layer_axis_mask(self, params):
        """The leaves of a run's stacked parameters."""
        return ChainParams(tuple(jax.tree.map(lambda _, run=seg.run: run, b)
                                 for b, seg in zip(params.blocks, self.segments)),
                           jax.tree.map(lambda _: False, params.output))

    def feedback_layer_axis_mask(self, feedback):
        """The feedback of a run, stacked on its layer axis."""
        return ChainFeedback(tuple(jax.tree.map(lambda _, run=seg.run: run, f)
                                   for f, seg in zip(feedback.layers, self.segments)))

    # --- feedback --------------------------------------------------------------------------------
    def init_feedback(self, key, rule):
        rule.check(self)
        return ChainFeedback(chain_units.init_feedback(self, rule, key))

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
        del devices  # any mesh: the batch splits over data, a run's stacked blocks over layers
        rule.plan(self.depth)  # raises for rules without a plan

