"""Backpropagation, Feedback Alignment, Direct Feedback Alignment and the shallow control."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jdfa.rules.base import FeedbackRule, Rule, Source


@dataclasses.dataclass(frozen=True)
class BP(Rule):
    """Backpropagation: the exact gradient of the batch-mean loss."""

    name: ClassVar[str] = "bp"

    def plan(self, depth):
        return (Source("backprop"),) * depth


@dataclasses.dataclass(frozen=True)
class FA(FeedbackRule):
    """Feedback Alignment (Lillicrap et al.): BP's chain with fixed random ``B`` for ``W^T``.

    Feedback: ``output`` holds ``B_depth`` (1 matrix), ``hidden`` the ``B_i`` of layers
    ``1 .. depth-1``, bottom-up (``B_i`` maps layer ``i + 1``'s delta to layer ``i``).
    """

    name: ClassVar[str] = "fa"

    def plan(self, depth):
        return (Source("fa"),) * depth


@dataclasses.dataclass(frozen=True)
class DFA(FeedbackRule):
    """Direct Feedback Alignment (Nøkland 2016): every hidden layer gets ``(B_i e) * f'(a_i)``.

    Feedback: ``output`` holds every layer's ``B_i``, bottom-up; ``hidden`` is empty.
    """

    name: ClassVar[str] = "dfa"

    def plan(self, depth):
        return (Source("error"),) * depth


@dataclasses.dataclass(frozen=True)
class Shallow(Rule):
    """The control: hidden layers stay at their initial values, only the output layer learns."""

    name: ClassVar[str] = "shallow"

    def plan(self, depth):
        return None
