"""A run's interval: the running sums of the steps since its last record, and its wall time."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

META = ("loss_sum", "accuracy_sum", "interval_steps", "wall_s")  # an interval, saved beside a checkpoint


class Interval:
    """The running sums of the steps since the last record, and the run's wall time (continuing
    across resumes). Saved beside each checkpoint (`meta`), so a resumed interval is whole."""

    def __init__(self, meta: dict):
        self.load(meta)
        self.norms, self.max_norms = (0.0, []), None
        self.start, self.wall_offset, self.session_steps = time.perf_counter(), meta["wall_s"], 0

    def load(self, meta: dict) -> None:
        """Takes the sums saved beside a checkpoint (`meta`)."""
        self.loss_sum, self.accuracy_sum = meta["loss_sum"], meta["accuracy_sum"]
        self.steps = int(meta["interval_steps"])

    def sums(self) -> tuple[jax.Array, jax.Array]:
        """The running sums, as the chunk continues them (float32, one step at a time)."""
        return jnp.float32(self.loss_sum), jnp.float32(self.accuracy_sum)

    def add(self, cm) -> None:
        self.loss_sum, self.accuracy_sum = float(cm.loss_sum), float(cm.accuracy_sum)
        self.steps += int(cm.steps)
        self.session_steps += int(cm.steps)
        if int(cm.steps):
            self.norms = (float(cm.update_norm), [float(v) for v in cm.layer_update_norms])
            most = np.asarray(cm.layer_update_max)
            self.max_norms = most if self.max_norms is None else np.maximum(self.max_norms, most)

    def never_updated(self) -> list[int]:
        """The layers (1-based) whose update was exactly zero at every good step since the last
        record (before any step: none)."""
        return [] if self.max_norms is None else [int(i) + 1 for i in np.flatnonzero(self.max_norms == 0)]

    def loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    def wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self.start

    def steps_per_s(self) -> float:
        return round(self.session_steps / max(time.perf_counter() - self.start, 1e-9), 2)

    def meta(self) -> dict:
        return {"loss_sum": self.loss_sum, "accuracy_sum": self.accuracy_sum,
                "interval_steps": self.steps, "wall_s": self.wall()}

    def record(self, step: int) -> dict:
        """The record of the interval ending at ``step``; the sums start over."""
        n = max(self.steps, 1)
        record = {"step": step, "wall_s": round(self.wall(), 3), "steps_per_s": self.steps_per_s(),
                  "loss": _round(self.loss_sum / n), "batch_accuracy": _round(self.accuracy_sum / n),
                  "update_norm": _round(self.norms[0]),
                  "layer_update_norms": [_round(v) for v in self.norms[1]]}
        self.loss_sum = self.accuracy_sum = 0.0
        self.steps, self.max_norms = 0, None
        return record


def _round(value) -> float:
    return round(float(value), 6)
