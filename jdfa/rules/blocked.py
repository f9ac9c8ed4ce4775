"""Blocked DFA (the Blocked-DFA paper): DFA within blocks of layers, blocks chained from the
output side. Sequential only over blocks: one `lax.scan` over the full lower blocks, each step one
batched einsum over the block's layers."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

from jax import lax

from jdfa.rules.base import FeedbackRule, Source
from jdfa.rules.pieces import direct, stack
from jdfa.validate import check_choice, check_int

BOUNDARIES = ("direct", "backprop")


class _Blocks(NamedTuple):
    """How `BDFA` cuts ``depth`` layers, counted from the output side: a top block of ``k``
    layers, ``n_mid`` full blocks of ``k`` below it, and an input-side remainder of ``r`` layers
    (``0 <= r < k``; none when 0)."""

    k: int
    n_mid: int
    r: int


@dataclasses.dataclass(frozen=True)
class BDFA(FeedbackRule):
    """Blocked DFA with blocks of ``block_size`` layers counted from the output side.

    ``boundary="direct"`` is the paper's text (each block takes its delta from the lowest layer of
    the block above through ``B``); ``"backprop"`` passes the true gradient through ``W^T`` into
    each block's top layer. Identities: ``bdfa(K >= depth) == dfa``, ``bdfa(1) == fa``,
    ``bdfa(1, "backprop") == bp``, ``bdfa(K >= depth, "backprop") == fp(1)``.

    Feedback (see `_Blocks` for the cut), bottom-up in each stack:

    * ``"direct"``: ``output`` holds the top block's ``k`` matrices (they read ``e``); ``hidden``
      every lower layer's: the remainder block's ``r``, then each middle block's ``k``.
    * ``"backprop"``: ``output`` is empty; ``hidden`` holds every layer's but the block tops: the
      remainder block's ``r - 1``, each middle block's ``k - 1``, then the top block's ``k - 1``.
    """

    name: ClassVar[str] = "bdfa"
    block_size: int = 25
    boundary: str = "direct"

    def __post_init__(self):
        super().__post_init__()
        check_int("block_size", self.block_size, 1)
        check_choice("boundary", self.boundary, BOUNDARIES)

    def blocks(self, depth: int) -> _Blocks:
        """The cut of ``depth`` layers into blocks."""
        k = min(self.block_size, depth)
        n_mid, r = divmod(depth - k, k)
        return _Blocks(k, n_mid, r)

    def plan(self, depth):
        k, n_mid, r = self.blocks(depth)
        tops = [depth] + [depth - k * (m + 1) for m in range(n_mid)] + ([r] if r else [])
        sources = []
        for top in reversed(tops):  # blocks bottom-up: [lo, top), the block above starts at top
            lo = max(top - k, 0)
            if self.boundary == "direct":
                sources += [Source("error") if top == depth else Source("delta", top)] * (top - lo)
            else:
                sources += [Source("delta", top - 1)] * (top - 1 - lo) + [Source("backprop")]
        return tuple(sources)

    def deltas(self, net, params, feedback, trace, e, context=None):
        # Feedback deltas use fprime_fb (ones without use_derivative); BP steps keep the true f'.
        depth, fprime, fprime_fb = net.depth, trace.fprime, self.feedback_fprime(trace.fprime, trace.keep)
        k, n_mid, r = self.blocks(depth)

        def mid_blocks(a, size):  # (n_mid * k, ...) -> (n_mid, size, ...), each block's first `size`
            return a.reshape((n_mid, k) + a.shape[1:])[:, :size]

        if self.boundary == "direct":
            top = (feedback.output, fprime_fb[depth - k:])
            mid = (feedback.hidden[r:].reshape((n_mid, k) + feedback.hidden.shape[1:]),
                   mid_blocks(fprime_fb[r:depth - k], k))
            rem = (feedback.hidden[:r], fprime_fb[:r])
            block = _direct_block
        else:
            n_rem, hid, w = max(r - 1, 0), feedback.hidden, params.hidden.w
            top = (params.output.w, hid[hid.shape[0] - (k - 1):], fprime[depth - 1],
                   fprime_fb[depth - k:depth - 1])
            mid = (w[r + k - 1:depth - k:k],
                   hid[n_rem:n_rem + n_mid * (k - 1)].reshape((n_mid, k - 1) + hid.shape[1:]),
                   mid_blocks(fprime[r:depth - k], k)[:, k - 1],
                   mid_blocks(fprime_fb[r:depth - k], k - 1))
            rem = (w[r - 1], hid[:n_rem], fprime[r - 1], fprime_fb[:n_rem]) if r else None
            block = _backprop_block
        return _blocked(block, top, mid if n_mid else None, rem if r else None, e)

    @classmethod
    def spec_fields(cls, number, suffix):
        boundary = {"": None, "-direct": "direct", "-bp": "backprop", "-backprop": "backprop"}
        if suffix not in boundary:
            raise ValueError(f"rule spec 'bdfa' takes the suffix -bp, -backprop or -direct, "
                             f"got {suffix!r}")
        fields = {} if number is None else {"block_size": number}
        return fields if boundary[suffix] is None else {**fields, "boundary": boundary[suffix]}

    @property
    def spec(self):
        return f"bdfa{self.block_size}" + ("-bp" if self.boundary == "backprop" else "")


def _blocked(block, top, mid, rem, e):
    """Runs ``block`` over the blocks from the output side: the top block reads ``e``, the full
    lower blocks are one `lax.scan` (so nothing unrolls with depth), the input-side remainder
    block (possibly absent) comes last.

    block: ``(s, xs) -> (s_next, deltas (n, N, width))`` where ``s`` is the signal handed down
    from the block above and ``s_next`` the delta of the block's lowest layer.
    top, rem: the block inputs; mid: the same with a leading block axis (bottom-up); mid and rem
    are None when there is no such block.
    """
    s, d_top = block(e, top)
    parts = [d_top]
    if mid is not None:
        s, d_mid = lax.scan(block, s, mid, reverse=True)
        parts.insert(0, d_mid.reshape((-1,) + d_mid.shape[2:]))
    if rem is not None:
        parts.insert(0, block(s, rem)[1])
    return stack(*parts)


def _direct_block(s, xs):
    b, fprime = xs
    d = direct(b, s, fprime)
    return d[0], d


def _backprop_block(s, xs):
    w_above, b, fprime_top, fprime = xs
    t = (s @ w_above.T) * fprime_top
    d = stack(direct(b, t, fprime), t[None])
    return d[0], d
