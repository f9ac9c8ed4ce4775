"""The progress bar (tqdm, on stderr): steps done, steps/s, ETA, the running loss and the latest
accuracies. It moves after every chunk (about half a second), not only at evaluations; the loop's
messages go through `say`, above the bar, never into it."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """Prints ``message`` on stderr on a line of its own above any progress bar (tqdm's write)."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


class Progress:
    """Advances by the steps of each chunk; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                        dynamic_ncols=True)
        self.loss = None

    def update(self, steps: int, loss: float | None, last: dict) -> None:
        """Advances by ``steps``, showing the running ``loss`` (None: no step since the last
        record, so the loss shown stays) and the ``last`` evaluation's accuracies (called again
        after each evaluation, so the bar shows the newest one)."""
        self.bar.update(steps)
        self.loss = self.loss if loss is None else loss
        shown = {} if self.loss is None else {"loss": f"{self.loss:.4f}"}
        self.bar.set_postfix(**shown, **{
            k: f"{last[k]:.4f}" for k in ("train_accuracy", "test_accuracy") if k in last})

    def advance(self, steps: int) -> None:
        """Counts steps done before this session (a resume), or, negative, steps undone (a
        rollback)."""
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
