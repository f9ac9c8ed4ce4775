"""A rule's plan run on a `jdfa.chain.ChainNet`, many feedback points at a time.

A chain's blocks come in *segments* (`Segment`): a lone block, or a *run* of identical blocks
whose parameters carry a leading layer axis (a transformer's decoder blocks). The plan
(`jdfa.rules.Rule.plan`: a `jdfa.rules.Source` per feedback point) is cut into *units* (`Unit`):
consecutive points of one segment that read the same source. Each unit is one piece of work over
all its points, top-down:

* ``"error"``, ``"delta"``: the deltas are one einsum of the signal (``e``, or the delta of point
  ``of``) with the unit's stacked ``B``; the parameter updates one `jax.vmap` of the block's VJP
  (kept by the forward scan) over the layer axis;
* ``"backprop"``, ``"fa"``, ``"mix"``: one reverse `lax.scan` over the unit's blocks, each step
  forming its point's delta from the carry (the block above's true input cotangent; its VJP with
  the fixed random stand-ins for FA; a select between the two for mix) and taking the block's VJP
  at it, which gives the block's update and the cotangent the step below reads.

Equal ``"delta"`` units each reading the lowest point of the unit above (BDFA's blocks) fold into
one: a scan over them, each step one einsum, and one vmapped VJP for all their blocks.

A lone block is taken as a run of one without the vmap or scan: XLA:CPU runs a convolution's
weight gradient 7-20x slower inside a loop body (jax-ml/jax#12868). What stays sequential in depth
is the forward scan, the scans of the chained kinds and BDFA's scan over blocks; the number of
units does not grow with a run's length, except for BDFA with the ``"backprop"`` boundary (two
units per BDFA block, not folded).

Feedback (`init_feedback`): one entry per segment, bottom-up: a lone block's point's, or for a
run a tuple of one entry per unit, stacked on a leading axis of the unit's points. ``"error"``,
``"mix"``: ``B`` (size, out_features) per point, ``size`` the point's units at one position
(`jdfa.chain.ChainNet.point_sizes`); ``"delta"`` from point ``j``: (size, size_j); ``"fa"``: the
block above's parameters with every weight (rank >= 2) redrawn; ``"backprop"``: None. A net
without runs thus has one entry per point.

Shapes: ``N`` the batch size, ``n`` the points of a unit.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa.feedback import draw

KINDS = ("error", "delta", "backprop", "fa", "mix")  # the `jdfa.rules.Source` kinds a chain runs
CHAINED = ("backprop", "fa", "mix")  # the kinds whose delta follows from the point above's


class Segment(NamedTuple):
    """Blocks (and their feedback points) ``lo .. hi - 1``; ``run``: their parameters are stacked
    on a leading layer axis (a lone block's are not)."""

    lo: int
    hi: int
    run: bool


class Unit(NamedTuple):
    """Points ``lo .. hi - 1`` of segment ``seg``, all reading ``source``. Folded (BDFA's blocks
    in a run, one `lax.scan` over them): ``repeat`` parts of equal size stacked below each other,
    each reading the delta of the lowest point of the part above, ``source`` the top part's; with
    ``boundary`` each part's top point takes instead the true step from the part above (BDFA's
    ``"backprop"`` boundary) and the part's other points read its delta."""

    source: object
    seg: int
    lo: int
    hi: int
    repeat: int = 1
    boundary: bool = False

    @property
    def part(self) -> int:
        return (self.hi - self.lo) // self.repeat

    @property
    def reads_cotangent(self) -> bool:
        """Whether the unit needs the input cotangent of the block just above it."""
        return self.boundary or self.source.kind in ("backprop", "mix")


def segments(lengths) -> tuple[Segment, ...]:
    """The segments of `jdfa.chain.ChainNet.segment_lengths` (None: a lone block; L: a run)."""
    out, lo = [], 0
    for n in lengths:
        out.append(Segment(lo, lo + (n or 1), n is not None))
        lo += n or 1
    return tuple(out)


def cut(plan, segs) -> list[Unit]:
    """The plan cut into units, bottom-up. An FA point at the top of a run is a unit of its own:
    its stand-in is the next segment's block. Raises for a source kind the chain does not run."""
    depth, units = len(plan), []
    for i, s in enumerate(plan):
        if s.kind not in KINDS:
            raise ValueError(f"plan: point {i} has the unknown source kind {s.kind!r}; a chain runs "
                             f"{KINDS}")
        if s.kind == "delta" and not i < s.of < depth:
            raise ValueError(f"plan: point {i} reads the delta of point {s.of}, which is not above it")
    for k, seg in enumerate(segs):
        lo, cut_seg = seg.lo, []
        for i in range(seg.lo + 1, seg.hi + 1):
            top_fa = plan[lo].kind == "fa" and i == seg.hi - 1
            if i == seg.hi or plan[i] != plan[lo] or top_fa:
                cut_seg.append(Unit(plan[lo], k, lo, i))
                lo = i
        units += _fold(cut_seg, seg)
    return units


def _fold(units: list[Unit], seg: Segment) -> list[Unit]:
    """``units`` (bottom-up, one segment) with BDFA's blocks folded (`Unit`): a ``"backprop"``
    point over ``"delta"`` points reading it is one boundary part; equal parts, each reading the
    lowest point of the part above inside the segment, one unit."""
    parts, rest = [], units[::-1]  # top-down
    while rest:
        u, low = rest[0], rest[1] if len(rest) > 1 else None
        if (u.source.kind == "backprop" and u.hi - u.lo == 1 and low is not None
                and low.source.kind == "delta" and low.source.of == low.hi == u.lo):
            parts.append(Unit(low.source, u.seg, low.lo, u.hi, boundary=True))
            rest = rest[2:]
        else:
            parts.append(u)
            rest = rest[1:]
    folded = []
    for u in parts:
        top = folded[-1] if folded else None
        if (top is not None and u.boundary == top.boundary and u.part == top.part and u.hi == top.lo
                and (u.boundary or (u.source.kind == top.source.kind == "delta" and u.source.of == u.hi
                                    and top.source.of == top.hi < seg.hi))):
            folded[-1] = top._replace(lo=u.lo, repeat=top.repeat + 1)
        else:
            folded.append(u)
    return folded[::-1]


def _lead(tree):
    return jax.tree.map(lambda a: a[None], tree)


def _first(tree):
    return jax.tree.map(lambda a: a[0], tree)


def _rows(tree, lo, hi):
    return jax.tree.map(lambda a: a[lo:hi], tree)


def _each(run: bool, f, *xs):
    """``f`` on every block of stacked ``xs``: one vmap for a run, a call for a lone block."""
    return jax.vmap(f)(*xs) if run else _lead(f(*map(_first, xs)))


def _scan(run: bool, body, carry, xs):
    """``body`` over stacked ``xs`` from the top block down: a scan for a run, a call for a lone
    block."""
    if run:
        return lax.scan(body, carry, xs, reverse=True)
    carry, ys = body(carry, _first(xs))
    return carry, _lead(ys)


def init_feedback(net, rule, key) -> tuple:
    """The feedback entries of ``rule`` on ``net``, one per segment, as the module docstring lays
    them out; with ``shared_feedback`` one array per signal and shape, repeated."""
    segs, plan = net.segments, rule.plan(net.depth)
    if plan is None:
        return ()
    units, sizes = cut(plan, segs), net.point_sizes
    shared, drawn = getattr(rule, "shared_feedback", False), {}

    def new(signal, k, shape, fan, n):
        if not shared:
            return draw(k, rule, shape if n is None else (n, *shape), fan)
        if any(sig == signal and s != shape for sig, s in drawn):
            raise ValueError(f"shared_feedback needs one shape for every point that reads the same "
                             f"signal; this {type(net).__name__}'s points read {signal} through "
                             f"{sorted({s for sig, s in drawn if sig == signal} | {shape})}: draw "
                             "them apart (shared_feedback=False)")
        if (signal, shape) not in drawn:  # drawn once, with the first such unit's key
            drawn[signal, shape] = draw(k, rule, shape, fan)
        return drawn[signal, shape] if n is None else jnp.broadcast_to(drawn[signal, shape], (n, *shape))

    entries = []
    for u, k in zip(units, jax.random.split(key, len(units))):
        kind, n = u.source.kind, (u.hi - u.lo - u.repeat * u.boundary if segs[u.seg].run else None)
        if kind == "backprop":
            entries.append(None)
        elif kind == "fa":
            leaves, tree = jax.tree.flatten(_above_shapes(net, u))
            shapes = [w.shape for w in leaves]
            entries.append(tree.unflatten([
                new(f"fa{j}", kj, w, math.prod(w) // w[-2], n) if len(w) >= 2
                else jnp.zeros(w if n is None else (n, *w))
                for j, (kj, w) in enumerate(zip(jax.random.split(k, len(shapes)), shapes))]))
        else:
            src = net.out_features if kind in ("error", "mix") else sizes[u.source.of]
            signal = "e" if kind in ("error", "mix") else "a delta"
            entries.append(new(signal, k, (sizes[u.lo], src), src, n))
    return tuple(tuple(e for e, u in zip(entries, units) if u.seg == k) if seg.run
                 else next(e for e, u in zip(entries, units) if u.seg == k) for k, seg in enumerate(segs))


def _above_shapes(net, u: Unit):
    """The parameter shapes of one block just above ``u``'s points (`_above`)."""
    segs, shapes = net.segments, net.params_shapes
    if u.hi < segs[u.seg].hi or (u.seg + 1 < len(segs) and segs[u.seg + 1].run):
        block = shapes.blocks[u.seg if u.hi < segs[u.seg].hi else u.seg + 1]
        return jax.tree.map(lambda w: jax.ShapeDtypeStruct(w.shape[1:], w.dtype), block)
    return shapes.blocks[u.seg + 1] if u.seg + 1 < len(segs) else shapes.output


def _above(net, params, u: Unit, trace=None):
    """``(params, input, block index)`` of the blocks just above ``u``'s points, stacked
    (n, ...): its own run's next blocks, else the next segment's first block or the output block
    (its input from ``trace``, the forward's per-segment `jdfa.chain.Point`s, when given)."""
    segs = net.segments
    seg = segs[u.seg]
    if u.hi < seg.hi:  # inside the run
        r0, r1 = u.lo - seg.lo + 1, u.hi - seg.lo + 1
        return (_rows(params.blocks[u.seg], r0, r1),
                None if trace is None else trace.points[u.seg].h_in[r0:r1], seg.lo)
    if u.seg + 1 < len(segs):
        nxt, p = segs[u.seg + 1], params.blocks[u.seg + 1]
        h = None if trace is None else trace.points[u.seg + 1].h_in[:1]
        return (_rows(p, 0, 1) if nxt.run else _lead(p)), h, nxt.lo
    return _lead(params.output), None if trace is None else trace.h_top[None], net.depth


class Trace(NamedTuple):
    """The forward pass, as the plan reads it: a `jdfa.chain.Point` per segment (arrays on a
    leading layer axis, of one for a lone block), the output block's input ``h_top``."""

    points: list
    h_top: jax.Array


def run_plan(net, rule, plan, params, feedback, trace: Trace, e, vjp_out, draws=None):
    """``(block updates, output update)``: the plan's deltas and every block's update at its own
    delta; the block updates one tree per segment, stacked for a run.

    e: (N, *positions, out_features) the output error. draws: (depth,) bool, the mix draws.
    """
    segs, units = net.segments, cut(plan, net.segments)
    out_update, cot = vjp_out(e)
    carry = (e, cot)  # the delta of the point above the next unit, and its block's input cotangent
    pieces = [[] for _ in segs]  # per segment: (first point, stacked updates, stacked deltas)

    def delta_of(j):
        k = next(k for k, s in enumerate(segs) if s.lo <= j < s.hi)
        r0, _, d = next(p for p in pieces[k] if p[0] <= j - segs[k].lo < p[0] + len(p[2]))
        return d[j - segs[k].lo - r0]

    entries = [f for seg, f in zip(segs, feedback.layers) for f in (f if seg.run else (f,))]
    entries = entries or [None] * len(units)  # the shallow control's BP plan reads no feedback
    for i in reversed(range(len(units))):
        u, b, seg = units[i], entries[i], segs[units[i].seg]
        b = b if seg.run or b is None else _lead(b)
        pt = _rows(trace.points[u.seg], u.lo - seg.lo, u.hi - seg.lo)
        kind, fb = u.source.kind, rule.feedback_fprime(pt.fprime, pt.keep)
        keep_cot = i > 0 and units[i - 1].reads_cotangent
        direct = None
        if u.boundary:
            cot, direct = _scan_boundary(net, u, seg.run, b, carry[1], pt, fb)
        elif u.repeat > 1:
            direct = _scan_units(net, u, b, delta_of(u.source.of), pt.a.shape, fb)
        elif kind in ("error", "delta", "mix"):
            direct = _direct(net, b, delta_of(u.source.of) if kind == "delta" else e, pt.a.shape, fb)
        if kind in CHAINED and not u.boundary:
            xs = {"vjp": pt.vjp, "a": pt.a, "fprime": pt.fprime, "fb": fb}
            if kind == "mix":
                xs.update(direct=direct, draw=draws[u.lo:u.hi])
            if kind == "fa":
                own, h_above, i_above = _above(net, params, u, trace)
                xs.update(stand_in=jax.tree.map(lambda w, p: w if w.ndim > 2 else p, b, own), h_above=h_above)
            keep_cot = keep_cot or u.reads_cotangent
            step = functools.partial(_chain_step, net, kind, i_above if kind == "fa" else None, keep_cot)
            # the carry holds what the next step reads: FA the delta, BP and mix the cotangent
            start = (carry[0] if kind == "fa" else None, carry[1] if keep_cot else None)
            (_, cot), (dp, d) = _scan(seg.run and u.hi - u.lo > 1, step, start, xs)
            carry = (d[0], cot)
        else:
            d = direct
            dp = _each(seg.run and u.hi - u.lo > 1, lambda f, d: f(d)[0], pt.vjp, d)
            cot = cot if u.boundary else _first(pt.vjp)(d[0])[1] if keep_cot else None
            carry = (d[0], cot)
        pieces[u.seg].append((u.lo - seg.lo, dp, d))
    blocks = []
    for seg, ps in zip(segs, pieces):
        ups = [p[1] for p in sorted(ps, key=lambda p: p[0])]
        blocks.append(jax.tree.map(lambda *a: jnp.concatenate(a), *ups) if seg.run else _first(ups[0]))
    return tuple(blocks), out_update


def _direct(net, b, s, shape, fprime):
    """``(B_l s) * f'`` for every point ``l`` of a unit at once: ``b`` (n, size, src), ``s`` (N,
    *positions, src...) -> (n, N, ...) as ``shape``."""
    d = jnp.reshape(jnp.einsum("ms,lus->lmu", net.rows(s), b), shape)
    return d if fprime is None else d * fprime


def _scan_units(net, u: Unit, b, s, shape, fprime):
    """The deltas (n, N, ...) of a folded unit: one scan over its ``repeat`` parts from the top,
    each one `_direct` from the delta of the lowest point of the part above (``s`` for the top)."""
    k = (u.hi - u.lo) // u.repeat

    def part(s, x):
        d = _direct(net, x[0], s, (k, *shape[1:]), x[1])
        return d[0], d

    def parts(a):
        return None if a is None else jnp.reshape(a, (u.repeat, k, *a.shape[1:]))

    return jnp.reshape(lax.scan(part, s, (parts(b), parts(fprime)), reverse=True)[1], shape)


def _scan_boundary(net, u: Unit, run: bool, b, cot, pt, fb):
    """``(cotangent, deltas (n, N, ...))`` of a boundary unit: one scan over its parts from the
    top, each part's top delta the true step from ``cot`` (the input cotangent of the block above),
    its other points that delta through ``B``, and the cotangent below its lowest block."""
    k, shape = u.part, pt.a.shape

    def parts(a, rows=None):
        return None if a is None else jnp.reshape(a, (u.repeat, rows or k, *a.shape[1:]))

    def part(cot, x):
        top = jnp.reshape(cot, shape[1:])
        top = top if x["fprime"] is None else top * x["fprime"]
        d = jnp.concatenate([_direct(net, x["b"], top, (k - 1, *shape[1:]), x["fb"]), top[None]])
        return x["vjp"](d[0])[1], d

    xs = {"b": parts(b, k - 1), "fb": None if fb is None else parts(fb)[:, :k - 1],
          "fprime": None if pt.fprime is None else parts(pt.fprime)[:, k - 1],
          "vjp": jax.tree.map(lambda a: parts(a)[:, 0], pt.vjp)}
    cot, d = _scan(run and u.repeat > 1, part, cot, xs)
    return cot, jnp.reshape(d, shape)


def _chain_step(net, kind, i_above, keep_cot, carry, x):
    """One block of a chained unit, from the top down: its point's delta from ``carry`` (the delta
    above and its block's input cotangent), then the block's VJP at it."""
    d_above, cot = carry

    def true_step():
        d = jnp.reshape(cot, x["a"].shape)
        return d if x["fprime"] is None else d * x["fprime"]

    if kind == "backprop":
        d = true_step()
    elif kind == "mix":
        d = jnp.where(x["draw"], true_step(), x["direct"])
    else:  # fa: the block above's input VJP with its weights replaced by the stand-ins
        block = functools.partial(net.block_apply, i_above, x["stand_in"])
        d = jnp.reshape(jax.vjp(block, x["h_above"])[1](d_above)[0], x["a"].shape)
        d = d if x["fb"] is None else d * x["fb"]
    dp, cot = x["vjp"](d) if keep_cot else (x["vjp"](d)[0], None)
    return (d if kind == "fa" else None, cot), (dp, d)
