"""The training loop: `train(config)`.

Read top to bottom: check the run folder (`rundir`) and the data; build or restore the state;
evaluate step 0; then run the steps up to the next periodic action (evaluation, alignment, the run
log, the checkpoint) as jitted chunks (`batches`: batches drawn on the device, so Python is not in
the inner loop) of about half a second each, so the progress bar moves and a Ctrl-C is answered
promptly. The guarded step skips a step on invalid data or a non-finite update; the run then stops
naming the step, or `rollback` returns to the last good checkpoint with a lower learning rate.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp

from jdfa import parallel
from jdfa.driver import rundir
from jdfa.driver.angles import MeasureAlignment
from jdfa.driver.checkpoints import Checkpoints, SaveCheckpoint
from jdfa.driver.chunks import hyper, make_chunk, run_keys, steps_in_chunk
from jdfa.driver.config import Config
from jdfa.driver.evaluation import Evaluate
from jdfa.driver.flags import data_source, load_data, spelled
from jdfa.driver.periodic import next_stop
from jdfa.driver.progress import Progress, say
from jdfa.driver.runlog import RunLog
from jdfa.driver.signals import SignalFlag
from jdfa.driver.summary import Interrupted, Summary
from jdfa.step import init_train_state

SECONDS_PER_CHUNK = 0.5
STOPPED_BY_USER = ("interrupted", "aborted")
META = ("loss_sum", "accuracy_sum", "interval_steps", "wall_s")  # saved beside each checkpoint


def train(config: Config, *, data=None) -> Summary:
    """Trains ``config.net`` with ``config.rule`` as ``config`` says.

    Args:
      data: optional ``((x_train, y_train), (x_test, y_test))`` NumPy arrays to use instead of
        ``config.dataset`` (inputs flattened to (n, in_features), integer labels).
    A first SIGINT or SIGTERM saves a checkpoint, closes the logs and raises
    `jdfa.driver.summary.Interrupted` (a `KeyboardInterrupt`, its ``result`` the summary with
    status "interrupted"), so the calling script stops too; a second SIGINT aborts without saving
    (status "aborted"; the last good checkpoint stays) and raises the same.

    Returns:
      a `jdfa.driver.summary.Summary` (a dict with a one-line repr): ``status`` ("finished",
      "diverged", "invalid_data", "interrupted" or "aborted"), ``step``, the last evaluation's
      ``train_accuracy`` / ``test_accuracy`` / ``test_loss``, the best test accuracy and its step,
      ``wall_s`` (across resumes), ``steps_per_s``, ``out``, ``rollbacks`` and the final ``state``
      (a `jdfa.TrainState`: the last state whose steps were all valid; also ``summary.state``).
    """
    saved_config = rundir.prepare(config)  # refuses a bad start before anything is created
    with SignalFlag(saves=bool(config.out and config.checkpoint)) as signals:  # Ctrl-C from here on
        summary = _train(config, data, saved_config, signals)
    if summary["status"] in STOPPED_BY_USER:
        raise Interrupted(summary)
    return summary


def _train(cfg: Config, data, saved_config, signals: SignalFlag) -> Summary:
    net, rule = cfg.net, cfg.rule
    if cfg.distributed:
        parallel.initialize_distributed()
    (x_train, y_train), (x_test, y_test) = data if data is not None else load_data(cfg.dataset, cfg.data_dir)
    check_data(cfg, x_train, y_train, x_test, y_test)
    mesh = None
    if cfg.mesh_data * cfg.mesh_layers > 1:
        mesh = parallel.make_mesh(cfg.mesh_data, cfg.mesh_layers)
        parallel.check_batch(mesh, cfg.batch_size)

    k_init, k_data, k_eval = run_keys(cfg.seed)
    x, y = jnp.asarray(x_train), jnp.asarray(y_train)
    eval_idx = jax.random.choice(k_eval, len(x_train), (min(cfg.train_eval_size, len(x_train)),),
                                 replace=False)
    x_eval, y_eval = x[eval_idx], y[eval_idx]

    state = init_train_state(k_init, net, rule, cfg.optimizer.build(cfg.steps, weight_mask=net.weight_mask))
    if mesh is not None:
        state = parallel.shard_state(mesh, state, net)
    checkpoints = (Checkpoints(Path(cfg.out) / "checkpoints", cfg.keep_checkpoints)
                   if cfg.out and cfg.checkpoint else None)
    meta = dict.fromkeys(META, 0.0)
    if cfg.resume:
        checkpoints.remove_partial()
        restored = checkpoints.restore_latest(state)
        if restored is None:
            raise ValueError(f"--resume: no readable checkpoint in {checkpoints.directory}")
        state, meta = restored[0], {**meta, **restored[1]}
    log = RunLog(cfg, resumed_at=int(state.step) if cfg.resume else None, saved=saved_config,
                 data=data_source(cfg.dataset, cfg.data_dir, data is not None))
    interval = Interval(meta, wall_offset=meta["wall_s"])
    actions = [Evaluate(cfg.eval_every, net, (x_eval, y_eval), (jnp.asarray(x_test), jnp.asarray(y_test))),
               MeasureAlignment(cfg.align_every, net, rule, x_eval[:256], y_eval[:256], cfg.batch_mode),
               log]  # the log line of a step is written before its checkpoint
    if checkpoints is not None:
        every = cfg.eval_every if cfg.checkpoint_every is None else cfg.checkpoint_every
        actions.append(SaveCheckpoint(every, checkpoints, interval.meta))
        if not cfg.resume:
            checkpoints.save(state, interval.meta())  # a rollback or resume always has somewhere to go
    if not cfg.resume:  # step 0: where the curves start
        record = {"step": 0, "wall_s": 0.0}
        for action in actions:
            if action.due(0, last=False):
                action(0, state, record)

    chunk = make_chunk(net, rule, cfg.optimizer, cfg.steps, cfg.batch_size, cfg.batch_mode, cfg.remat,
                       len(x_train), mesh)
    chunk_size = 1
    progress = Progress(cfg.steps, int(state.step), cfg.progress)
    status, rollbacks, lr_scale = "finished", 0, 1.0
    try:
        while int(state.step) < cfg.steps:
            stop, cm = next_stop(int(state.step), cfg.steps, actions), None
            while int(state.step) < stop and not signals.is_set:  # chunks of ~0.5 s
                start = time.perf_counter()
                n = jnp.int32(steps_in_chunk(int(state.step), stop, len(x_train), cfg.batch_size, chunk_size))
                state, cm = chunk(state, hyper(k_data, cfg.optimizer, lr_scale), x, y, n, *interval.sums())
                cm = jax.device_get(cm)
                seconds = time.perf_counter() - start
                chunk_size = max(1, int(SECONDS_PER_CHUNK * int(cm.steps) / max(seconds, 1e-6)))
                interval.add(cm)
                progress.update(int(cm.steps), interval.loss(), log.last)
                if cm.skipped_at:
                    break
            if cm is not None and cm.skipped_at:
                status, can_roll_back = report_skip(cfg, cm, log, interval, checkpoints, rollbacks)
                if not can_roll_back:
                    break
                rollbacks, lr_scale = rollbacks + 1, lr_scale * cfg.rollback_factor
                state = rollback(cfg, state, checkpoints, log, interval, lr_scale, rollbacks)
                status = "finished"
                progress.reset_to(int(state.step))
                continue
            if int(state.step) == stop:
                record = interval.record(stop)
                for action in actions:
                    if action.due(stop, last=stop == cfg.steps):
                        action(stop, state, record)
                progress.update(0, interval.loss(), log.last)  # the evaluation just made
            if signals.is_set and int(state.step) < cfg.steps:
                status = "interrupted"
                save_on_interrupt(state, checkpoints, interval.meta(), signals.name, int(state.step))
                break
    except KeyboardInterrupt:  # the second Ctrl-C: leave at once, the last good checkpoint kept
        status = report_abort(int(state.step))
    signals.closing()
    progress.close()
    if checkpoints is not None:
        checkpoints.close()
    summary = {"status": status, "step": int(state.step), "rule": rule.spec,
               "steps_per_s": interval.steps_per_s(), **log.last, **log.best(),
               "wall_s": round(interval.wall(), 3), "rollbacks": rollbacks, "out": cfg.out}
    log.close(summary, cfg)
    return Summary(summary, state=state)


class Interval:
    """The running sums of the steps since the last record, and the run's wall time (continuing
    across resumes). Saved beside each checkpoint (`meta`), so a resumed interval is whole."""

    def __init__(self, meta: dict, wall_offset: float):
        self.load(meta)
        self.norms = (0.0, [])
        self.start, self.wall_offset, self.session_steps = time.perf_counter(), wall_offset, 0

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
        self.steps = 0
        return record


def rollback(cfg: Config, state, checkpoints: Checkpoints, log: RunLog, interval: Interval,
             lr_scale: float, rollbacks: int):
    """Returns to the last good checkpoint (the log forgets the steps undone); the caller goes on
    with the learning rate times ``lr_scale``."""
    state, meta = checkpoints.restore_latest(state)
    interval.load({**dict.fromkeys(META, 0.0), **meta})
    log.truncate(int(state.step))
    log.write({"step": int(state.step), "rollback": rollbacks, "lr": cfg.optimizer.lr * lr_scale})
    return state


def report_skip(cfg, cm, log: RunLog, interval: Interval, checkpoints, rollbacks: int):
    """Reports a skipped step (``cm``: the run's `ChunkMetrics`); returns ``(status, whether to
    roll back)``."""
    step = int(cm.skipped_at)
    if cm.bad_labels or cm.bad_inputs:
        what = "labels outside [0, classes)" if cm.bad_labels else "non-finite inputs"
        log.stopped(step, interval.wall(), f"the batch of step {step} has {what}; stopped with the "
                    f"state after step {step - 1} and all logs kept. Check the data")
        return "invalid_data", False
    can = bool(cfg.on_diverge == "rollback" and rollbacks < cfg.max_rollbacks
               and checkpoints is not None and checkpoints.steps())
    log.diverged(step, cm.bad_layer_norms, interval.wall(), cfg, rollbacks, can,
                 checkpoints.steps()[-1] if can else None)
    return "diverged", can


def save_on_interrupt(state, checkpoints: Checkpoints | None, meta: dict, name: str, step: int) -> None:
    """The first SIGINT/SIGTERM: saves ``state`` (a run's, or a sweep's stacked one) at ``step``
    and says how to continue."""
    if checkpoints is not None:
        checkpoints.save(state, meta, step=step)
    say(f"interrupted by {name} at step {step}; "
        + (f"checkpoint saved in {checkpoints.directory}; the same run with {spelled('resume')} continues"
           if checkpoints is not None else "checkpoints are off, nothing saved"))


def report_abort(step: int) -> str:
    """The second Ctrl-C: says what is kept; returns the status ``"aborted"``."""
    say(f"aborted at step {step} without saving; the last good checkpoint and the logs are kept")
    return "aborted"


def check_data(cfg: Config, x_train, y_train, x_test, y_test) -> None:
    """Clear errors for data that does not fit the run (`jdfa.net.Net.check_inputs`: shapes, labels,
    NaN; a warning for inputs outside [0, 1]), before anything trains."""
    if cfg.batch_size > len(x_train):
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(x_train)} training examples")
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        try:
            cfg.net.check_inputs(x, y)
        except ValueError as err:
            raise ValueError(f"the {split} data does not fit the run: {err}") from None


def _round(value) -> float:
    return round(float(value), 6)
