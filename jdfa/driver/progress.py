"""The progress bar (tqdm): steps done, the batch loss and the last accuracies."""

from __future__ import annotations


class Progress:
    """Advances by the steps of each chunk; ``enabled=False`` shows nothing."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                        dynamic_ncols=True)

    def update(self, steps: int, record: dict, last: dict) -> None:
        self.bar.update(steps)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", **{
            k: f"{last[k]:.4f}" for k in ("train_accuracy", "test_accuracy") if k in last})

    def reset_to(self, step: int) -> None:
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
