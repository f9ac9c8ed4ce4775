"""Saving checkpoints as a periodic action (`jdfa.checkpoint.Checkpoints` does the writing)."""

from __future__ import annotations

from jdfa.checkpoint import Checkpoints
from jdfa.driver.periodic import Periodic


class SaveCheckpoint(Periodic):
    """Saves the state and the numbers ``meta()`` every ``every`` steps (0: only at the end) and
    after the last step."""

    def __init__(self, every: int, checkpoints: Checkpoints, meta):
        super().__init__(every, at_end=True)
        self.checkpoints, self.meta = checkpoints, meta

    def __call__(self, step, state, record):
        self.checkpoints.save(state, self.meta())
