"""The learning rules: how each rule forms the delta of every hidden layer.

All rules share one forward pass (`jdfa.model.forward`) and one weight-gradient contraction
(`jdfa.update.weight_update`); they differ only here, in how ``delta_i`` is formed. The output layer
always gets ``e = dLoss/da_y``. Hidden layers are indexed ``i = 1 .. depth`` from the input side;
``W_{depth+1}`` is the output layer's weight. In the papers' column-vector notation:

* ``bp``:  ``delta_i = (W_{i+1}^T delta_{i+1}) * f'(a_i)``                  (exact gradient)
* ``fa``:  ``delta_i = (B_i delta_{i+1}) * f'(a_i)``, ``B_depth`` (width, out), others (width, width)
* ``dfa``: ``delta_i = (B_i e) * f'(a_i)``, every ``B_i`` (width, out)
* ``fp(k)``: the top ``k`` layers get BP deltas; a lower layer ``i`` gets ``(B_i delta_j) * f'(a_i)``
  where ``j = depth - k + 1`` is the lowest BP layer. ``fp(0) == dfa``, ``fp(depth) == bp``.
* ``bdfa(K, "direct")``: layers cut into blocks of ``K`` from the output side (the input-side block
  may be smaller); the top block is DFA from ``e``; a layer of a lower block gets ``(B_i s) * f'(a_i)``
  where ``s`` is the delta of the lowest layer of the block above. This is the paper's text: "each
  subsequent block of DFA trained layers takes its delta from the last layer of the preceding block".
* ``bdfa(K, "backprop")``: the top layer of each block gets the true BP step through ``W^T`` from the
  layer just above it (for the top block, the output layer); the other layers of the block get
  ``(B_i t) * f'(a_i)`` from that top delta ``t``. The paper's figure 5 can be read this way: the
  gradient "passed through between blocks" crosses each boundary through the forward weights.
* ``mix(p_bp, per)``: each hidden layer takes a BP step (from the delta the layer above got) with
  probability ``p_bp``, else a DFA step; drawn per training step or per layer and step, inside the
  jitted step (the paper's future-work question 3). ``mix(p_bp=0) == dfa``, ``mix(p_bp=1) == bp``.
* ``shallow``: no hidden deltas; only the output layer learns (the control).

Every feedback rule takes ``use_derivative=False`` to drop ``f'(a_i)`` from its feedback deltas
(Blocked-DFA paper, future-work question 1); BP deltas inside ``fp`` and ``bdfa(..., "backprop")``
keep it, since they are exact gradients.

Parallelism: DFA's deltas come from one einsum over the layer axis. BDFA is sequential only over
blocks (a `lax.scan` of ``depth / K`` steps, each one batched einsum over the block's layers); with
``"direct"`` no forward weight is on that path. FP is a short BP chain over the top ``k`` layers, then
one batched DFA-like einsum for the rest. BP and FA are the sequential baselines (a scan over layers).

A rule is defined once, by its `Rule.plan`: a `Source` per layer that says where its delta comes
from (``e`` or another layer's delta through ``B``, the layer above's true or random-weight step, or
a draw between BP and DFA). On nets whose layers differ in shape (`jdfa.blocks`: conv nets, your
own Flax layers) the plan runs block by block (`jdfa.chain`); on `jdfa.MLP` `stacked` compiles it
to the stacked ops above, so the step stays flat in depth.

Modules: `base` (what a rule is, the registry, `parse`), `stacked` (a plan as stacked ops),
`pieces` (`direct`, `chain`, `stack`: what those ops are made of), `classic` (bp, fa, dfa,
shallow), `propagation` (fp), `blocked` (bdfa), `switching` (mix). Rules that change from step
to step read the step's `StepContext`.
Adding a rule is one subclass of `Rule` (or `FeedbackRule`), anywhere: README, "Adding a rule".

Shapes: ``N`` is the batch size, ``L`` a number of stacked layers.
"""

from __future__ import annotations

from jdfa.rules.base import (
    FEEDBACK_INITS,
    RULES,
    FeedbackLayout,
    FeedbackRule,
    Rule,
    Source,
    StepContext,
    from_dict,
    parse,
)
from jdfa.rules.blocked import BDFA, BOUNDARIES
from jdfa.rules.classic import BP, DFA, FA, Shallow
from jdfa.rules.pieces import chain, direct, stack
from jdfa.rules.propagation import FP, SOURCES
from jdfa.rules.switching import PER, Mix

__all__ = [
    "BDFA", "BOUNDARIES", "BP", "DFA", "FA", "FEEDBACK_INITS", "FP", "PER", "RULES", "SOURCES",
    "FeedbackLayout", "FeedbackRule", "Mix", "Rule", "Shallow", "Source", "StepContext", "bdfa",
    "bp", "chain", "dfa", "direct", "fa", "fp", "from_dict", "mix", "parse", "shallow", "stack",
]


def bp() -> BP:
    """Backpropagation: the exact gradient of the batch-mean loss."""
    return BP()


def fa(**options) -> FA:
    """Feedback Alignment; options are `FeedbackRule`'s (``use_derivative``, ``feedback_init``,
    ``feedback_scale``, ``shared_feedback``)."""
    return FA(**options)


def dfa(**options) -> DFA:
    """Direct Feedback Alignment; options are `FeedbackRule`'s."""
    return DFA(**options)


def fp(bp_depth: int, source: str = "delta", **options) -> FP:
    """Feedback Propagation with the top ``bp_depth`` hidden layers trained by BP; the layers below
    read the lowest BP layer's delta (``source="delta"``, the paper's FP) or the output error
    (``"error"``, the paper's proposed follow-up); see `FP`."""
    return FP(bp_depth, source, **options)


def bdfa(block_size: int, boundary: str = "direct", **options) -> BDFA:
    """Blocked DFA with blocks of ``block_size`` layers; see `BDFA` for ``boundary``."""
    return BDFA(block_size, boundary, **options)


def mix(p_bp: float = 0.5, per: str = "step", bp_steps: int = 0, **options) -> Mix:
    """BP or DFA drawn per training step (``per="step"``) or per layer and step (``"layer"``),
    BP with probability ``p_bp``, after ``bp_steps`` steps of BP; see `Mix`."""
    return Mix(p_bp=p_bp, per=per, bp_steps=bp_steps, **options)


def shallow() -> Shallow:
    """Only the output layer learns (the control)."""
    return Shallow()
