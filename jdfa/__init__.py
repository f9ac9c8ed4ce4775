"""jdfa: BP, FA, DFA, Feedback Propagation and Blocked DFA in JAX, with every layer's update
formed in one parallel step.

Every attribute is either a submodule under its own name or a function, class or constant whose
name no submodule has (a test walks the package to keep it so).

The driver (`Config`, `train`, `sweep`, `load_run`, the `driver` package) is imported on first use: it brings
orbax-checkpoint, which a user of the rules and nets alone should not wait for.
"""

import importlib

from jdfa import blocks, chain, data
from jdfa.activations import ACTIVATIONS
from jdfa.alignment import Alignment, align
from jdfa.allocator import tune_allocator
from jdfa.batch_modes import BATCH_MODES
from jdfa.feedback import Feedback, init_feedback
from jdfa.losses import LOSSES
from jdfa.mlp import MLP
from jdfa.model import Dense, Params, forward
from jdfa.net import Net, apply, loss, predict, update_direction
from jdfa.optimizers import Optimizer
from jdfa.rules import Rule, bdfa, bp, dfa, fa, fp, mix, shallow
from jdfa.sampling import generate
from jdfa.step import TrainState, init, init_train_state, make_train_step, train_step
from jdfa.update import weight_update

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Alignment", "BATCH_MODES", "Config", "Dense", "Feedback", "LOSSES", "MLP", "Net",
    "Optimizer", "Params", "Rule", "TrainState", "align", "apply", "bdfa", "blocks", "bp", "chain", "data",
    "dfa", "fa", "forward", "fp", "generate", "init", "init_feedback", "init_train_state", "load_run", "loss",
    "make_train_step", "mix", "predict", "shallow", "sweep", "train", "train_step", "tune_allocator",
    "update_direction", "weight_update",
]

_DRIVER_NAMES = ("Config", "load_run", "sweep", "train")


def __getattr__(name: str):
    """`Config`, `load_run`, `sweep`, `train` and `driver`, from `jdfa.driver` imported on first
    access."""
    if name != "driver" and name not in _DRIVER_NAMES:
        raise AttributeError(f"module 'jdfa' has no attribute {name!r}")
    driver = importlib.import_module("jdfa.driver")  # sets jdfa.driver: asked for once
    if name == "driver":
        return driver
    globals()[name] = getattr(driver, name)
    return globals()[name]


def __dir__() -> list[str]:
    """The module's names, the driver's not yet imported ones included."""
    return sorted({*globals(), "driver", *_DRIVER_NAMES})
