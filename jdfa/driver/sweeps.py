"""Many runs as one program: `sweep(config, seeds=5, lr=[1e-3, 3e-4])`.

Read top to bottom: expand the sweep into runs (`grid`), check the sweep folder, split the runs
into programs (runs of one structure, at most as many as `schedule` allows), then train each
program as `loop.train` trains one run, with a leading run axis on the state: the jitted chunk is
vmapped over the runs, and each run keeps its own interval, evaluations, log folder and status.
A run whose step is skipped (a non-finite update, invalid data) is reported and frozen; the others
go on. The stacked state is checkpointed in ``out/checkpoints/<program>``; ``resume`` continues.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import parallel
from jdfa.driver import grid, packing, rundir
from jdfa.driver.angles import MeasureAlignment
from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.chunks import hyper, init_runs, make_sweep_chunk, run_keys, run_state, steps_in_chunk
from jdfa.driver.config import Config
from jdfa.driver.evaluation import Evaluate
from jdfa.driver.flags import data_source, load_data
from jdfa.driver.loop import (
    META,
    SECONDS_PER_CHUNK,
    STOPPED_BY_USER,
    Interval,
    check_data,
    report_abort,
    report_skip,
    save_on_interrupt,
)
from jdfa.driver.periodic import Periodic, next_stop
from jdfa.driver.progress import Progress, say
from jdfa.driver.runlog import RunLog
from jdfa.driver.signals import SignalFlag
from jdfa.driver.summary import Interrupted
from jdfa.driver.sweep_report import write_report
from jdfa.validate import check_int

STOPPED = {"running": 0, "diverged": 1, "invalid_data": 2}  # a run's status in checkpoint meta


def sweep(config: Config, *, data=None, seeds=None, max_parallel: int | None = None, **axes) -> dict:
    """Trains the cross product of ``seeds`` (an int n: 0..n-1, or a list) and ``axes`` (flag
    name -> values: ``lr=[1e-3, 3e-4]``, ``feedback_scale=...``, ``weight_decay=...``, and
    structural ones such as ``rule=["dfa", "bdfa25"]``, ``block_size=[50, 25]``, ``depth=...``)
    around ``config``; see `train_runs`."""
    loaded = data if data is not None else load_data(config.dataset, config.data_dir)
    # `data` as given, so that the runs' config.json say where the data came from.
    return train_runs(grid.expand(config, loaded, seeds, **axes), data=data, max_parallel=max_parallel)


def train_runs(configs: list[Config], *, data=None, max_parallel: int | None = None) -> dict:
    """Trains ``configs`` (runs that differ only in `grid.SWEEPABLE` settings) as few programs.

    Runs of one structure (`grid.structure`: all but seed, lr, weight decay and feedback scale)
    are one jitted program vmapped over a run axis, at most ``max_parallel`` runs at a time
    (default: `packing.runs_per_program`). Each run is the run `jdfa.train` would train alone
    (same init, feedback and data order), writing the same files to ``out/<name>``, ``name``
    saying what varies (`grid.run_name`); ``out`` also gets ``sweep.json``, ``sweep.md`` and
    ``sweep.png`` (`sweep_report`). With ``mesh_data`` > 1 the run axis is split over devices.

    Ctrl-C saves and raises `jdfa.driver.summary.Interrupted` as `jdfa.train` does (its ``result``
    the dict below, status "interrupted" or "aborted").

    Returns:
      ``status`` ("finished"), ``out``, ``runs`` (per
      run: ``name``, ``settings``, ``status``, ``summary``, ``records``) and ``report`` (the
      content of ``sweep.json``, also without ``out``).
    """
    _check_sweep(configs)
    if max_parallel is not None:
        check_int("max_parallel", max_parallel, 1)
    first = configs[0]
    source = data_source(first.dataset, first.data_dir, data is not None)
    data = data if data is not None else load_data(first.dataset, first.data_dir)
    check_data(first, *data[0], *data[1])
    names = [grid.run_name(s) for s in grid.varying(configs)]
    out = Path(first.out) if first.out else None
    saved = rundir.prepare_sweep(out, configs, names) if out else None
    mesh = parallel.make_mesh(first.mesh_data, 1) if first.mesh_data > 1 else None
    programs = saved["programs"] if saved else _programs(configs, len(data[0][0]), max_parallel,
                                                         first.mesh_data)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep_config.json").write_text(json.dumps(
            {"names": names, "programs": programs, "configs": [c.to_dict() for c in configs]}, indent=2))
    runs, status, settings = [], "finished", grid.varying(configs)
    progress = Progress(sum(c.steps for c in configs), 0, first.progress)
    with SignalFlag(saves=bool(out and first.checkpoint)) as signals:
        for p, members in enumerate(programs):
            if status != "finished":
                break
            cfgs = [dataclasses.replace(configs[i], out=str(out / names[i]) if out else None)
                    for i in members]
            program = _Program(cfgs, [names[i] for i in members], data, mesh, progress, signals,
                               out / "checkpoints" / str(p) if out and first.checkpoint else None, source)
            status, done = program.train()
            runs += [{"name": n, "settings": settings[i], **r}
                     for n, i, r in zip(program.names, members, done)]
    progress.close()
    report = write_report(out, runs) if out else None
    result = {"status": status, "out": first.out, "runs": runs, "report": report}
    if status in STOPPED_BY_USER:
        raise Interrupted(result)
    return result


def _check_sweep(configs: list[Config]) -> None:
    if not configs:
        raise ValueError("a sweep needs at least one run")
    shared = {k: v for k, v in configs[0].to_dict().items() if k not in ("net", "rule", "optimizer", "seed")}
    for config in configs:
        own = {k: v for k, v in config.to_dict().items() if k in shared}
        if own != shared:
            diff = sorted(k for k in shared if own[k] != shared[k])
            raise ValueError(f"the runs of a sweep share every run setting; they differ in {diff}")
    if configs[0].on_diverge != "stop":
        raise ValueError("on_diverge rollback is for single runs: in a sweep a diverged run is "
                         "reported and frozen while the others go on; drop --on-diverge")
    if configs[0].mesh_layers > 1:
        raise ValueError("a sweep splits its runs over the data axis (--mesh-data); --mesh-layers "
                         "is for single runs")


def _programs(configs, n_train: int, max_parallel, mesh_size: int) -> list[list[int]]:
    """The runs of each program: runs of one structure, in order, at most `runs_per_program`."""
    groups: dict[Config, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(grid.structure(config), []).append(i)
    programs = []
    for members in groups.values():
        k = packing.runs_per_program(configs[members[0]], n_train, len(members), max_parallel, mesh_size)
        if mesh_size == 1:  # as many programs as k asks for, as even as can be (6 runs by 4: 3 + 3)
            k = -(-len(members) // -(-len(members) // k))
        programs += [members[i:i + k] for i in range(0, len(members), k)]
    if mesh_size > 1 and any(len(m) % mesh_size for m in programs):
        raise ValueError(f"--mesh-data {mesh_size} splits each program's runs over the devices, but "
                         f"the programs have {[len(m) for m in programs]} runs; sweep a multiple of "
                         f"{mesh_size} runs per structure")
    return programs


class _Program:
    """Runs of one structure trained as one vmapped program."""

    def __init__(self, cfgs: list[Config], names: list[str], data, mesh, progress: Progress,
                 signals: SignalFlag, checkpoint_dir: Path | None, data_source: str):
        self.cfgs, self.names, self.progress, self.signals = cfgs, names, progress, signals
        self.data_source = data_source
        cfg = self.cfg = cfgs[0]
        (x_train, y_train), (x_test, y_test) = data
        self.x, self.y = jnp.asarray(x_train), jnp.asarray(y_train)
        keys = [run_keys(c.seed) for c in cfgs]
        self.state = init_runs([k[0] for k in keys], [_scale(c) for c in cfgs], cfg.net, cfg.rule,
                               cfg.optimizer, cfg.steps)
        self.hyper = jax.tree.map(lambda *runs: jnp.stack(runs),
                                  *[hyper(k[1], c.optimizer) for k, c in zip(keys, cfgs)])
        self.chunk = make_sweep_chunk(cfg.net, cfg.rule, cfg.optimizer, cfg.steps, cfg.batch_size,
                                      cfg.batch_mode, cfg.remat, len(x_train), mesh, len(cfgs))
        if mesh is not None:
            self.state, self.hyper = jax.device_put((self.state, self.hyper), parallel.run_sharding(mesh))
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
        """Trains the program's runs to the end or to an interruption; ``(status, runs)``."""
        cfg, n = self.cfg, len(self.cfgs)
        metas, status, step = [dict.fromkeys(META, 0.0)] * n, ["running"] * n, 0
        restored = self.checkpoints.restore_latest(self.state) if self.checkpoints and cfg.resume else None
        if restored is not None:
            self.state, flat = restored
            metas = [{k: flat[f"{k}/{r}"] for k in META} for r in range(n)]
            status = [next(s for s, v in STOPPED.items() if v == int(flat[f"status/{r}"])) for r in range(n)]
            step = int(np.max(np.asarray(self.state.step)))
        self.intervals = [Interval(m, wall_offset=m["wall_s"]) for m in metas]
        self.status, self.summaries, self.logs = status, [None] * n, [None] * n
        for r, c in enumerate(self.cfgs):
            if status[r] == "running":
                self.logs[r] = RunLog(c, resumed_at=step if restored else None,
                                      saved=_saved(c) if restored else None, data=self.data_source)
            else:  # frozen before the checkpoint: its folder is complete
                self.summaries[r] = json.loads((Path(c.out) / "summary.json").read_text())
                self.logs[r] = _Finished(Path(c.out) / "metrics.jsonl")
        self.progress.advance(int(np.sum(np.asarray(self.state.step))))
        if restored is None:
            self._act(0, last=False, save=self.checkpoints is not None)
        outcome = self._loop(step)
        if outcome != "finished":  # no program follows: the logs below are written whole
            self.signals.closing()
        for r in range(n):
            if self.summaries[r] is None:
                self._close(r, "finished" if outcome == "finished" else outcome)
        if self.checkpoints is not None:
            self.checkpoints.close()
        return outcome, [{"status": s["status"], "summary": s, "records": log.records}
                         for s, log in zip(self.summaries, self.logs)]

    def _loop(self, step: int) -> str:
        cfg, chunk_size = self.cfg, 1
        periodic = [*self.actions[0], self.saver]
        try:
            while step < cfg.steps and self._running():
                stop = next_stop(step, cfg.steps, periodic)
                while step < stop and not self.signals.is_set and self._running():
                    n = steps_in_chunk(step, stop, len(self.x), cfg.batch_size, chunk_size)
                    start = time.perf_counter()
                    sums = [jnp.stack(v) for v in zip(*(i.sums() for i in self.intervals))]
                    self.state, cm = self.chunk(self.state, self.hyper, self.x, self.y, jnp.int32(n), *sums)
                    cm = jax.device_get(cm)
                    chunk_size = max(1, int(SECONDS_PER_CHUNK * n / max(time.perf_counter() - start, 1e-6)))
                    step += n
                    for r in self._active():
                        run_cm = jax.tree.map(lambda a, r=r: a[r], cm)
                        self.intervals[r].add(run_cm)
                        if run_cm.skipped_at:
                            self._freeze(r, run_cm)
                    self.progress.update(n * len(self._active()), float(np.mean(
                        [self.intervals[r].loss() for r in self._active()] or [0.0])), {})
                if step == stop and self._running():
                    self._act(stop, last=stop == cfg.steps, save=self.saver.due(stop, stop == cfg.steps))
                if self.signals.is_set and step < cfg.steps:
                    save_on_interrupt(self.state, self.checkpoints, self._meta(), self.signals.name, step)
                    return "interrupted"
        except KeyboardInterrupt:
            return report_abort(step)
        return "finished"

    def _act(self, step: int, last: bool, save: bool) -> None:
        """The periodic actions of every running run at ``step``, then the checkpoint."""
        for r in self._active():
            record = self.intervals[r].record(step) if step else {"step": 0, "wall_s": 0.0}
            state = run_state(self.state, r)
            for action in self.actions[r]:
                if action.due(step, last):
                    action(step, state, record)
            self.logs[r].write(record)
        if save and self.checkpoints is not None:
            self.checkpoints.save(self.state, self._meta(), step=step)

    def _freeze(self, r: int, cm) -> None:
        say(f"run {self.names[r]}:")
        status, _ = report_skip(self.cfgs[r], cm, self.logs[r], self.intervals[r], None, 0)
        self._close(r, status)

    def _close(self, r: int, status: str) -> None:
        interval, log = self.intervals[r], self.logs[r]
        self.status[r] = status if status in STOPPED else self.status[r]
        self.summaries[r] = {"status": status, "step": int(np.asarray(self.state.step)[r]),
                             "rule": self.cfgs[r].rule.spec, "steps_per_s": interval.steps_per_s(),
                             **log.last, **log.best(), "wall_s": round(interval.wall(), 3),
                             "rollbacks": 0, "out": self.cfgs[r].out}
        log.close(self.summaries[r], self.cfgs[r])

    def _active(self) -> list[int]:
        return [r for r, s in enumerate(self.status) if s == "running"]

    def _running(self) -> bool:
        return bool(self._active())

    def _meta(self) -> dict:
        meta = {f"{k}/{r}": v for r, i in enumerate(self.intervals) for k, v in i.meta().items()}
        return {**meta, **{f"status/{r}": STOPPED[s] for r, s in enumerate(self.status)}}


class _Finished:
    """The records of a run that was frozen before the checkpoint a sweep resumed from."""

    def __init__(self, path: Path):
        self.records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scale(config: Config) -> float:
    return getattr(config.rule, "feedback_scale", 1.0)


def _saved(config: Config) -> dict | None:
    path = Path(config.out) / "config.json" if config.out else None
    return json.loads(path.read_text()) if path and path.is_file() else None
