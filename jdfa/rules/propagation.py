"""Feedback Propagation (the Blocked-DFA paper): BP through the top layers, DFA below them."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jdfa.rules.base import FeedbackLayout, FeedbackRule
from jdfa.rules.pieces import backprop, direct, stack
from jdfa.validate import check_int


@dataclasses.dataclass(frozen=True)
class FP(FeedbackRule):
    """Feedback Propagation: BP through the top ``bp_depth`` layers, DFA from its lowest delta below.

    Feedback: ``hidden`` holds the ``B_i`` of layers ``1 .. depth - bp_depth``, bottom-up, each
    reading the lowest BP layer's delta. With ``bp_depth = 0`` there is no BP layer: the lower
    layers read ``e``, so their ``B_i`` sit in ``output`` as DFA's do (``fp(0) == dfa``, one
    feedback for both).
    """

    name: ClassVar[str] = "fp"
    bp_depth: int = 1

    def __post_init__(self):
        super().__post_init__()
        check_int("bp_depth", self.bp_depth, 0)

    @property
    def _reads_error(self) -> bool:
        return self.bp_depth == 0

    def check(self, net):
        if self.bp_depth > net.depth:
            raise ValueError(f"bp_depth must lie in [0, depth={net.depth}], got {self.bp_depth}")

    def feedback_layout(self, net):
        self.check(net)
        n = net.depth - self.bp_depth
        return FeedbackLayout(n, 0) if self._reads_error else FeedbackLayout(0, n)

    def deltas(self, net, params, feedback, trace, e):
        fprime, n_dfa = self.feedback_fprime(trace), net.depth - self.bp_depth
        if self._reads_error:
            return direct(feedback.output, e, fprime)
        bp_part = backprop(params, trace.fprime, e, self.bp_depth)
        return stack(direct(feedback.hidden, bp_part[0], fprime[:n_dfa]), bp_part)

    @classmethod
    def spec_fields(cls, number, suffix):
        if suffix:
            raise ValueError(f"rule spec 'fp' takes no suffix, got {suffix!r}")
        return {} if number is None else {"bp_depth": number}

    @property
    def spec(self):
        return f"fp{self.bp_depth}"
