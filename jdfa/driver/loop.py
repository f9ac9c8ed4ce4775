"""The training loop, one for every run: a `Program` trains R >= 1 runs of one structure with a
leading run axis on their state. `jdfa.train` is a program of one run; `jdfa.sweep` splits its
runs into programs (`sweeps`).

Read top to bottom: build or restore the runs' state; evaluate step 0; then run the steps up to
the next periodic action (evaluation, alignment, the run log, the checkpoint) as jitted chunks
(`chunks`: batches drawn on the device, so Python is not in the inner loop) of about half a second
each, so the progress bar moves and a Ctrl-C is answered promptly. The guarded step skips a step on
invalid data or a non-finite update, and a loss past ``divergence_factor`` times the first
evaluated test loss is a finite blow-up: that run stops, naming the step and the reason, while the
others go on; or, with ``on_diverge="rollback"``, the program returns to its last good checkpoint
with that run's learning rate lowered, and the other runs redo the same steps to the same numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import parallel
from jdfa.driver.angles import MeasureAlignment
from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.chunks import ChunkMetrics, Epochs, hyper, init_runs, make_chunk, run_keys, run_state
from jdfa.driver.config import Config
from jdfa.driver.evaluation import Evaluate
from jdfa.driver.flags import spelled
from jdfa.driver.interval import META, Interval
from jdfa.driver.periodic import Periodic, next_stop
from jdfa.driver.progress import Progress, say
from jdfa.driver.runlog import RunLog
from jdfa.driver.signals import SignalFlag
from jdfa.driver.stops import report_abort, report_loss, report_skip, save_on_interrupt
from jdfa.driver.watch import Watch

SECONDS_PER_CHUNK = 0.5
STATUS = {"running": 0, "diverged": 1, "invalid_data": 2}  # a run's status in checkpoint meta
FORMAT = 2  # checkpoints hold the runs stacked, with numbers per run ("loss_sum/0", "lr_scale/0")
OLD_FORMAT = ("the checkpoints in {} were written by an older jdfa, which saved a run alone "
              "unstacked (a run is now a program of one run: a run axis, numbers per run); this jdfa "
              "cannot continue it: start it again with {}, or continue it with the jdfa that wrote it "
              "(commit bd94ca1 or earlier)")


class Program:
    """Runs of one structure (``cfgs``, each writing to its own ``out``; ``names`` label them in
    messages, None for a run alone) trained as one program, checkpointed in ``checkpoint_dir``.
    With a ``mesh``, a run alone has its batch split over the ``data`` axis and its layers over
    ``layers``; R > 1 runs are split over ``data`` (`chunks.make_chunk`)."""

    def __init__(self, cfgs: list[Config], names: list, data, mesh, progress: Progress,
                 signals: SignalFlag, checkpoint_dir: Path | None, data_source: str):
        self.cfgs, self.names, self.progress, self.signals = cfgs, names, progress, signals
        self.data_source, self.mesh = data_source, mesh
        cfg = self.cfg = cfgs[0]
        n = len(cfgs)
        (x_train, y_train), (x_test, y_test) = data
        self.x, self.y = jnp.asarray(x_train), jnp.asarray(y_train)
        keys = [run_keys(c.seed) for c in cfgs]
        self.data_keys = [k[1] for k in keys]
        self.state = init_runs([k[0] for k in keys], [c.rule for c in cfgs], cfg.net, cfg.optimizer,
                               cfg.steps)
        if mesh is not None:
            self.state = jax.device_put(self.state, self._state_sharding())
        self.rollbacks, self.lr_scales, self.status = [0] * n, [1.0] * n, ["running"] * n
        self.reasons, self.watches = [None] * n, [Watch(c, name) for c, name in zip(cfgs, names)]
        self.hyper = self._hyper()
        self.chunk = make_chunk(cfg.net, cfg.rule, cfg.optimizer, cfg.steps, cfg.batch_size,
                                cfg.batch_mode, cfg.remat, len(x_train), n, mesh)
        self.epochs = Epochs(len(x_train), cfg.batch_size)
        test = (jnp.asarray(x_test), jnp.asarray(y_test))
        self.actions = []
        for (_, _, k_eval), c in zip(keys, cfgs):
            idx = jax.random.choice(k_eval, len(x_train), (min(c.train_eval_size, len(x_train)),),
                                    replace=False)
            xe, ye = self.x[idx], self.y[idx]
            self.actions.append([
                Evaluate(c.eval_every, c.net, (xe, ye), test),
                MeasureAlignment(c.align_every, c.net, c.rule, xe[:256], ye[:256], c.batch_mode)])
        every = cfg.eval_every if cfg.checkpoint_every is None else cfg.checkpoint_every
        self.saver = Periodic(every, at_end=True)
        self.checkpoints = Checkpoints(checkpoint_dir, cfg.keep_checkpoints) if checkpoint_dir else None

    def train(self) -> tuple[str, list[dict]]:
        """Trains the program's runs to the end or to an interruption; ``(status, runs)``, each
        run ``{"status", "summary", "records"}``."""
        n = len(self.cfgs)
        metas = self._restore() if self.cfg.resume else None
        restored = metas is not None
        step = int(np.max(np.asarray(self.state.step))) if restored else 0
        self.intervals = [Interval(m) for m in (metas or [dict.fromkeys(META, 0.0)] * n)]
        self.summaries, self.logs = [None] * n, [None] * n
        for r, c in enumerate(self.cfgs):
            if self.status[r] == "running":
                self.logs[r] = RunLog(c, resumed_at=step if restored else None,
                                      saved=_saved(c) if restored else None, data=self.data_source)
            else:  # frozen before the checkpoint: its folder is complete
                self.summaries[r] = json.loads((Path(c.out) / "summary.json").read_text())
                self.logs[r] = _Finished(Path(c.out) / "metrics.jsonl")
        self.progress.advance(int(np.sum(np.asarray(self.state.step))))
        if not restored:
            self._act(0, last=False, save=self.checkpoints is not None)
        outcome = self._loop(step)
        if outcome != "finished":  # no program follows: the logs below are written whole
            self.signals.closing()
        for r in range(n):
            if self.summaries[r] is None:
                self._close(r, outcome)
        if self.checkpoints is not None:
            self.checkpoints.close()
        return outcome, [{"status": s["status"], "summary": s, "records": log.records}
                         for s, log in zip(self.summaries, self.logs)]

    def run_state(self, r: int):
        """Run ``r``'s `jdfa.TrainState` (for a stopped run: the last whose steps were all valid)."""
        return run_state(self.state, r)

    def _loop(self, step: int) -> str:
        cfg, chunk_size = self.cfg, 1
        periodic = [*self.actions[0], self.saver]
        try:
            while step < cfg.steps and self._active():
                stop = next_stop(step, cfg.steps, periodic)
                while step < stop and not self.signals.is_set and self._active():
                    n = self.epochs.chunk_steps(step, stop, chunk_size)
                    start = time.perf_counter()
                    sums = [jnp.stack(v) for v in zip(*(i.sums() for i in self.intervals))]
                    order = self.epochs.orders(self.hyper.data_key, self.state.step)  # once per epoch
                    self.state, cm = self.chunk(self.state, self.hyper, self.x, self.y, jnp.int32(n), *sums,
                                                order)
                    cm = jax.device_get(cm)
                    chunk_size = max(1, int(SECONDS_PER_CHUNK * n / max(time.perf_counter() - start, 1e-6)))
                    active, diverged = self._active(), []
                    for r in active:
                        run_cm = jax.tree.map(lambda a, r=r: a[r], cm)
                        self.intervals[r].add(run_cm)
                        if run_cm.skipped_at:
                            diverged.append((r, run_cm))
                        elif self.watches[r].too_high(self.logs[r], self.intervals[r].loss()):
                            diverged.append((r, ("training", self.intervals[r].loss())))
                    step += n
                    self._show(n * len(active))
                    if diverged:
                        step = self._stop_runs(diverged, step)
                        break
                if step == stop and self._active():
                    last = stop == cfg.steps
                    step = self._act(stop, last=last, save=self.saver.due(stop, last))
                    self._show(0)  # the evaluation just made
                if self.signals.is_set and step < cfg.steps:
                    save_on_interrupt(self.state, self.checkpoints, self._meta(step), self.signals.name, step)
                    return "interrupted"
        except KeyboardInterrupt:  # the second Ctrl-C: leave at once, the last good checkpoint kept
            return report_abort(step)
        return "finished"

    def _act(self, step: int, last: bool, save: bool) -> int:
        """The periodic actions of every running run at ``step``, then the checkpoint (the log line
        of a step is written before its checkpoint, and a run whose test loss blew up stops or
        rolls back before it); returns the step the loop goes on from."""
        diverged = []
        for r in self._active():
            self.watches[r].never_updated(self.intervals[r], step)
            record = self.intervals[r].record(step) if step else {"step": 0, "wall_s": 0.0}
            state = run_state(self.state, r)
            for action in self.actions[r]:
                if action.due(step, last):
                    action(step, state, record)
            self.logs[r].write(record)
            if "test_loss" in record and self.watches[r].too_high(self.logs[r], record["test_loss"]):
                diverged.append((r, ("test", record["test_loss"])))
        at = self._stop_runs(diverged, step) if diverged else step
        if save and at == step and self.checkpoints is not None:
            self.checkpoints.save(self.state, self._meta(step), step=step)
        return at

    def _stop_runs(self, diverged: list, step: int) -> int:
        """Reports each run that diverged (a skipped step's `ChunkMetrics`, or ``(which, loss)``
        past its limit) and freezes it, or rolls the program back for those that may
        (`_roll_back`); returns the step the loop goes on from."""
        saved = self.checkpoints.steps() if self.checkpoints is not None else []
        latest, back = saved[-1] if saved else None, []
        for r, why in diverged:
            if self.names[r] is not None:
                say(f"run {self.names[r]}:")
            cfg, log, interval = self.cfgs[r], self.logs[r], self.intervals[r]
            if isinstance(why, ChunkMetrics):
                status, can, reason = report_skip(cfg, why, log, interval, self.rollbacks[r], latest)
            else:  # a finite blow-up, found at the end of a chunk or at an evaluation
                first = self.watches[r].first_test_loss(log)
                status, can, reason = report_loss(cfg, step, *why, first, log, interval, self.rollbacks[r],
                                                  latest)
            self.reasons[r] = reason
            if can:
                back.append(r)
            else:
                self._close(r, status)
        return self._roll_back(back, step) if back else step

    def _roll_back(self, runs: list[int], step: int) -> int:
        """Returns every running run to the last good checkpoint, with the learning rate of
        ``runs`` times their ``rollback_factor``; the logs forget the steps undone. Frozen runs
        keep their state. Returns the checkpoint's step."""
        state, meta = self.checkpoints.restore_latest(self.state)
        frozen = np.array([s != "running" for s in self.status])
        self.state = jax.tree.map(
            lambda new, old: jnp.where(frozen.reshape((-1,) + (1,) * (new.ndim - 1)), old, new),
            state, self.state) if frozen.any() else state
        to = int(meta["step"])
        for r in runs:
            self.rollbacks[r] += 1
            self.lr_scales[r] *= self.cfgs[r].rollback_factor
        self.hyper = self._hyper()
        self.progress.advance(-(step - to) * len(self._active()))
        for r in self._active():
            self.intervals[r].load({k: meta[f"{k}/{r}"] for k in META})
            self.logs[r].truncate(to)
        for r in runs:
            self.logs[r].write({"step": to, "rollback": self.rollbacks[r],
                                "lr": self.cfgs[r].optimizer.lr * self.lr_scales[r]})
        return to

    def _restore(self) -> list[dict] | None:
        """Continues from the newest readable checkpoint: the state, each run's status, rollbacks
        and learning-rate scale; returns each run's interval numbers (None: nothing to continue)."""
        if self.checkpoints is None:
            return None
        self.checkpoints.remove_partial()
        keys = self.checkpoints.meta_keys()
        if keys is not None and "format" not in keys:
            raise ValueError(OLD_FORMAT.format(self.checkpoints.directory, spelled("overwrite")))
        restored = self.checkpoints.restore_latest(self.state)
        if restored is None:
            return None
        self.state, meta = restored
        n = len(self.cfgs)
        self.status = [next(s for s, v in STATUS.items() if v == int(meta[f"status/{r}"])) for r in range(n)]
        self.rollbacks = [int(meta[f"rollbacks/{r}"]) for r in range(n)]
        self.lr_scales = [meta[f"lr_scale/{r}"] for r in range(n)]
        self.hyper = self._hyper()
        return [{k: meta[f"{k}/{r}"] for k in META} for r in range(n)]

    def _close(self, r: int, status: str) -> None:
        interval, log = self.intervals[r], self.logs[r]
        self.status[r] = status if status in STATUS else self.status[r]
        self.summaries[r] = {"status": status, "step": int(np.asarray(self.state.step)[r]),
                             "rule": self.cfgs[r].rule.spec, "steps_per_s": interval.steps_per_s(),
                             **log.last, **log.best(), "wall_s": round(interval.wall(), 3),
                             "rollbacks": self.rollbacks[r], "out": self.cfgs[r].out,
                             **({"reason": self.reasons[r]} if status in STATUS else {})}
        log.close(self.summaries[r], self.cfgs[r])

    def _active(self) -> list[int]:
        return [r for r, s in enumerate(self.status) if s == "running"]

    def _show(self, steps: int) -> None:
        # right after a record the intervals are empty: their loss of 0 is no loss
        losses = [self.intervals[r].loss() for r in self._active() if self.intervals[r].steps]
        loss = float(np.mean(losses)) if losses else None
        self.progress.update(steps, loss, self.logs[0].last if len(self.cfgs) == 1 else {})

    def _hyper(self):
        runs = [hyper(k, c.optimizer, s) for k, c, s in zip(self.data_keys, self.cfgs, self.lr_scales)]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
        if self.mesh is not None and len(self.cfgs) > 1:
            return jax.device_put(stacked, parallel.run_sharding(self.mesh))
        return stacked

    def _state_sharding(self):
        if len(self.cfgs) > 1:
            return parallel.run_sharding(self.mesh)
        one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), self.state)
        return parallel.with_run_axis(parallel.state_sharding(self.mesh, one, self.cfg.net))

    def _meta(self, step: int) -> dict:
        per_run = {f"{k}/{r}": v for r, i in enumerate(self.intervals) for k, v in i.meta().items()}
        for r in range(len(self.cfgs)):
            per_run.update({f"status/{r}": STATUS[self.status[r]], f"rollbacks/{r}": self.rollbacks[r],
                            f"lr_scale/{r}": self.lr_scales[r]})
        return {"format": FORMAT, "step": step, **per_run}


class _Finished:
    """The records of a run that was frozen before the checkpoint a program resumed from."""

    def __init__(self, path: Path):
        self.records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _saved(config: Config) -> dict | None:
    path = Path(config.out) / "config.json" if config.out else None
    return json.loads(path.read_text()) if path and path.is_file() else None
