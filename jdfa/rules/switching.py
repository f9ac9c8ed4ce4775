"""Switching between BP and DFA during training (the Blocked-DFA paper's future-work question 3:
"non-deterministically across layers and/or entire training steps")."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jdfa.options import option
from jdfa.rules.base import FeedbackRule, Source
from jdfa.validate import check_choice, check_int

PER = ("step", "layer")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mix(FeedbackRule):
    """Each hidden layer takes a BP step with probability ``p_bp``, else a DFA step.

    A BP step is ``delta_i = (W_{i+1}^T delta_{i+1}) * f'(a_i)`` from the delta the layer above
    actually got, whatever rule formed it (the top layer reads ``e`` through the output weights); a
    DFA step is ``(B_i e) * f'(a_i)``. So a run of BP layers under the top is exact BP, and a BP
    layer under a DFA layer passes DFA's signal down through ``W^T``. (The other reading, mixing
    each layer's exact gradient with its DFA delta, differs only for ``per="layer"``; it is not
    offered: it would cost a full BP pass for every layer that chose DFA.)

    Attributes:
      p_bp: probability of a BP step; ``mix(p_bp=0) == dfa``, ``mix(p_bp=1) == bp``.
      per: ``"step"`` draws one choice per training step for all layers; ``"layer"`` one per layer
        and step. The draw is a traced `jax.random.uniform` from the step's key
        (`jdfa.rules.StepContext`), so it happens inside the jitted step, not in Python.
      bp_steps: a deterministic schedule in front of the draws: the first ``bp_steps`` training
        steps are BP for every layer (``mix(p_bp=0, bp_steps=N)``: BP for N steps, then DFA).

    Feedback: DFA's, ``output`` holds every layer's ``B_i`` bottom-up. Both deltas are formed and
    one is selected (a select, not a branch, so vmapped sweeps pay the same): a step costs about
    a DFA step plus a BP backward chain.
    """

    name: ClassVar[str] = "mix"
    p_bp: float = option(0.5, "mix: probability that a layer takes a BP step instead of a DFA step "
                         "(default 0.5)")
    per: str = option("step", "mix: draw BP or DFA once per step for all layers, or per layer and step",
                      choices=PER)
    bp_steps: int = option(0, "mix: the first N steps are BP for every layer, then the draws (0: none)")

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.p_bp <= 1.0:
            raise ValueError(f"p_bp is a probability and must lie in [0, 1], got {self.p_bp}")
        check_choice("per", self.per, PER)
        check_int("bp_steps", self.bp_steps, 0)

    @classmethod
    def spec_fields(cls, number, suffix):
        if suffix not in ("", "-step", "-layer"):
            raise ValueError(f"rule spec 'mix' takes the suffix -step or -layer, got {suffix!r}")
        fields = {} if number is None else {"p_bp": number / 100}  # mix25-layer: p_bp 0.25, per layer
        return {**fields, "per": suffix[1:]} if suffix else fields

    @property
    def spec(self) -> str:
        """``"mix50"``, ``"mix25-layer"``: ``p_bp`` in percent and ``per``. A mix that a spec cannot
        name (``bp_steps``, or ``p_bp`` not in whole percent) is ``"mix"``: its fields are in
        `to_dict`."""
        percent = 100 * self.p_bp
        if self.bp_steps or abs(percent - round(percent)) > 1e-9:
            return self.name
        return f"mix{round(percent)}" + ("-layer" if self.per == "layer" else "")

    def plan(self, depth):
        return (Source("mix"),) * depth

    def draws(self, depth, context):
        if context is None:
            raise ValueError("mix draws BP or DFA anew at every training step, so its deltas need "
                             "the step: pass context=jdfa.rules.StepContext(index, key) (the "
                             "train step passes one)")
        draws = jax.random.uniform(context.key, (1 if self.per == "step" else depth,))
        return jnp.broadcast_to((draws < self.p_bp) | (context.index < self.bp_steps), (depth,))
