"""The run's folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``curves.png`` and,
optionally, TensorBoard events. On resume or rollback, lines past the restored step are dropped,
so the metrics file reads as one run."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from jdfa.driver.config import Config
from jdfa.driver.periodic import Periodic
from jdfa.driver.plots import plot_curves


class RunLog(Periodic):
    """Keeps the records of the run (``last``: the latest value of each accuracy and the test
    loss) and, with ``config.out``, writes them. As an action it writes every record."""

    def __init__(self, config: Config, resumed_at: int | None = None):
        super().__init__(0)
        self.records: list[dict] = []
        self.last: dict[str, float] = {}
        self.dir = Path(config.out) if config.out else None
        self.tb = None
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {"config": config.to_dict(), "rule": str(config.rule), "jax": jax.__version__,
                "device": jax.devices()[0].device_kind, "device_count": jax.device_count()}
        (self.dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        self.path = self.dir / "metrics.jsonl"
        if resumed_at is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                record = json.loads(line)
                if record["step"] <= resumed_at and not record.get("diverged"):
                    self._remember(record)
        self._rewrite()
        if config.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError("--tensorboard needs tensorboardX: "
                                  "pip install 'jdfa[tensorboard]'") from err
            self.tb = SummaryWriter(str(self.dir / "tensorboard"))

    def due(self, step, last):
        return True

    def __call__(self, step, state, record):
        self.write(record)

    def _remember(self, record: dict) -> None:
        self.records.append(record)
        self.last.update({k: v for k, v in record.items() if "accuracy" in k or k == "test_loss"})

    def _rewrite(self) -> None:
        self.metrics = open(self.path, "w")
        for record in self.records:
            self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()

    def truncate(self, step: int) -> None:
        """Forgets the records after ``step`` (a rollback), keeping divergence notes."""
        self.records = [r for r in self.records if r["step"] <= step or r.get("diverged")]
        if self.dir is not None:
            self.metrics.close()
            self._rewrite()

    def write(self, record: dict) -> None:
        self._remember(record)
        if self.dir is None:
            return
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, float) and key != "wall_s":
                    self.tb.add_scalar(key, value, record["step"])
            for i, angle in enumerate(record.get("alignment_angle", [])):
                self.tb.add_scalar(f"alignment_angle/layer_{i + 1}", angle, record["step"])

    def diverged(self, kept: int, step: int, norms: np.ndarray, wall: float, rollback: bool) -> None:
        """Reports and records a non-finite step, naming the layers whose update went bad."""
        layers = [int(i) + 1 for i in np.flatnonzero(~np.isfinite(norms))]
        where = (f"update of layer(s) {layers} (layer {len(norms)} is the output layer)"
                 if layers else "loss")
        then = ("rolling back to the last good checkpoint with a lower learning rate" if rollback
                else f"stopped; the state after step {kept} and all logs are kept. Lower the "
                     "learning rate or the feedback scale, or pass --on-diverge rollback")
        message = f"training diverged: non-finite {where} at step {step}; {then}."
        print(message)
        self.write({"step": step, "wall_s": round(wall, 3), "diverged": True,
                    "nonfinite_layers": layers, "message": message})

    def close(self, summary: dict) -> None:
        """Writes ``summary.json`` and ``curves.png``."""
        if self.dir is None:
            return
        self.metrics.close()
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.tb is not None:
            self.tb.close()
        plot_curves(self.records, self.dir / "curves.png", title=summary["rule"])
