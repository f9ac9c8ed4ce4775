"""Per-layer alignment of the rule's update with the BP gradient (`jdfa.align`), as a periodic
action on a fixed batch."""

from __future__ import annotations

import jax
import numpy as np

from jdfa.alignment import align
from jdfa.driver.periodic import Periodic
from jdfa.step import step_context


class MeasureAlignment(Periodic):
    """Adds ``alignment_angle`` (degrees) and ``alignment_norm_ratio`` per layer, output last."""

    def __init__(self, every: int, net, rule, x, y, batch_mode: str):
        super().__init__(every)
        self.fn = jax.jit(lambda s: align(net, rule, s.params, s.feedback, x, y, batch_mode,
                                          step_context(s)))

    def __call__(self, step, state, record):
        al = self.fn(state)
        record["alignment_angle"] = np.asarray(al.angle).round(3).tolist()
        record["alignment_norm_ratio"] = np.asarray(al.norm_ratio).round(5).tolist()
