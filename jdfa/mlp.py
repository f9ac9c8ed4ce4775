"""`jdfa.MLP`: the deep fully connected net of the papers, as a `jdfa.net.Net`.

Its arithmetic lives in `jdfa.model` (parameters, the scanned forward pass), `jdfa.feedback` (the
stacked feedback matrices) and `jdfa.update` (the rule's stacked deltas and one batched weight
contraction); this class is where the net protocol reaches them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax

from jdfa import feedback as feedback_module
from jdfa import model, update
from jdfa.activations import ACTIVATIONS
from jdfa.losses import LOSSES
from jdfa.model import WEIGHT_INITS, Dense, Params
from jdfa.net import Net, classes_in
from jdfa.options import option
from jdfa.validate import check_choice, check_int


@dataclasses.dataclass(frozen=True)
class MLP(Net):
    """A fully connected net: ``in_features -> width`` then ``depth - 1`` times ``width -> width``
    then ``width -> out_features``.

    ``depth`` is the number of hidden layers: Nøkland's "7x240" is ``depth=7, width=240``, the
    Blocked-DFA paper's "100 layers, 200 hidden units" is ``depth=100, width=200`` and the PyTorch
    report's 784-80-10 is ``depth=1, width=80``.

    Attributes:
      activation: hidden non-linearity, one of `ACTIVATIONS`. Its derivative comes from JAX.
      loss: output non-linearity and loss, one of `LOSSES`:
        ``softmax_cross_entropy`` (softmax output), ``sigmoid_binary_cross_entropy`` (sigmoid
        output, BCE summed over outputs -- Nøkland's recipe), ``mse`` (identity output, 1/2 squared
        error, so ``e = y_hat - y``), ``sigmoid_mse`` (sigmoid output, 1/2 squared error).
      weight_init: ``uniform`` = ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as in Nøkland's code
        (variance ``1/(3 fan_in)``: a deep tanh stack shrinks its signal layer by layer),
        ``lecun_normal`` = ``N(0, 1/fan_in)`` and ``he_normal`` = ``N(0, 2/fan_in)`` (untruncated,
        variance-preserving for tanh and relu), ``glorot_uniform``, ``orthogonal`` (scaled by the
        activation's usual gain), or ``zeros`` (DFA can train from zero weights, BP cannot).
      dropout: the probability of dropping each hidden unit in a training step (inverted dropout:
        kept units are scaled by ``1 / (1 - dropout)``); 0 (the default) never drops. The forward
        pass drops only when given a key (the train step passes one per step); evaluation and
        `apply` never drop. Every rule supports it: the mask enters the trace's ``fprime``, so a
        dropped unit gets a zero delta and BP stays the exact gradient of the thinned net.

    The dataclass is frozen and hashable, so it is a static argument of jitted functions. It
    answers the `jdfa.net.Net` protocol with its own fast path: one scan forward, the rule's
    stacked deltas (`jdfa.rules.Rule.deltas`) and one batched weight contraction
    (`jdfa.update`).
    """

    flag: ClassVar[str | None] = "mlp"

    in_features: int
    width: int = option(help="hidden units per layer (default 256)")
    depth: int = option(help="number of hidden layers (default 2)")
    out_features: int
    activation: str = option("tanh", "hidden non-linearity", choices=tuple(ACTIVATIONS))
    loss: str = option("softmax_cross_entropy", "output non-linearity and loss", choices=tuple(LOSSES))
    weight_init: str = option("uniform", "initialisation of the forward weights", choices=WEIGHT_INITS)
    dropout: float = option(0.0, "probability of dropping a hidden unit in training (0: none; never at "
                                 "evaluation)")

    def __post_init__(self):
        check_int("in_features", self.in_features, 1)
        check_int("width", self.width, 1)
        check_int("depth", self.depth, 1)
        check_int("out_features", self.out_features, 1)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("weight_init", self.weight_init, WEIGHT_INITS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is the probability of dropping a hidden unit and must lie in "
                             f"[0, 1), got {self.dropout}")

    @property
    def f(self) -> Callable[[jax.Array], jax.Array]:
        return ACTIVATIONS[self.activation]

    # --- the net protocol (`jdfa.net.Net`) ----------------------------------------------------------
    def init_params(self, key):
        return model.init_params(key, self)

    def init_feedback(self, key, rule):
        return feedback_module.init_feedback(key, self, rule)

    def apply(self, params, x):
        return model.apply(self, params, x)

    def compute_update(self, rule, params, feedback, x, y, batch_mode="mean", remat=False, context=None,
                       dropout=True):
        return update.compute_update(self, rule, params, feedback, x, y, batch_mode, remat, context,
                                     dropout)

    def layer_dots(self, u, v):
        return model.layer_dots(u, v)

    def measured_apply(self, params, x):
        return model.measured_apply(self, params, x)

    def weight_mask(self, params):
        del params  # every layer is a Dense: its w decays, its b does not
        return Params(*(Dense(True, False) for _ in Params._fields))

    def layer_axis_mask(self, params):
        del params
        return Params(Dense(False, False), Dense(True, True), Dense(False, False))

    def feedback_layer_axis_mask(self, feedback):
        del feedback
        return feedback_module.Feedback(True, True)

    def check_inputs(self, x, y=None):
        model.check_inputs(self, x, y)

    def check_params(self, params):
        model.check_params(self, params)

    def check_feedback(self, rule, feedback):
        feedback_module.check_feedback(self, rule, feedback)

    def check_run(self, rule, batch_mode="mean", remat=False, devices=1):
        update.check_run(self, rule, batch_mode, remat)

    @classmethod
    def for_data(cls, data, vocab=None, width=256, depth=2, **fields):
        del vocab  # features, not tokens
        (x, _), _ = data
        out = classes_in(data, fields.get("loss", cls.loss))
        return cls(in_features=x.shape[1], width=width, depth=depth, out_features=out, **fields)

    def to_dict(self):
        return dataclasses.asdict(self)  # no "model" key: `jdfa.net.from_dict`'s default

    def describe(self):
        return f"depth {self.depth}, width {self.width}, {self.activation}, {self.weight_init} init"
