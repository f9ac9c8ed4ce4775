"""The run's figure: loss, accuracy and (if measured) per-layer alignment angle and the feedback
points' norms against step.

Drawn on a `matplotlib.figure.Figure` of its own, never through pyplot: a script's or notebook's
backend and open figures are left as they were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(records: list[dict], path: Path, title: str = "") -> None:
    """`curves_figure` as a PNG."""
    curves_figure(records, title).savefig(path, dpi=100)


def curves_figure(records: list[dict], title: str = ""):
    """Loss, accuracy and (if measured) per-layer alignment angle and the feedback points' norms
    (``point_norms``) against step: a `matplotlib.figure.Figure` (shown by a notebook, or saved
    with ``savefig``).

    Readable for any run: markers show single points (a run shorter than one evaluation), step 0
    is the untrained net, and a run that stopped (divergence, invalid data) is marked where it
    stopped, with the reason in the legend.
    """
    # Imported here: matplotlib takes a while to load, and only runs that draw need it.
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    train = [r for r in records if "loss" in r]
    ev = [r for r in records if "test_loss" in r]
    aligned = [r for r in records if "alignment_angle" in r]
    normed = [r for r in records if "point_norms" in r]
    stops = [r for r in records if r.get("stopped")]
    panels = 2 + bool(aligned) + bool(normed)
    fig = Figure(figsize=(5.5 * panels, 4.5))
    axes = list(fig.subplots(1, panels))
    loss, acc = axes[0], axes[1]
    loss.plot([r["step"] for r in train], [r["loss"] for r in train], marker=".",
              label="train loss (mean over the steps since the last point)")
    loss.plot([r["step"] for r in ev], [r["test_loss"] for r in ev], marker=".", label="test loss")
    if all(r["loss"] > 0 for r in train) and all(r["test_loss"] > 0 for r in ev):
        loss.set_yscale("log")
    loss.set_ylabel("loss")
    for key in ("train_accuracy", "test_accuracy"):
        acc.plot([r["step"] for r in ev], [r[key] for r in ev], marker=".", label=key.replace("_", " "))
    acc.set_ylabel("accuracy")
    if aligned:
        angles = np.array([r["alignment_angle"] for r in aligned])
        cmap, n = colormaps["viridis"], angles.shape[1]
        for i in range(n):
            label = {0: "layer 1 (input side)", n - 2: f"layer {n - 1} (top hidden)",
                     n - 1: "output layer"}.get(i) if n > 2 or i == n - 1 else None
            axes[2].plot([r["step"] for r in aligned], angles[:, i], color=cmap(i / max(n - 1, 1)),
                         lw=1, marker="." if len(aligned) == 1 else None, label=label)
        axes[2].set_ylabel("angle to the BP update (degrees)")
    if normed:
        norms, ax = np.array([r["point_norms"] for r in normed]), axes[-1]
        cmap, n = colormaps["plasma"], norms.shape[1]
        for i in range(n):
            label = {0: "point 1 (input side)", n - 1: f"point {n} (top)"}.get(i)
            ax.plot([r["step"] for r in normed], norms[:, i], color=cmap(i / max(n, 1)), lw=1,
                    marker="." if len(normed) == 1 else None, label=label)
        if np.all(norms > 0):  # an embedding's point can sit decades below the blocks'
            ax.set_yscale("log")
        ax.set_ylabel("RMS of each feedback point (test examples)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        for r in stops:
            ax.axvline(r["step"], color="red", ls="--", lw=1,
                       label=f"stopped at step {r['step']}" + (" (diverged)" if r.get("diverged") else ""))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
