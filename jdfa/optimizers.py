"""The optimizer of a run, by name: the one factory of the driver, the experiments and the
benchmarks.

`Optimizer` is a frozen description (``name``, ``lr``, ``schedule``, ``weight_decay``);
`Optimizer.build` turns it into an optax `GradientTransformation`. Weight decay is decoupled
(Loshchilov & Hutter: ``-lr_t * weight_decay * W`` added after the optimizer's own step, so Adam's
per-parameter scaling does not shrink it), as optax's own ``adamw`` chains it
(`optax.add_decayed_weights` between the optimizer's direction and the learning rate). It applies
to the weights the net marks (`jdfa.net.Net.weight_mask`: kernels, never biases or norm scales) and
is given only through ``weight_decay``: ``adamw`` is Adam with that decay, never a hidden default.
"""

from __future__ import annotations

import dataclasses

import optax

from jdfa.validate import check_choice, check_int, check_positive

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer by name.

    Attributes:
      name: one of `OPTIMIZERS`: ``sgd``, ``momentum`` (SGD with momentum 0.9), ``adam``, ``adamw``
        (the same as ``adam``: decay comes only from ``weight_decay``), ``rmsprop``.
      lr: the (peak) learning rate.
      schedule: ``constant`` or ``cosine`` (decay to 0 over the run's steps).
      weight_decay: decoupled decay of the weight matrices (biases are never decayed); 0 is none.
    """

    name: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    weight_decay: float = 0.0

    def __post_init__(self):
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)

    def build(self, steps: int, lr_scale: float = 1.0, weight_mask=None) -> optax.GradientTransformation:
        """The optax transformation at ``lr_scale`` times ``lr``; ``steps`` is the length of the
        cosine schedule; ``weight_mask`` (the net's `jdfa.net.Net.weight_mask`) is what decay
        touches."""
        return self.transform(steps, self.lr * lr_scale, self.weight_decay, weight_mask)

    def transform(self, steps: int, lr, weight_decay, weight_mask=None) -> optax.GradientTransformation:
        """`build` with the learning rate and decay given: floats, or traced () arrays (one run of
        a vmapped sweep, `jdfa.sweep`). Whether decay is chained at all is decided by this
        optimizer's ``weight_decay`` (the state's structure), not by the value given.

        Raises ``ValueError`` when this optimizer decays but no ``weight_mask`` says what to decay.
        """
        check_int("steps", steps, 1)
        lr = optax.cosine_decay_schedule(lr, steps) if self.schedule == "cosine" else lr
        if self.weight_decay == 0:
            return {
                "sgd": lambda: optax.sgd(lr),
                "momentum": lambda: optax.sgd(lr, momentum=0.9),
                "adam": lambda: optax.adam(lr),
                "adamw": lambda: optax.adam(lr),
                "rmsprop": lambda: optax.rmsprop(lr),
            }[self.name]()
        if weight_mask is None:
            raise ValueError("weight decay needs the net's weight mask: build(steps, weight_mask="
                             "net.weight_mask), so that no bias or norm scale is decayed")
        # The direction each optax optimizer scales by its learning rate, with the decay added in
        # between, as optax.adamw does: -lr_t * (direction + weight_decay * W).
        direction = {"sgd": [], "momentum": [optax.trace(decay=0.9)], "adam": [optax.scale_by_adam()],
                     "adamw": [optax.scale_by_adam()], "rmsprop": [optax.scale_by_rms()]}[self.name]
        return optax.chain(*direction, optax.add_decayed_weights(weight_decay, weight_mask),
                           optax.scale_by_learning_rate(lr))
