"""Per-layer alignment of the rule's update with the BP gradient (`jdfa.align`), as a periodic
action on a fixed batch."""

from __future__ import annotations

import jax
import numpy as np

from jdfa.alignment import align
from jdfa.driver.periodic import Periodic


class MeasureAlignment(Periodic):
    """Adds ``alignment_angle`` (degrees) and ``alignment_norm_ratio`` per layer, output last."""

    def __init__(self, every: int, net, rule, x, y, batch_mode: str):
        super().__init__(every)
        self.fn = jax.jit(lambda p, f: align(net, rule, p, f, x, y, batch_mode))

    def __call__(self, step, state, record):
        al = self.fn(state.params, state.feedback)
        record["alignment_angle"] = np.asarray(al.angle).round(3).tolist()
        record["alignment_norm_ratio"] = np.asarray(al.norm_ratio).round(5).tolist()
