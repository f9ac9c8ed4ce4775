"""Blocks of a `jdfa.chain.ChainNet` with several feedback points: the points a block marks inside.

A chain's block ends at a feedback point, its output. It may also mark points inside it
(`jdfa.chain.ChainNet.marks_points`): its ``block_apply(i, params, h, point=point)`` passes each
inner activation ``a`` through ``point(a)`` and computes on from what that returns (Launay et al.
2020's "micro" DFA in a transformer block: after the attention's residual sum, after the MLP's
hidden activation, then the block's output). Such a block's points are a tuple, bottom-up, its
output last, and so are its deltas; the rule's plan still gives one source per block, which all
its points read (each through its own ``B``).

Each inner point is *cut*: the block's update at deltas ``(d_1, ..., d_k)`` is the sum, over its
pieces (from the block's input or a point up to the next point), of each piece's VJP at its own
point's delta -- backprop inside each piece, none across a point (the VJP of `cut_apply`). Where
the rule takes a block's true delta (BP, the true steps of FA, mix and BDFA's boundary), the inner
points' true deltas follow from the output's by back-substitution through that same VJP
(`inside`), so one VJP per block serves every rule, and BP stays `jax.grad`.

A block of one point is left as it is everywhere: its point an array, its VJP ``delta -> (param
update, input cotangent)``; a block of several adds the inner points' cotangents from the pieces
above them as a third output.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


def cut_apply(net, i: int, params, h, taps):
    """Block ``i``'s points ``(a_1, ..., a_k)``, its output last; inner point ``j`` enters the
    pieces above it as ``stop_gradient(a_j) + taps[j]``: equal to ``a_j`` (the taps are zeros), its
    cotangent from those pieces sent to ``taps[j]`` instead of into ``a_j``'s own piece."""
    points, taps = [], iter(taps)

    def point(a):
        points.append(a)
        return lax.stop_gradient(a) + next(taps)

    out = net.block_apply(i, params, h, point=point)  # marks the inner points first
    return (*points, out)


def inner_structs(net, i: int, params, h) -> list:
    """The `jax.ShapeDtypeStruct` of each point block ``i`` marks inside it, bottom-up."""
    structs = []

    def point(a):
        structs.append(jax.ShapeDtypeStruct(a.shape, a.dtype))
        return a

    jax.eval_shape(lambda p, h: net.block_apply(i, p, h, point=point), params, h)
    return structs


def block_vjp(net, i: int, params, h):
    """``(points, vjp)`` of block ``i`` on ``h``: its point (or with `marks_points` its points, a
    tuple) and its VJP, ``delta(s) -> (param update, input cotangent[, inner cotangents])``."""
    if not net.marks_points(i):
        return jax.vjp(functools.partial(net.block_apply, i), params, h)
    taps = [jnp.zeros(s.shape, s.dtype) for s in inner_structs(net, i, params, h)]
    return jax.vjp(functools.partial(cut_apply, net, i), params, h, taps)


def output(points):
    """A block's output point (the next block's input) of its point or points."""
    return points[-1] if isinstance(points, tuple) else points


def times(d, fprime):
    """``d * fprime`` on the block's output point (``f'`` and dropout act there only)."""
    if fprime is None:
        return d
    return (*d[:-1], d[-1] * fprime) if isinstance(d, tuple) else d * fprime


def inside(vjp, top, like):
    """The deltas of a block's points from its output's delta ``top`` by backprop inside the
    block: ``top`` itself for a block of one point. ``like``: the block's points (shapes only).
    Top-down, pass ``j`` of the VJP is exact for inner point ``j``: only the pieces above it read
    it, and their deltas are final by then."""
    if not isinstance(like, tuple):
        return top
    d = (*(jnp.zeros(a.shape, a.dtype) for a in like[:-1]), top)
    for j in reversed(range(len(like) - 1)):
        d = (*d[:j], vjp(d)[2][j], *d[j + 1:])
    return d


def direct(net, b, s, like, fprime):
    """``(B_l s) * f'`` for every block ``l`` of a unit at once, per point of a block: ``b`` (n,
    size, src) or a tuple of them (one per point), ``s`` the signal (N, *positions, src...) or a
    block's deltas (its output's read) -> the deltas (n, N, ...) shaped as ``like``."""
    rows = net.rows(output(s))

    def one(b, a):
        return jnp.reshape(jnp.einsum("ms,lus->lmu", rows, b), a.shape)

    return times(tuple(map(one, b, like)) if isinstance(like, tuple) else one(b, like), fprime)
