"""The optimizer of a run, by name: the one factory of the driver, the experiments and the
benchmarks.

`Optimizer` is a frozen description (``name``, ``lr``, ``schedule``, ``warmup_steps``,
``weight_decay``, ``clip_norm``, ``eps``); `Optimizer.build` turns it into an optax
`GradientTransformation` made of optax's own pieces: ``optax.clip_by_global_norm`` first (it clips
the rule's update direction, which for BP is the gradient, before the optimizer's statistics see
it), the optimizer, and a schedule from ``optax.warmup_cosine_decay_schedule`` or a linear warmup
joined to a constant. Weight decay is decoupled
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
      schedule: ``constant`` or ``cosine`` (decay to 0 over the run's steps, warmup included,
        as ``optax.warmup_cosine_decay_schedule`` counts them).
      warmup_steps: the learning rate rises linearly from 0 to ``lr`` over this many steps (the
        first step takes lr 0, as optax's schedules start), then follows ``schedule``; 0 is none.
      weight_decay: decoupled decay of the weight matrices (biases are never decayed); 0 is none.
      clip_norm: the update direction is scaled down to this global L2 norm (over every parameter)
        when it is longer (``optax.clip_by_global_norm``); 0 is none. LightOn's DFA transformers
        clip at 0.5.
      eps: the denominator's epsilon of ``adam``, ``adamw`` and ``rmsprop`` (optax's default
        1e-8; LightOn's transformers use 1e-9); not read by ``sgd`` and ``momentum``.
    """

    name: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    weight_decay: float = 0.0
    warmup_steps: int = 0
    clip_norm: float = 0.0
    eps: float = 1e-8

    def __post_init__(self):
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_positive("clip_norm", self.clip_norm, allow_zero=True)
        check_positive("eps", self.eps)

    def build(self, steps: int, lr_scale: float = 1.0, weight_mask=None) -> optax.GradientTransformation:
        """The optax transformation at ``lr_scale`` times ``lr``; ``steps`` is the length of the
        cosine schedule; ``weight_mask`` (the net's `jdfa.net.Net.weight_mask`) is what decay
        touches."""
        return self.transform(steps, self.lr * lr_scale, self.weight_decay, weight_mask)

    def transform(self, steps: int, lr, weight_decay, weight_mask=None) -> optax.GradientTransformation:
        """`build` with the learning rate and decay given: floats, or traced () arrays (one run of
        a vmapped sweep, `jdfa.sweep`). Whether decay is chained at all is decided by this
        optimizer's ``weight_decay`` (the state's structure), not by the value given.

        Raises ``ValueError`` when this optimizer decays but no ``weight_mask`` says what to decay,
        or when the warmup does not fit in ``steps``.
        """
        check_int("steps", steps, 1)
        if self.warmup_steps >= steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be fewer than the run's {steps} "
                             "steps: the learning rate would never reach its peak")
        step = self._step(self.schedule_of(steps, lr), weight_decay, weight_mask)
        # Without clipping the state keeps the structure it had before clipping existed, so older
        # checkpoints still restore.
        return optax.chain(optax.clip_by_global_norm(self.clip_norm), step) if self.clip_norm > 0 else step

    def schedule_of(self, steps: int, lr):
        """The learning rate at each step, an optax schedule (or ``lr`` itself when constant)."""
        if self.warmup_steps == 0:
            return optax.cosine_decay_schedule(lr, steps) if self.schedule == "cosine" else lr
        # optax.warmup_cosine_decay_schedule would branch in Python on the peak, which is traced
        # in a sweep's run (and in every chunk); its two pieces joined are the same schedule.
        after = (optax.cosine_decay_schedule(lr, steps - self.warmup_steps) if self.schedule == "cosine"
                 else optax.constant_schedule(lr))
        return optax.join_schedules([optax.linear_schedule(0.0, lr, self.warmup_steps), after],
                                    [self.warmup_steps])

    def _step(self, lr, weight_decay, weight_mask) -> optax.GradientTransformation:
        if self.weight_decay == 0:
            return {
                "sgd": lambda: optax.sgd(lr),
                "momentum": lambda: optax.sgd(lr, momentum=0.9),
                "adam": lambda: optax.adam(lr, eps=self.eps),
                "adamw": lambda: optax.adam(lr, eps=self.eps),
                "rmsprop": lambda: optax.rmsprop(lr, eps=self.eps),
            }[self.name]()
        if weight_mask is None:
            raise ValueError("weight decay needs the net's weight mask: build(steps, weight_mask="
                             "net.weight_mask), so that no bias or norm scale is decayed")
        # The direction each optax optimizer scales by its learning rate, with the decay added in
        # between, as optax.adamw does: -lr_t * (direction + weight_decay * W).
        adam = [optax.scale_by_adam(eps=self.eps)]
        direction = {"sgd": [], "momentum": [optax.trace(decay=0.9)], "adam": adam, "adamw": adam,
                     "rmsprop": [optax.scale_by_rms(eps=self.eps)]}[self.name]
        return optax.chain(*direction, optax.add_decayed_weights(weight_decay, weight_mask),
                           optax.scale_by_learning_rate(lr))
