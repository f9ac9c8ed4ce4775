"""How a run stops, said to the user and recorded: a skipped step (invalid data, or a non-finite
update), a finite blow-up of the loss (both divergence, with what happens next), the first Ctrl-C
(saved) and the second (aborted)."""

from __future__ import annotations

import numpy as np

from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.config import Config
from jdfa.driver.flags import spelled
from jdfa.driver.interval import Interval
from jdfa.driver.progress import say
from jdfa.driver.runlog import RunLog

STOPPED_BY_USER = ("interrupted", "aborted")


def report_skip(cfg: Config, cm, log: RunLog, interval: Interval, rollbacks: int,
                checkpoint_step: int | None) -> tuple[str, bool, str]:
    """Reports a skipped step (``cm``: the run's `ChunkMetrics`); returns ``(status, whether to
    roll back, the reason)``. ``checkpoint_step``: where a rollback would return to (None: nowhere)."""
    step = int(cm.skipped_at)
    if cm.bad_labels or cm.bad_inputs:
        what = "labels outside [0, classes)" if cm.bad_labels else "non-finite inputs"
        message = (f"the batch of step {step} has {what}; stopped with the state after step {step - 1} "
                   "and all logs kept. Check the data")
        log.stopped(step, interval.wall(), message)
        return "invalid_data", False, message
    norms = np.asarray(cm.bad_layer_norms)
    layers = [int(i) + 1 for i in np.flatnonzero(~np.isfinite(norms))]
    where = f"update of layer(s) {layers} (layer {len(norms)} is the output layer)" if layers else "loss"
    can = _can_roll_back(cfg, rollbacks, checkpoint_step)
    message = log.diverged(step, f"non-finite {where}", f"the state after step {step - 1}", interval.wall(),
                           cfg, rollbacks, can, checkpoint_step, nonfinite_layers=layers)
    return "diverged", can, message


def report_loss(cfg: Config, step: int, which: str, loss: float, reference: float, log: RunLog,
                interval: Interval, rollbacks: int, checkpoint_step: int | None) -> tuple[str, bool, str]:
    """Reports a finite blow-up: the ``which`` loss ``loss`` past ``cfg.divergence_factor`` times
    ``reference`` (the first evaluated test loss); returns as `report_skip`."""
    can = _can_roll_back(cfg, rollbacks, checkpoint_step)
    what = (f"the {which} loss {loss:.4g} is above {cfg.divergence_factor:g} x the first evaluated "
            f"test loss {reference:.4g} (if a loss this high is expected, raise "
            f"{spelled('divergence_factor', ...)} or set it to 0)")
    kept = (f"the last good checkpoint (step {checkpoint_step})" if checkpoint_step is not None
            else "the state it diverged in (no checkpoints to go back to)")
    message = log.diverged(step, what, kept, interval.wall(), cfg, rollbacks, can, checkpoint_step,
                           loss=loss, loss_limit=cfg.divergence_factor * reference)
    return "diverged", can, message


def _can_roll_back(cfg: Config, rollbacks: int, checkpoint_step: int | None) -> bool:
    return bool(cfg.on_diverge == "rollback" and rollbacks < cfg.max_rollbacks
                and checkpoint_step is not None)


def save_on_interrupt(state, checkpoints: Checkpoints | None, meta: dict, name: str, step: int) -> None:
    """The first SIGINT/SIGTERM: saves ``state`` (the program's runs) at ``step`` and says how to
    continue."""
    if checkpoints is not None:
        checkpoints.save(state, meta, step=step)
    say(f"interrupted by {name} at step {step}; "
        + (f"checkpoint saved in {checkpoints.directory}; the same run with {spelled('resume')} continues"
           if checkpoints is not None else "checkpoints are off, nothing saved"))


def report_abort(step: int) -> str:
    """The second Ctrl-C: says what is kept; returns the status ``"aborted"``."""
    say(f"aborted at step {step} without saving; the last good checkpoint and the logs are kept")
    return "aborted"
