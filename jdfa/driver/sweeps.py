"""Runs: `train(config)` (one run) and `sweep(config, seeds=5, lr=[1e-3, 3e-4])` (many), both
trained by the one loop (`loop.Program`): a run is a sweep of one.

Read top to bottom: check the run or sweep folder (`rundir`) and the data; for a sweep, expand it
into runs (`grid`) and split them into programs (runs of one structure, at most as many as
`packing` allows); train each program. A run alone writes its files and checkpoints to ``out``; a
sweep's runs write to ``out/<name>`` and each program's checkpoints to ``out/checkpoints/<p>``;
``resume`` continues either.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jdfa import parallel
from jdfa.allocator import tune_allocator
from jdfa.driver import grid, packing, rundir
from jdfa.driver.config import Config
from jdfa.driver.flags import load_data, source_of
from jdfa.driver.loop import Program
from jdfa.driver.progress import Progress
from jdfa.driver.signals import SignalFlag
from jdfa.driver.stops import STOPPED_BY_USER
from jdfa.driver.summary import Interrupted, Summary
from jdfa.driver.sweep_report import write_report
from jdfa.validate import check_int


def train(config: Config, *, data=None) -> Summary:
    """Trains ``config.net`` with ``config.rule`` as ``config`` says: a program of one run.

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
    rundir.prepare(config)  # refuses a bad start before anything is created
    data, source = _start(config, data)
    mesh = None
    if config.mesh_data * config.mesh_layers > 1:
        mesh = parallel.make_mesh(config.mesh_data, config.mesh_layers)
        parallel.check_batch(mesh, config.batch_size)
    with SignalFlag(saves=bool(config.out and config.checkpoint)) as signals:  # Ctrl-C from here on
        progress = Progress(config.steps, 0, config.progress)
        program = Program([config], [None], data, mesh, progress, signals,
                          Path(config.out) / "checkpoints" if config.out and config.checkpoint else None,
                          source)
        _, runs = program.train()
        progress.close()
    summary = Summary(runs[0]["summary"], state=program.run_state(0))
    if summary["status"] in STOPPED_BY_USER:
        raise Interrupted(summary)
    return summary


def sweep(config: Config, *, data=None, seeds=None, max_parallel: int | None = None, **axes) -> dict:
    """Trains the cross product of ``seeds`` (an int n: 0..n-1, or a list) and ``axes`` (flag
    name -> values: ``lr=[1e-3, 3e-4]``, ``feedback_scale=...``, ``weight_decay=...``, and
    structural ones such as ``rule=["dfa", "bdfa25"]``, ``block_size=[50, 25]``, ``depth=...``)
    around ``config``; see `train_runs`."""
    loaded = data if data is not None else load_data(config.dataset, config.data_dir, config.net.in_features)
    # `data` as given, so that the runs' config.json say where the data came from.
    return train_runs(grid.expand(config, loaded, seeds, **axes), data=data, max_parallel=max_parallel)


def train_runs(configs: list[Config], *, data=None, max_parallel: int | None = None) -> dict:
    """Trains ``configs`` (runs that differ only in `grid.sweepable` settings) as few programs.

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
    data, source = _start(first, data)
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
            program = Program(cfgs, [names[i] for i in members], data, mesh, progress, signals,
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


def _start(first: Config, data):
    """``(data, source)``: what `train` and `train_runs` do before their first program: the
    allocator (before the first step: `jdfa.allocator`), the distributed runtime, and the data,
    loaded unless given and checked against the (first) run; ``source`` says where it came from."""
    tune_allocator()
    if first.distributed:
        parallel.initialize_distributed()
    source = source_of(data, first.dataset, first.data_dir)
    data = data if data is not None else load_data(first.dataset, first.data_dir, first.net.in_features)
    check_data(first, *data[0], *data[1])
    return data, source


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


def _check_sweep(configs: list[Config]) -> None:
    if not configs:
        raise ValueError("a sweep needs at least one run")
    shared = {k: v for k, v in configs[0].to_dict().items() if k not in ("net", "rule", "optimizer", "seed")}
    for config in configs:
        own = {k: v for k, v in config.to_dict().items() if k in shared}
        if own != shared:
            diff = sorted(k for k in shared if own[k] != shared[k])
            raise ValueError(f"the runs of a sweep share every run setting; they differ in {diff}")
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
