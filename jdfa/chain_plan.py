"""A rule's plan run on a `jdfa.chain.ChainNet`, many feedback points at a time.

The plan is cut into units over the chain's segments (`jdfa.chain_units`). Each unit is one piece
of work over all its points, top-down:

* ``"error"``, ``"delta"``: the deltas are one einsum of the signal (``e``, or the delta of point
  ``of``) with the unit's stacked ``B``; the parameter updates one `jax.vmap` of the block's VJP
  (kept by the forward scan) over the layer axis;
* ``"backprop"``, ``"fa"``, ``"mix"``: one reverse `lax.scan` over the unit's blocks, each step
  forming its point's delta from the carry (the block above's true input cotangent; its VJP with
  the fixed random stand-ins for FA; a select between the two for mix) and taking the block's VJP
  at it, which gives the block's update and the cotangent the step below reads;
* BDFA's blocks, folded: one scan over them, each step one einsum (with the ``"backprop"``
  boundary, the true step at each block's top first), then one vmapped VJP for all their blocks.

A lone block is taken as a run of one without the vmap or scan: XLA:CPU runs a convolution's
weight gradient 7-20x slower inside a loop body (jax-ml/jax#12868). What stays sequential in depth
is the forward scan, the scans of the chained kinds and BDFA's scan over blocks.

A block that marks points inside it (`jdfa.chain_points`) has a tuple of deltas, one per point
(each its own ``B``); a true step reaches its inner points by backprop inside it, and a ``"delta"``
source reads its output's delta.

Shapes: ``N`` the batch size, ``n`` the points of a unit.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa.chain_points import block_vjp, inside, output, times
from jdfa.chain_points import direct as _direct
from jdfa.chain_units import Unit, cut

CHAINED = ("backprop", "fa", "mix")  # the kinds whose delta follows from the point above's


def _lead(tree):
    return jax.tree.map(lambda a: a[None], tree)


def _first(tree):
    return jax.tree.map(lambda a: a[0], tree)


def _rows(tree, lo, hi):
    return jax.tree.map(lambda a: a[lo:hi], tree)


def _structs(tree, lead):
    """Shapes of ``tree``'s stacked arrays with their leading axis replaced by ``lead`` (``()``:
    dropped), as `jax.ShapeDtypeStruct` leaves."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((*lead, *a.shape[1:]), a.dtype), tree)


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


def _above(net, params, u: Unit, trace):
    """``(params, input, block index)`` of the blocks just above ``u``'s points, stacked
    (n, ...): its own run's next blocks, else the next segment's first block or the output block;
    their inputs from ``trace`` (`Trace`)."""
    segs = net.segments
    seg = segs[u.seg]
    if u.hi < seg.hi:  # inside the run
        r0, r1 = u.lo - seg.lo + 1, u.hi - seg.lo + 1
        return _rows(params.blocks[u.seg], r0, r1), trace.points[u.seg].h_in[r0:r1], seg.lo
    if u.seg + 1 < len(segs):
        nxt, p = segs[u.seg + 1], params.blocks[u.seg + 1]
        return (_rows(p, 0, 1) if nxt.run else _lead(p)), trace.points[u.seg + 1].h_in[:1], nxt.lo
    return _lead(params.output), trace.h_top[None], net.depth


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
        r0, _, d = next(p for p in pieces[k] if p[0] <= j - segs[k].lo < p[0] + len(output(p[2])))
        return jax.tree.map(lambda a: a[j - segs[k].lo - r0], d)

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
            direct = _scan_units(net, u, b, delta_of(u.source.of), pt.a, fb)
        elif kind in ("error", "delta", "mix"):
            direct = _direct(net, b, delta_of(u.source.of) if kind == "delta" else e, pt.a, fb)
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
        else:
            d = direct
            dp = _each(seg.run and u.hi - u.lo > 1, lambda f, d: f(d)[0], pt.vjp, d)
            cot = cot if u.boundary else _first(pt.vjp)(_first(d))[1] if keep_cot else None
        carry = (_first(d), cot)
        pieces[u.seg].append((u.lo - seg.lo, dp, d))
    blocks = []
    for seg, ps in zip(segs, pieces):
        ups = [p[1] for p in sorted(ps, key=lambda p: p[0])]
        blocks.append(jax.tree.map(lambda *a: jnp.concatenate(a), *ups) if seg.run else _first(ups[0]))
    return tuple(blocks), out_update


