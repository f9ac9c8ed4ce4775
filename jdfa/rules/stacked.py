"""A rule's plan compiled to stacked ops on `jdfa.MLP`, so that the step stays flat in depth.

`jdfa.rules.Rule.plan` says, layer by layer, where each hidden delta comes from. On the MLP the
layers are stacked, and the plan is cut, from the output side down, into *units* of consecutive
layers that one op forms at once:

* ``error``: layers reading ``e`` -- one batched einsum (DFA, FP's error-reading part, BDFA's top
  block);
* ``delta``: layers reading the same layer's delta -- one batched einsum (FP's lower layers, a
  BDFA block);
* ``backprop`` / ``fa``: a run of true (or random-weight) steps from the layer above -- one
  `lax.scan` (BP, FA, FP's top);
* ``mix``: a run of layers drawing BP or DFA each step -- both formed, one scan selecting;
* ``block``: one backprop layer and the layers below reading its delta (BDFA's ``"backprop"``
  boundary, FP(1)).

A run of identical units each reading the lowest layer of the unit above (BDFA's blocks) becomes
one `lax.scan` over the units, so nothing unrolls with depth: BDFA is sequential only over blocks,
each step one batched einsum. Shapes: ``N`` the batch, ``L`` a number of stacked layers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa.rules.pieces import chain, direct, stack

FOLDS = ("delta", "block")  # the unit kinds whose repeats become one scan


class Unit(NamedTuple):
    """Layers ``lo .. hi - 1`` (0-based, bottom-up) formed by one op; ``of`` the layer a
    ``delta`` unit reads (for ``block``, its own top); ``repeat`` identical units stacked below
    the first, one `lax.scan` over them (``hi - lo`` is then ``repeat`` times a unit's size)."""

    kind: str
    lo: int
    hi: int
    of: int = -1
    repeat: int = 1


def units(plan) -> list[Unit]:
    """The plan cut into units, top-down, repeats folded."""
    depth, cut, i = len(plan), [], len(plan) - 1
    while i >= 0:
        s, lo = plan[i], i
        while lo > 0 and (plan[lo - 1] == s if s.kind == "delta" else plan[lo - 1].kind == s.kind):
            lo -= 1
        if s.kind == "delta" and not i < s.of < depth:
            raise ValueError(f"plan: layer {i} reads the delta of layer {s.of}, which is not above it")
        if s.kind == "delta" and cut and cut[-1].kind == "backprop" and cut[-1].lo == cut[-1].hi - 1 == s.of:
            cut[-1] = Unit("block", lo, cut[-1].hi, s.of)
        else:
            cut.append(Unit(s.kind, lo, i + 1, s.of))
        i = lo - 1
    return _fold(cut, depth)


def _fold(cut: list[Unit], depth: int) -> list[Unit]:
    folded = []
    for u in cut:
        prev = folded[-1] if folded else None
        size = u.hi - u.lo
        if (prev is not None and u.kind in FOLDS and prev.kind == u.kind and prev.hi < depth
                and (prev.hi - prev.lo) // prev.repeat == size and u.hi == prev.lo
                and (u.kind == "block" or u.of == u.hi) and (prev.kind == "block" or prev.of == prev.hi)):
            folded[-1] = Unit(u.kind, u.lo, prev.hi, prev.of, prev.repeat + 1)
        else:
            folded.append(u)
    return folded


def feedback_index(plan) -> tuple[list[int], list[int]]:
    """Each layer's index into ``feedback.output`` and ``feedback.hidden`` (-1: none), as
    `jdfa.rules.Rule.feedback_layout` lays them out: bottom-up, per kind."""
    top, out, hid = len(plan) - 1, [], []
    for i, s in enumerate(plan):
        reads_e = s.kind in ("error", "mix") or (s.kind == "fa" and i == top)
        reads_delta = s.kind == "delta" or (s.kind == "fa" and i < top)
        out.append(sum(o >= 0 for o in out) if reads_e else -1)
        hid.append(sum(h >= 0 for h in hid) if reads_delta else -1)
    return out, hid


def plan_deltas(rule, net, params, feedback, trace, e, context=None) -> jax.Array | None:
    """The hidden deltas (depth, N, width) of ``rule``'s plan on `jdfa.MLP` ``net``, bottom-up
    (None when no hidden layer learns): `jdfa.rules.Rule.deltas`."""
    plan = rule.plan(net.depth)
    if plan is None:
        return None
    fp, fb = trace.fprime, rule.feedback_fprime(trace.fprime, trace.keep)  # true f', feedback's
    out_i, hid_i = feedback_index(plan)
    draws = rule.draws(net.depth, context) if any(s.kind == "mix" for s in plan) else None
    done: list[tuple[int, jax.Array]] = []  # (lo, deltas of the unit starting at lo), top-down

    def delta_of(j):
        return next(d[j - lo] for lo, d in done if lo <= j)

    for u in units(plan):
        above = e if u.hi == net.depth else delta_of(u.hi)
        w_above = params.output.w if u.hi == net.depth else params.hidden.w[u.hi - 1]
        o, h, n = out_i[u.lo], hid_i[u.lo], u.hi - u.lo
        if u.kind == "error":
            d = direct(feedback.output[o:o + n], e, fb[u.lo:u.hi])
        elif u.kind == "delta" and u.repeat == 1:
            d = direct(feedback.hidden[h:h + n], delta_of(u.of), fb[u.lo:u.hi])
        elif u.kind == "delta":
            k = n // u.repeat
            xs = (_blocks(feedback.hidden[h:h + n], k), _blocks(fb[u.lo:u.hi], k))
            d = _scan_blocks(_delta_block, above, xs)
        elif u.kind == "block" and u.repeat == 1:
            t = (above @ w_above.T) * fp[u.hi - 1]
            d = stack(direct(feedback.hidden[h:h + n - 1], t, fb[u.lo:u.hi - 1]), t[None])
        elif u.kind == "block":
            k = n // u.repeat
            xs = (params.hidden.w[u.lo + k - 1:u.hi:k],  # each block's top reads through W_{top+1}
                  _blocks(feedback.hidden[h:h + u.repeat * (k - 1)], k - 1),
                  fp[u.lo + k - 1:u.hi:k], _blocks(fb[u.lo:u.hi], k)[:, :k - 1])
            d = _scan_blocks(_backprop_block, above, xs)
        elif u.kind == "backprop":
            top = (above @ w_above.T) * fp[u.hi - 1]
            d = stack(chain(top, params.hidden.w[u.lo:u.hi - 1], fp[u.lo:u.hi - 1]), top[None])
        elif u.kind == "fa":
            b_top = (feedback.output[out_i[u.hi - 1]] if u.hi == net.depth
                     else feedback.hidden[hid_i[u.hi - 1]])
            top = (above @ b_top.T) * fb[u.hi - 1]
            d = stack(chain(top, feedback.hidden[h:h + n - 1], fb[u.lo:u.hi - 1]), top[None])
        elif u.kind == "mix":
            d = _mix(above, w_above, params.hidden.w[u.lo:u.hi - 1], fp[u.lo:u.hi],
                     direct(feedback.output[o:o + n], e, fb[u.lo:u.hi]), draws[u.lo:u.hi])
        else:
            raise ValueError(f"plan: unknown source kind {u.kind!r}")
        done.append((u.lo, d))
    return jnp.concatenate([d for _, d in reversed(done)])


def _blocks(a: jax.Array, k: int) -> jax.Array:
    """(m * k, ...) -> (m, k, ...): a stack cut into blocks of ``k`` layers."""
    return a.reshape((-1, k) + a.shape[1:])


def _scan_blocks(block, s, xs):
    """``block`` over the blocks of ``xs`` from the top down, each handed the delta of the lowest
    layer of the block above (``s`` for the top one); the deltas, bottom-up."""
    d = lax.scan(block, s, xs, reverse=True)[1]
    return d.reshape((-1,) + d.shape[2:])


def _delta_block(s, xs):
    b, fprime = xs
    d = direct(b, s, fprime)
    return d[0], d


def _backprop_block(s, xs):
    w_above, b, fprime_top, fprime = xs
    t = (s @ w_above.T) * fprime_top
    d = stack(direct(b, t, fprime), t[None])
    return d[0], d


def _mix(above, w_above, w, fprime, dfa, use_bp):
    """BP from the layer above where ``use_bp`` (L,) says, else the DFA delta ``dfa`` (L, N, width)."""
    top = jnp.where(use_bp[-1], (above @ w_above.T) * fprime[-1], dfa[-1])

    def step(delta, xs):
        w_l, fprime_l, d_dfa, bp = xs
        delta = jnp.where(bp, (delta @ w_l.T) * fprime_l, d_dfa)
        return delta, delta

    lower = lax.scan(step, top, (w, fprime[:-1], dfa[:-1], use_bp[:-1]), reverse=True)[1]
    return jnp.concatenate([lower, top[None]])
