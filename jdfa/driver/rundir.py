"""The run folder before a run starts: what may be done with it, decided before anything is
created, so a refused start leaves no trace.

* A folder that holds a run is never written over: starting there is refused (continue it with
  ``resume``, or replace it whole with ``overwrite``).
* ``resume`` continues only the same run: the config saved in ``config.json`` must equal the given
  one except for run-length settings (`RESUMABLE`); the refusal lists every difference.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jdfa.driver.config import Config
from jdfa.driver.flags import spelled

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoints")
SWEEP_FILES = ("sweep_config.json", "sweep.json")
# Settings that say how long, how often or where a run goes, not what it computes.
RESUMABLE = ("steps", "eval_every", "align_every", "train_eval_size", "progress", "tensorboard",
             "checkpoint_every", "keep_checkpoints", "resume", "overwrite", "out", "data_dir",
             "mesh_data", "mesh_layers", "distributed", "divergence_factor")


def prepare(config: Config) -> dict | None:
    """Checks ``config.out`` and the optional dependencies; with ``overwrite``, empties the folder.

    Returns the saved ``config.json`` of the run to resume (None when not resuming). Raises
    ``ValueError`` naming the problem and the fix; nothing is created or changed then.
    """
    _check_tensorboard(config)
    if not config.out:
        return None
    out = Path(config.out)
    if config.resume:
        return _resumable(config, out)
    _take(out, config.overwrite)
    return None


def _check_tensorboard(config: Config) -> None:
    if config.tensorboard:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ValueError(f"{spelled('tensorboard')} needs tensorboardX: pip install "
                             "'jdfa[tensorboard]'") from None


def _take(out: Path, overwrite: bool) -> None:
    """Refuses a folder that holds a run or a sweep, or empties it (``overwrite``)."""
    held = sorted({name for name in (*RUN_FILES, *SWEEP_FILES) if (out / name).exists()})
    if held and not overwrite:
        raise ValueError(f"{out} already holds a run or sweep ({', '.join(held)}); continue it with "
                         f"{spelled('resume')}, replace it with {spelled('overwrite')}, or choose another "
                         f"{spelled('out', ...)}")
    if held:
        shutil.rmtree(out)


def _resumable(config: Config, out: Path) -> dict:
    if not (out / "checkpoints").is_dir() or not (out / "config.json").is_file():
        what = "does not exist" if not out.exists() else "holds no checkpoints or no config.json"
        raise ValueError(f"{spelled('resume')}: {out} {what}, so there is no run to continue; start it "
                         f"without {spelled('resume')}")
    saved = json.loads((out / "config.json").read_text())
    diffs = differences(saved["config"], config.to_dict())
    if diffs:
        raise ValueError(f"{spelled('resume')}: the run in {out} was trained with other settings: "
                         + "; ".join(f"{k}: saved {a!r}, given {b!r}" for k, a, b in diffs)
                         + f". Only run-length settings ({', '.join(RESUMABLE)}) may change on "
                         f"resume; repeat the run's settings, or start a new run with another "
                         f"{spelled('out', ...)}")
    if config.optimizer.schedule == "cosine" and saved["config"]["steps"] != config.steps:
        raise ValueError(f"{spelled('resume')}: {spelled('steps', config.steps)} differs from the "
                         f"run's {saved['config']['steps']}, and its cosine schedule is laid over its "
                         f"steps; keep {spelled('steps', saved['config']['steps'])}, or start a new run")
    return saved


def differences(saved: dict, given: dict) -> list[tuple[str, object, object]]:
    """``(dotted key, saved, given)`` for every setting that differs, run-length ones aside."""
    def flat(d, prefix=""):
        for key, value in d.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield prefix + key, value

    a, b = dict(flat(saved)), dict(flat(given))
    # A setting newer than the saved run (absent there) at its default changes nothing.
    default = dict(flat(Config().to_dict()))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if k not in RESUMABLE and a.get(k) != b.get(k)
            and not (k not in a and k in default and b.get(k) == default[k])]



def prepare_sweep(out: Path, configs: list[Config], names: list[str]) -> dict | None:
    """`prepare` for a sweep's folder (``configs[0]`` says resume or overwrite): a folder holding a
    run or a sweep is refused, emptied (overwrite), or checked to hold this sweep (resume: the same
    runs; each run's settings as `prepare` checks them). Returns the saved ``sweep_config.json``
    when resuming, else None."""
    config = configs[0]
    _check_tensorboard(config)
    if config.resume:
        path = out / "sweep_config.json"
        if not path.is_file():
            raise ValueError(f"{spelled('resume')}: {out} holds no sweep (no sweep_config.json), so "
                             f"there is no sweep to continue; start it without {spelled('resume')}")
        saved = json.loads(path.read_text())
        if saved["names"] != names:
            raise ValueError(f"{spelled('resume')}: the sweep in {out} has the runs {saved['names']}, "
                             f"the settings given make {names}; repeat the sweep's settings, or choose "
                             f"another {spelled('out', ...)}")
        for name, old, new in zip(names, saved["configs"], configs):
            diffs = differences(old, new.to_dict())
            if diffs:
                listed = "; ".join(f"{k}: saved {a!r}, given {b!r}" for k, a, b in diffs)
                raise ValueError(f"{spelled('resume')}: run {name} of the sweep in {out} was trained "
                                 f"with other settings: {listed}")
        return saved
    _take(out, config.overwrite)
    return None
