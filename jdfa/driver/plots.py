"""The run's figure: loss, accuracy and (if measured) per-layer alignment angle against step."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(records: list[dict], path: Path, title: str = "") -> None:
    """Loss, accuracy and (if measured) per-layer alignment angle against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if "loss" in r]
    aligned = [r for r in records if "alignment_angle" in r]
    fig, axes = plt.subplots(1, 3 if aligned else 2, figsize=(15 if aligned else 10, 4))
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records], label="train loss (batch mean)")
    ev = [r for r in records if "test_loss" in r]
    axes[0].plot([r["step"] for r in ev], [r["test_loss"] for r in ev], label="test loss")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].legend()
    for key in ("train_accuracy", "test_accuracy"):
        axes[1].plot([r["step"] for r in ev], [r[key] for r in ev], marker=".", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("accuracy")
    axes[1].legend()
    if aligned:
        angles = np.array([r["alignment_angle"] for r in aligned])
        cmap = plt.get_cmap("viridis")
        for i in range(angles.shape[1]):
            color = cmap(i / max(angles.shape[1] - 1, 1))
            axes[2].plot([r["step"] for r in aligned], angles[:, i], color=color, lw=1)
        axes[2].set_xlabel("step")
        axes[2].set_ylabel("angle to BP update (deg), layer 1 (dark) .. output (light)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
