"""Side tasks of the training loop as periodic actions (in the manner of jaxline): each says when
it is due and adds to, or acts on, the record of the steps just run."""

from __future__ import annotations


class Periodic:
    """An action due every ``every`` steps (0: never by period) and, with ``at_end``, after the
    last step. The loop stops its jitted chunk of steps wherever some action is due."""

    def __init__(self, every: int, at_end: bool = False):
        self.every, self.at_end = every, at_end

    def due(self, step: int, last: bool) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and last)

    def __call__(self, step: int, state, record: dict) -> None:
        raise NotImplementedError


def next_stop(step: int, steps: int, actions) -> int:
    """The first step after ``step`` (at most ``steps``) at which an action is due by period."""
    return min([steps] + [(step // a.every + 1) * a.every for a in actions if a.every])
