"""Blocked DFA (the Blocked-DFA paper): DFA within blocks of layers, blocks chained from the
output side. On `jdfa.MLP` its plan compiles to a sequence over blocks only (`jdfa.rules.stacked`:
one `lax.scan` over the full lower blocks, each step one batched einsum over the block's layers)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

from jdfa.options import option
from jdfa.rules.base import FeedbackRule, Source
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
    block_size: int = option(25, "bdfa: layers per block, counted from the output side (default 25)",
                             in_spec=True)
    boundary: str = option("direct", "bdfa: a block's top layer reads the block above through B (direct, "
                           "the paper's text) or through W^T (backprop)", choices=BOUNDARIES, in_spec=True)

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
