"""Checkpoints of a `jdfa.TrainState` (and a few named numbers beside it) with orbax-checkpoint.

Orbax writes each checkpoint into a temporary folder and renames it into place when complete, so a
crash while saving never leaves a half-written checkpoint under a step's name: the last good one
stays readable. A Ctrl-C that arrives during a save is held until the save is complete and then
handed on (orbax's writer threads cannot be stopped part-way); a save that fails otherwise removes
its temporary folder. If the newest checkpoint is unreadable all the same (a disk fault, a hand
edit), `Checkpoints.restore_latest` warns and falls back to the one before it.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import threading
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


def _drop_empty(tree):
    # Orbax refuses zero-size arrays, which a depth-1 net's hidden stack and a rule's unused
    # feedback stack are; they carry no information, so they are left out and rebuilt on restore.
    return jax.tree.map(lambda x: None if math.prod(x.shape) == 0 else x, tree)


def _refill_empty(like, restored):
    leaves, treedef = jax.tree.flatten(like)
    stored = iter(jax.tree.leaves(restored))
    return treedef.unflatten([jnp.zeros(x.shape, x.dtype) if math.prod(x.shape) == 0 else next(stored)
                              for x in leaves])


@contextlib.contextmanager
def _sigint_held():
    """Holds a SIGINT that arrives inside the block and raises it again when the block ends, under
    the handler that was in place (the driver's: the second Ctrl-C aborts). Cutting a save short
    from the main thread left orbax's writer threads re-creating the temporary folder removed
    after it; a save takes well under a second, so the abort waits for it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread; a save elsewhere cannot be interrupted
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            signal.raise_signal(signal.SIGINT)


class Checkpoints:
    """The checkpoints of one run, in ``directory``, keeping the last ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_handlers=ocp.StandardCheckpointHandler())

    def save(self, state, meta: dict[str, float] | None = None, step: int | None = None) -> None:
        """Saves ``state`` and the numbers ``meta`` under ``step`` (default: the state's step
        count; a sweep's stacked state, with a count per run, names its own), a no-op if that step
        is saved already. A Ctrl-C during the save is raised again once the save is complete; a
        save that fails leaves no partial folder behind and re-raises."""
        step = int(state.step) if step is None else step
        if step in self.manager.all_steps():
            return
        meta = {k: np.float64(v) for k, v in (meta or {}).items()}
        item = ocp.args.StandardSave({"state": _drop_empty(state), "meta": meta})
        with _sigint_held():
            try:
                self.manager.save(step, args=item)
                self.manager.wait_until_finished()
            except BaseException:
                # Orbax's threads may still be writing; let them end, or they would re-create the
                # folder removed below.
                with contextlib.suppress(BaseException):
                    self.manager.wait_until_finished()
                self.remove_partial()
                raise

    def remove_partial(self) -> None:
        """Deletes the temporary folders of saves that did not complete."""
        for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def meta_keys(self) -> set[str] | None:
        """The names of the numbers saved beside the newest checkpoint whose metadata reads (None:
        there is none; `restore_latest` warns of the unreadable ones)."""
        for step in reversed(self.steps()):
            try:
                return set(self.manager.item_metadata(step)["meta"].keys())
            except Exception:  # orbax raises many types for damaged files
                continue
        return None

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest(self, like):
        """``(state, meta)`` of the newest readable checkpoint, the state shaped and placed like
        ``like`` (a state or its abstract shapes with shardings) and ``meta`` the numbers saved
        with it; None if there is none.

        An unreadable checkpoint is skipped with a warning naming it and the error.
        """
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
            like)
        for step in reversed(self.steps()):
            self._check_layout(step, abstract)
            try:
                keys = self.manager.item_metadata(step)["meta"].keys()
                target = {"state": _drop_empty(abstract), "meta": dict.fromkeys(keys, np.float64(0))}
                restored = self.manager.restore(step, args=ocp.args.StandardRestore(target))
                meta = {k: float(v) for k, v in restored["meta"].items()}
                return _refill_empty(abstract, restored["state"]), meta
            except Exception as err:  # orbax raises many types for damaged files
                warnings.warn(f"checkpoint of step {step} in {self.directory} is unreadable "
                              f"({type(err).__name__}: {err}); falling back to the previous one",
                              RuntimeWarning, stacklevel=2)
        return None

    def _check_layout(self, step: int, like) -> None:
        """Raises ``ValueError`` if the checkpoint of ``step`` holds parameters of other shapes than
        ``like``'s (a layout changed by a newer jdfa, or another net): orbax would fail deep inside,
        and the run must not fall back to an older checkpoint or start afresh unasked."""
        try:
            stored = self.manager.item_metadata(step)["state"]["params"]
        except Exception:  # unreadable metadata: restore_latest reports the checkpoint as damaged
            return
        if not hasattr(like, "params"):
            return
        got = sorted(tuple(m.shape) for m in jax.tree.leaves(stored) if hasattr(m, "shape"))
        want = sorted(tuple(x.shape) for x in jax.tree.leaves(_drop_empty(like.params)))
        if got != want:
            raise ValueError(f"the checkpoint of step {step} in {self.directory} holds parameters "
                             f"of another layout than this run's net ({len(got)} arrays, shapes "
                             f"{got[:4]}... where the net has {len(want)}, {want[:4]}...): it was "
                             "written for another net, or by a jdfa that laid the parameters out "
                             "differently (a TransformerLM's decoder blocks are stacked on one "
                             "axis since issue 30); start the run afresh (--overwrite), or continue "
                             "it with the jdfa that wrote it")

    def close(self) -> None:
        self.manager.close()
