"""The optimizer of a run, by name: the one factory of the driver, the experiments and the
benchmarks.

`Optimizer` is a frozen description (``name``, ``lr``, ``schedule``, ``weight_decay``);
`Optimizer.build` turns it into an optax `GradientTransformation`. Weight decay is decoupled
(Loshchilov & Hutter: ``-lr_t * weight_decay * W`` added after the optimizer's own step, so Adam's
per-parameter scaling does not shrink it), applies to weight matrices only (chosen by type: the
``w`` of every `jdfa.model.Dense`), and is given only through ``weight_decay``: ``adamw`` is
Adam with that decay, never a hidden default.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jdfa.model import Dense
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

    def build(self, steps: int, lr_scale: float = 1.0) -> optax.GradientTransformation:
        """The optax transformation at ``lr_scale`` times ``lr``; ``steps`` is the length of the
        cosine schedule."""
        return self.transform(steps, self.lr * lr_scale, self.weight_decay)

    def transform(self, steps: int, lr, weight_decay) -> optax.GradientTransformation:
        """`build` with the learning rate and decay given: floats, or traced () arrays (one run of
        a vmapped sweep, `jdfa.sweep`). Whether decay is chained at all is decided by this
        optimizer's ``weight_decay`` (the state's structure), not by the value given."""
        check_int("steps", steps, 1)
        lr = optax.cosine_decay_schedule(lr, steps) if self.schedule == "cosine" else lr
        optimizer = {
            "sgd": lambda: optax.sgd(lr),
            "momentum": lambda: optax.sgd(lr, momentum=0.9),
            "adam": lambda: optax.adam(lr),
            "adamw": lambda: optax.adam(lr),
            "rmsprop": lambda: optax.rmsprop(lr),
        }[self.name]()
        if self.weight_decay == 0:
            return optimizer
        return optax.chain(optimizer, decoupled_weight_decay(weight_decay, lr))


def weight_mask(params):
    """A tree of bools shaped like ``params``: True for the weight matrix of every `Dense`."""
    return jax.tree.map(lambda _: Dense(True, False), params, is_leaf=lambda n: isinstance(n, Dense))


def decoupled_weight_decay(weight_decay: float, lr) -> optax.GradientTransformation:
    """Adds ``-lr_t * weight_decay * W`` to the update of every weight matrix (`weight_mask`),
    ``lr_t`` following ``lr`` (a float or an optax schedule)."""

    def init(params):
        del params
        return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params):
        rate = lr(state.count) if callable(lr) else lr
        updates = jax.tree.map(lambda u, p, m: u - rate * weight_decay * p if m else u,
                               updates, params, weight_mask(params))
        return updates, optax.ScaleByScheduleState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)
