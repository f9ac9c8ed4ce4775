"""Feedback Propagation (the Blocked-DFA paper): BP through the top layers, DFA below them."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jdfa.options import option
from jdfa.rules.base import FeedbackRule, Source
from jdfa.validate import check_choice, check_int

SOURCES = ("delta", "error")


@dataclasses.dataclass(frozen=True)
class FP(FeedbackRule):
    """Feedback Propagation: BP through the top ``bp_depth`` layers, DFA below them.

    ``source`` says what the DFA layers below read: ``"delta"``, the lowest BP layer's delta (the
    paper's FP, section 4.1), or ``"error"``, the output error ``e`` itself (the follow-up the
    paper proposes at the end of section 6.2.2: the lower layers then learn as DFA's do, while the
    top ones follow BP).

    Feedback: reading the delta, ``hidden`` holds the ``B_i`` of layers ``1 .. depth - bp_depth``,
    bottom-up. Reading ``e`` (``source="error"``, and always with ``bp_depth = 0``, where there is
    no BP layer), those ``B_i`` sit in ``output`` as DFA's do. Identities: ``fp(0) == dfa`` and
    ``fp(depth) == bp`` whatever the source; ``fp(k, source="error")``'s lower layers get DFA's
    deltas from the first ``depth - k`` of DFA's matrices.
    """

    name: ClassVar[str] = "fp"
    bp_depth: int = option(1, "fp: top hidden layers trained by BP (default 1)", in_spec=True)
    source: str = option("delta", "fp: the layers below the BP ones read the lowest BP layer's delta (the "
                         "paper's FP) or the output error (its proposed follow-up; spec fp2-error)",
                         choices=SOURCES, in_spec=True)

    def __post_init__(self):
        super().__post_init__()
        check_int("bp_depth", self.bp_depth, 0)
        check_choice("source", self.source, SOURCES)

    @property
    def _reads_error(self) -> bool:
        return self.bp_depth == 0 or self.source == "error"

    def check(self, net):
        if self.bp_depth > net.depth:
            raise ValueError(f"bp_depth must lie in [0, depth={net.depth}], got {self.bp_depth}")

    def plan(self, depth):
        n = depth - self.bp_depth
        lower = Source("error") if self._reads_error else Source("delta", n)
        return (lower,) * n + (Source("backprop"),) * self.bp_depth

    @classmethod
    def spec_fields(cls, number, suffix):
        if suffix not in ("", "-error"):
            raise ValueError(f"rule spec 'fp' takes no suffix but -error (the DFA part reads e), "
                             f"got {suffix!r}")
        fields = {} if number is None else {"bp_depth": number}
        return {**fields, "source": "error"} if suffix else fields

    @property
    def spec(self):
        return f"fp{self.bp_depth}" + ("-error" if self.source == "error" else "")
