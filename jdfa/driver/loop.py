"""The training loop: `train(config)`.

Read top to bottom: load the data onto the device; build the state; then alternate between a
jitted `lax.scan` of many training steps (batches drawn on the device, so Python is not in the
inner loop; `jdfa.driver.batches`) and the periodic actions due at its last step -- evaluation,
alignment, the run log, the checkpoint. A non-finite step is caught by the chunk's ``finite``
metric: the run stops, or `rollback` returns to the last good checkpoint with a lower learning
rate. SIGINT/SIGTERM end the run after the current chunk with a checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import parallel
from jdfa.checkpoint import Checkpoints
from jdfa.driver.angles import MeasureAlignment
from jdfa.driver.batches import make_chunk, run_keys
from jdfa.driver.checkpointing import SaveCheckpoint
from jdfa.driver.config import Config
from jdfa.driver.evaluation import Evaluate
from jdfa.driver.flags import load_data
from jdfa.driver.periodic import next_stop
from jdfa.driver.progress import Progress
from jdfa.driver.runlog import RunLog
from jdfa.driver.signals import SignalFlag
from jdfa.step import init_train_state


def train(config: Config, *, data=None) -> dict[str, Any]:
    """Trains ``config.net`` with ``config.rule`` as ``config`` says.

    Args:
      data: optional ``((x_train, y_train), (x_test, y_test))`` NumPy arrays to use instead of
        ``config.dataset`` (inputs flattened to (n, in_features), integer labels).
    A SIGINT or SIGTERM during the run saves a checkpoint and returns with status
    "interrupted" (it does not raise): a script looping over runs should check the status.

    Returns:
      a summary: ``status`` ("finished", "diverged" or "interrupted"), ``step``, the last
      evaluation's ``train_accuracy`` / ``test_accuracy`` / ``test_loss``, ``steps_per_s``,
      ``out``, ``rollbacks`` and the final ``state`` (a `jdfa.TrainState`; after a divergence,
      the last state whose steps were all finite).
    """
    cfg, net, rule = config, config.net, config.rule
    if cfg.distributed:
        parallel.initialize_distributed()
    (x_train, y_train), (x_test, y_test) = data if data is not None else load_data(cfg.dataset, cfg.data_dir)
    _check_data(cfg, x_train, y_train, y_test)
    mesh = None
    if cfg.mesh_data * cfg.mesh_layers > 1:
        mesh = parallel.make_mesh(cfg.mesh_data, cfg.mesh_layers)
        parallel.check_batch(mesh, cfg.batch_size)

    k_init, k_data, k_eval = run_keys(cfg.seed)
    x, y = jnp.asarray(x_train), jnp.asarray(y_train)
    eval_idx = jax.random.choice(k_eval, len(x_train), (min(cfg.train_eval_size, len(x_train)),),
                                 replace=False)
    x_eval, y_eval = x[eval_idx], y[eval_idx]

    optimizer = cfg.optimizer.build(cfg.steps)
    state = init_train_state(k_init, net, rule, optimizer)
    if mesh is not None:
        state = parallel.shard_state(mesh, state)
    checkpoints = (Checkpoints(Path(cfg.out) / "checkpoints", cfg.keep_checkpoints)
                   if cfg.out and cfg.checkpoint else None)
    if cfg.resume:
        state = checkpoints.restore_latest(state)
        if state is None:
            raise ValueError(f"resume: no readable checkpoint in {checkpoints.directory}")
    elif checkpoints is not None and cfg.on_diverge == "rollback":
        checkpoints.save(state)  # a rollback always has somewhere to go
    log = RunLog(cfg, resumed_at=int(state.step) if cfg.resume else None)
    actions = [Evaluate(cfg.eval_every, net, (x_eval, y_eval), (jnp.asarray(x_test), jnp.asarray(y_test))),
               MeasureAlignment(cfg.align_every, net, rule, x_eval[:256], y_eval[:256], cfg.batch_mode),
               log]  # the log line of a step is written before its checkpoint
    if checkpoints is not None:
        actions.append(SaveCheckpoint(cfg.checkpoint_every, checkpoints))

    def chunk_fn(optimizer):
        return make_chunk(net, rule, optimizer, cfg.batch_size, cfg.batch_mode, cfg.remat,
                          len(x_train), k_data, mesh)

    chunk = chunk_fn(optimizer)
    progress = Progress(cfg.steps, int(state.step), cfg.progress)
    start, start_step = time.perf_counter(), int(state.step)
    status, rollbacks, lr_scale = "finished", 0, 1.0
    with SignalFlag() as interrupted:
        while int(state.step) < cfg.steps:
            before = int(state.step)
            stop = next_stop(before, cfg.steps, actions)
            new_state, m = chunk(state, x, y, stop - before)
            m = jax.tree.map(np.asarray, m)
            if not m["finite"].all():
                bad = int(np.argmin(m["finite"]))
                can_roll_back = bool(cfg.on_diverge == "rollback" and rollbacks < cfg.max_rollbacks
                                     and checkpoints is not None and checkpoints.steps())
                log.diverged(before, before + bad + 1, m["layer_update_norms"][bad],
                             time.perf_counter() - start, rollback=can_roll_back)
                if not can_roll_back:
                    status = "diverged"
                    break
                rollbacks, lr_scale = rollbacks + 1, lr_scale * cfg.rollback_factor
                state, chunk = rollback(cfg, state, checkpoints, log, lr_scale, rollbacks, chunk_fn)
                progress.reset_to(int(state.step))
                continue
            state = new_state
            wall = round(time.perf_counter() - start, 3)
            record = {"step": stop, "wall_s": wall, "steps_per_s": round((stop - start_step) / wall, 2),
                      "loss": _round(m["loss"].mean()), "batch_accuracy": _round(m["accuracy"].mean()),
                      "update_norm": _round(m["update_norm"][-1]),
                      "layer_update_norms": [_round(v) for v in m["layer_update_norms"][-1]]}
            for action in actions:
                if action.due(stop, last=stop == cfg.steps):
                    action(stop, state, record)
            progress.update(stop - before, record, log.last)
            if interrupted.is_set and int(state.step) < cfg.steps:
                status = "interrupted"
                _save_on_interrupt(state, checkpoints, interrupted.name)
                break
    progress.close()
    if checkpoints is not None:
        checkpoints.close()
    summary = {"status": status, "step": int(state.step), "rule": str(rule),
               "steps_per_s": round((int(state.step) - start_step)
                                    / max(time.perf_counter() - start, 1e-9), 2),
               **log.last, "rollbacks": rollbacks, "out": cfg.out}
    log.close(summary)
    return {**summary, "state": state}


def rollback(cfg: Config, state, checkpoints: Checkpoints, log: RunLog, lr_scale: float,
             rollbacks: int, chunk_fn):
    """Returns to the last good checkpoint with the learning rate times ``lr_scale``: the restored
    state, and the chunk compiled for the new optimizer. The log forgets the steps undone."""
    optimizer = cfg.optimizer.build(cfg.steps, lr_scale)
    state = checkpoints.restore_latest(state)
    log.truncate(int(state.step))
    log.write({"step": int(state.step), "rollback": rollbacks, "lr": cfg.optimizer.lr * lr_scale})
    return state, chunk_fn(optimizer)


def _save_on_interrupt(state, checkpoints: Checkpoints | None, signal_name: str) -> None:
    if checkpoints is not None:
        checkpoints.save(state)
    print(f"interrupted by {signal_name} at step {int(state.step)}; "
          + (f"checkpoint saved in {checkpoints.directory}, continue with --resume"
             if checkpoints is not None else "no out folder, nothing saved"))


def _check_data(cfg: Config, x_train, y_train, y_test) -> None:
    """Clear errors for data that does not fit the config's net or batch size."""
    if cfg.batch_size > len(x_train):
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(x_train)} training examples")
    if x_train.shape[1:] != (cfg.net.in_features,):
        raise ValueError(f"the data has inputs of shape {x_train.shape[1:]} but the net expects "
                         f"in_features={cfg.net.in_features}; build the net with "
                         "jdfa.driver.net_for_data(data, ...)")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    if n_classes > max(cfg.net.out_features, 2):
        raise ValueError(f"the data has {n_classes} classes but the net has out_features="
                         f"{cfg.net.out_features}; build the net with jdfa.driver.net_for_data(data, ...)")


def _round(value) -> float:
    return round(float(value), 6)
