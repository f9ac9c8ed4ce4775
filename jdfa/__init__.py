"""jdfa: BP, FA, DFA, Feedback Propagation and Blocked DFA in JAX, with every layer's update
formed in one parallel step.

Every attribute is either a submodule under its own name or a function, class or constant whose
name no submodule has (a test walks the package to keep it so).
"""

from jdfa import blocks, chain, data
from jdfa.activations import ACTIVATIONS
from jdfa.alignment import Alignment, align
from jdfa.batch_modes import BATCH_MODES
from jdfa.driver import Config, sweep, train
from jdfa.feedback import Feedback, init_feedback
from jdfa.losses import LOSSES
from jdfa.mlp import MLP
from jdfa.model import Dense, Params, forward
from jdfa.net import Net, apply, loss, predict, update_direction
from jdfa.optimizers import Optimizer
from jdfa.rules import Rule, bdfa, bp, dfa, fa, fp, mix, shallow
from jdfa.step import TrainState, init, init_train_state, make_train_step, train_step
from jdfa.update import weight_update

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Alignment", "BATCH_MODES", "Config", "Dense", "Feedback", "LOSSES", "MLP", "Net",
    "Optimizer", "Params", "Rule", "TrainState", "align", "apply", "bdfa", "blocks", "bp", "chain", "data",
    "dfa", "fa", "forward", "fp", "init", "init_feedback", "init_train_state", "loss", "make_train_step",
    "mix", "predict", "shallow", "sweep", "train", "train_step", "update_direction", "weight_update",
]
