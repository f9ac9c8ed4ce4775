"""The run's folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``curves.png`` and,
optionally, TensorBoard events. On resume or rollback, lines past the restored step are dropped,
so the metrics file reads as one run."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import jax

from jdfa.driver.config import Config
from jdfa.driver.flags import spelled
from jdfa.driver.periodic import Periodic
from jdfa.driver.plots import plot_curves
from jdfa.driver.progress import say

# the evaluated numbers a summary reports, beside the accuracies (`evaluation.Evaluate`)
SUMMARIZED = ("test_loss", "test_perplexity", "test_bits_per_byte")


class RunLog(Periodic):
    """Keeps the records of the run (``last``: the latest value of each accuracy and of
    `SUMMARIZED`) and, with ``config.out``, writes them. As an action it writes every record.
    ``config.json`` also says where the data came from (``data``: `jdfa.driver.flags.data_source`)."""

    def __init__(self, config: Config, resumed_at: int | None = None, saved: dict | None = None,
                 data: str | None = None):
        super().__init__(0)
        self.records: list[dict] = []
        self.last: dict[str, float] = {}
        self.dir = Path(config.out) if config.out else None
        self.tb = None
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {"config": config.to_dict(), "rule": config.rule.spec, "data": data, **provenance()}
        if saved is not None:  # a resume: the run's first config stays, each resume is noted
            meta = {**saved, "resumes": saved.get("resumes", []) + [
                {"step": resumed_at, "config": config.to_dict(), "data": data, **provenance()}]}
        (self.dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        self.path = self.dir / "metrics.jsonl"
        if resumed_at is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line torn by an abort: its step is redone
                    continue
                if record["step"] <= resumed_at and not record.get("stopped"):
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
        self.last.update({k: v for k, v in record.items() if "accuracy" in k or k in SUMMARIZED})

    def _rewrite(self) -> None:
        self.metrics = open(self.path, "w")
        for record in self.records:
            self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()

    def truncate(self, step: int) -> None:
        """Forgets the records after ``step`` (a rollback), keeping divergence notes."""
        self.records = [r for r in self.records if r["step"] <= step or r.get("stopped")]
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
            for i, norm in enumerate(record.get("point_norms", [])):
                self.tb.add_scalar(f"point_norms/point_{i + 1}", norm, record["step"])

    def stopped(self, step: int, wall: float, message: str, **fields) -> None:
        """Reports (on stderr) and records why the run stopped at ``step``."""
        say(message)
        self.write({"step": step, "wall_s": round(wall, 3), "stopped": True, **fields, "message": message})

    def diverged(self, step: int, what: str, kept: str, wall: float, config: Config, rollbacks: int,
                 rollback: bool, checkpoint_step: int | None, **fields) -> str:
        """Reports and records that the run diverged at ``step`` (``what``: how, e.g. "non-finite
        update of layer(s) [3]"; ``kept``: the state a stop keeps) and what happens next; returns
        the message."""
        lr = config.optimizer.lr * config.rollback_factor ** rollbacks
        if rollback:
            then = (f"rolling back to the checkpoint of step {checkpoint_step} with lr "
                    f"{lr * config.rollback_factor:g} (rollback {rollbacks + 1} of {config.max_rollbacks})")
        else:
            then = f"stopped; {kept} and all logs are kept. "
            if config.on_diverge == "rollback" and rollbacks >= config.max_rollbacks:
                then += (f"{rollbacks} rollback(s) did not help (lr now {lr:g}): lower --lr or the "
                         "feedback scale, or raise --max-rollbacks")
            elif config.on_diverge == "rollback":
                then += "No checkpoint to roll back to (rollback needs --out and checkpoints)"
            elif config.out and config.checkpoint:
                then += ("Lower the learning rate or the feedback scale, or pass "
                         f"{spelled('on_diverge', 'rollback')}")
            else:  # a rollback returns to a checkpoint, which this run has none of
                then += (f"Lower the learning rate or the feedback scale, or write checkpoints "
                         f"({spelled('out', ...)}) and pass {spelled('on_diverge', 'rollback')}")
        message = f"training diverged at step {step}: {what}; {then}."
        self.stopped(step, wall, message, diverged=True, **fields)
        return message

    def best(self) -> dict:
        """The best test accuracy so far and its step (empty before any evaluation)."""
        evaluated = [r for r in self.records if "test_accuracy" in r]
        if not evaluated:
            return {}
        top = max(evaluated, key=lambda r: r["test_accuracy"])
        return {"best_test_accuracy": top["test_accuracy"], "best_step": top["step"]}

    def close(self, summary: dict, config: Config) -> None:
        """Writes ``summary.json`` and ``curves.png``."""
        if self.dir is None:
            return
        self.metrics.close()
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.tb is not None:
            self.tb.close()
        plot_curves(self.records, self.dir / "curves.png", title=title(config))


def title(config: Config) -> str:
    """The run in one line: rule, net, optimizer, batch, seed."""
    net, opt = config.net, config.optimizer
    decay = f", wd {opt.weight_decay:g}" if opt.weight_decay else ""
    return (f"{config.rule}  |  {net.describe()}  |  "
            f"{opt.name} lr {opt.lr:g} {opt.schedule}{decay}, "
            f"batch {config.batch_size}, seed {config.seed}")


def provenance() -> dict:
    """The jdfa version, its git commit (with a ``-dirty`` mark) when jdfa runs from a checkout,
    the jax version and the device."""
    where = Path(__file__).resolve().parents[1]  # the jdfa package (not `import jdfa`: no import circle)

    def git(*args):
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                                  timeout=10)
            return done.stdout.strip() if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    top = git("rev-parse", "--show-toplevel")  # only jdfa's own checkout, not a repo around a venv
    commit = git("rev-parse", "HEAD") if top and Path(top, "jdfa") == where else None
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    try:
        version = importlib.metadata.version("jdfa")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout on PYTHONPATH, not installed
        version = None
    return {"jdfa": version, "commit": commit, "jax": jax.__version__,
            "device": jax.devices()[0].device_kind, "device_count": jax.device_count()}
