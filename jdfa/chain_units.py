"""A `jdfa.chain.ChainNet`'s blocks in segments and a rule's plan cut into units over them, and
the feedback laid out per unit.

A chain's blocks come in *segments* (`Segment`): a lone block, or a *run* of identical blocks
whose parameters carry a leading layer axis (a transformer's decoder blocks). The plan
(`jdfa.rules.Rule.plan`: a `jdfa.rules.Source` per feedback point) is cut into *units* (`Unit`):
consecutive points of one segment that read the same source, each one piece of work of
`jdfa.chain_plan` over all its points. BDFA's blocks in a run fold into one unit (a scan over
them), so the number of units does not grow with a run's length.

Feedback (`init_feedback`): one entry per segment, bottom-up: a lone block's point's, or for a
run a tuple of one entry per unit, stacked on a leading axis of the unit's points. ``"error"``,
``"mix"``: ``B`` (size, out_features) per point, ``size`` the point's units at one position
(`jdfa.chain.ChainNet.point_sizes`); ``"delta"`` from point ``j``: (size, size_j), for a boundary
unit its non-top points only; for a block with points inside it (`jdfa.chain_points`) a tuple of
one such ``B`` per point; ``"fa"``: the block above's parameters with every weight (rank >= 2)
redrawn; ``"backprop"``: None. A net without runs thus has one entry per point.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdfa.feedback import draw

KINDS = ("error", "delta", "backprop", "fa", "mix")  # the `jdfa.rules.Source` kinds a chain runs


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


def init_feedback(net, rule, key) -> tuple:
    """The feedback entries of ``rule`` on ``net``, one per segment, as the module docstring lays
    them out; with ``shared_feedback`` one array per signal and shape, repeated: the blocks'
    outputs must agree on it, the points inside blocks share one per shape."""
    segs, plan = net.segments, rule.plan(net.depth)
    if plan is None:
        return ()
    units, sizes = cut(plan, segs), net.point_sizes
    rows = [tuple(math.prod(s[net.position_axes:]) for s in p) for p in net.block_points]
    widest = max(max(r) for r in rows)
    shared, drawn, outputs = getattr(rule, "shared_feedback", False), {}, set()

    def new(signal, k, shape, fan, n, inner=False):
        if not shared:
            return draw(k, rule, shape if n is None else (n, *shape), fan, widest)
        if not inner and any(sig == signal and s != shape for sig, s in outputs):
            raise ValueError(f"shared_feedback needs one shape for every point that reads the same "
                             f"signal; this {type(net).__name__}'s points read {signal} through "
                             f"{sorted({s for sig, s in outputs if sig == signal} | {shape})}: draw "
                             "them apart (shared_feedback=False)")
        if not inner:
            outputs.add((signal, shape))
        if (signal, shape) not in drawn:  # drawn once, with the first such unit's key
            drawn[signal, shape] = draw(k, rule, shape, fan, widest)
        return drawn[signal, shape] if n is None else jnp.broadcast_to(drawn[signal, shape], (n, *shape))

    def bs(signal, k, lo, src, n):  # the B of block lo's point, or of each of its points
        if len(rows[lo]) == 1:
            return new(signal, k, (rows[lo][0], src), src, n)
        return tuple(new(signal, kj, (r, src), src, n, inner=j < len(rows[lo]) - 1)
                     for j, (kj, r) in enumerate(zip(jax.random.split(k, len(rows[lo])), rows[lo])))

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
            entries.append(bs(signal, k, u.lo, src, n))
    return tuple(tuple(e for e, u in zip(entries, units) if u.seg == k) if seg.run
                 else next(e for e, u in zip(entries, units) if u.seg == k) for k, seg in enumerate(segs))


def _above_shapes(net, u: Unit):
    """The parameter shapes of one block just above ``u``'s points (`_above`)."""
    segs, shapes = net.segments, net.params_shapes
    if u.hi < segs[u.seg].hi or (u.seg + 1 < len(segs) and segs[u.seg + 1].run):
        block = shapes.blocks[u.seg if u.hi < segs[u.seg].hi else u.seg + 1]
        return jax.tree.map(lambda w: jax.ShapeDtypeStruct(w.shape[1:], w.dtype), block)
    return shapes.blocks[u.seg + 1] if u.seg + 1 < len(segs) else shapes.output


def zero_blocks(update, seg, frozen):
    """``update`` of segment ``seg`` with the blocks in ``frozen`` zeroed."""
    keep = [i not in frozen for i in range(seg.lo, seg.hi)]
    if all(keep):
        return update
    if not seg.run or not any(keep):
        return jax.tree.map(jnp.zeros_like, update)
    mask = jnp.asarray(keep)
    return jax.tree.map(lambda a: a * mask.reshape((-1,) + (1,) * (a.ndim - 1)), update)