def _scan_units(net, u: Unit, b, s, like, fprime):
    """The deltas (n, N, ...) of a folded unit, shaped as its points ``like``: one scan over its
    ``repeat`` parts from the top, each one `_direct` from the delta of the lowest point of the
    part above (``s`` for the top)."""
    k = u.part

    def part(s, x):
        d = _direct(net, x[0], s, _structs(like, (k,)), x[1])
        return output(_first(d)), d

    def parts(a):
        return None if a is None else jnp.reshape(a, (u.repeat, k, *a.shape[1:]))

    d = lax.scan(part, output(s), (jax.tree.map(parts, b), parts(fprime)), reverse=True)[1]
    return jax.tree.map(lambda d, a: jnp.reshape(d, a.shape), d, like)


def _scan_boundary(net, u: Unit, run: bool, b, cot, pt, fb):
    """``(cotangent, deltas (n, N, ...))`` of a boundary unit: one scan over its parts from the
    top, each part's top delta the true step from ``cot`` (the input cotangent of the block above),
    its other points that delta through ``B``, and the cotangent below its lowest block."""
    k = u.part

    def parts(a, rows=None):
        return None if a is None else jnp.reshape(a, (u.repeat, rows or k, *a.shape[1:]))

    def part(cot, x):
        top = times(jnp.reshape(cot, output(pt.a).shape[1:]), x["fprime"])
        top = inside(x["vjp_top"], top, _structs(pt.a, ()))
        lower = _direct(net, x["b"], top, _structs(pt.a, (k - 1,)), x["fb"])
        d = jax.tree.map(lambda lo, t: jnp.concatenate([lo, t[None]]), lower, top)
        return x["vjp"](_first(d))[1], d

    xs = {"b": jax.tree.map(lambda a: parts(a, k - 1), b), "fb": None if fb is None else parts(fb)[:, :k - 1],
          "fprime": None if pt.fprime is None else parts(pt.fprime)[:, k - 1],
          "vjp": jax.tree.map(lambda a: parts(a)[:, 0], pt.vjp),
          "vjp_top": jax.tree.map(lambda a: parts(a)[:, k - 1], pt.vjp)}
    cot, d = _scan(run and u.repeat > 1, part, cot, xs)
    return cot, jax.tree.map(lambda d, a: jnp.reshape(d, a.shape), d, pt.a)


def _chain_step(net, kind, i_above, keep_cot, carry, x):
    """One block of a chained unit, from the top down: its point's delta from ``carry`` (the delta
    above and its block's input cotangent), its inner points' by backprop inside it, then the
    block's VJP at them."""
    d_above, cot = carry

    def true_step():
        top = times(jnp.reshape(cot, output(x["a"]).shape), x["fprime"])
        return inside(x["vjp"], top, x["a"])

    if kind == "backprop":
        d = true_step()
    elif kind == "mix":
        d = jax.tree.map(lambda t, s: jnp.where(x["draw"], t, s), true_step(), x["direct"])
    else:  # fa: the block above's input VJP with its weights replaced by the stand-ins
        cot_above = block_vjp(net, i_above, x["stand_in"], x["h_above"])[1](d_above)[1]
        top = times(jnp.reshape(cot_above, output(x["a"]).shape), x["fb"])
        d = inside(x["vjp"], top, x["a"])
    dp, cot = x["vjp"](d)[:2] if keep_cot else (x["vjp"](d)[0], None)
    return (d if kind == "fa" else None, cot), (dp, d)
