"""jdfa: BP, FA, DFA, Feedback Propagation and Blocked DFA in JAX, with every layer's update
formed in one parallel step."""

from jdfa.alignment import Alignment, alignment
from jdfa.feedback import Feedback, init_feedback
from jdfa.model import ACTIVATIONS, LOSSES, MLP, Dense, Params, apply, forward, loss, predict
from jdfa.rules import Rule, bdfa, bp, dfa, fa, fp, shallow
from jdfa.step import TrainState, init, init_train_state, make_train_step, train_step
from jdfa.train import Config, train
from jdfa.update import BATCH_MODES, update_direction, weight_update

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Alignment", "BATCH_MODES", "Dense", "Feedback", "LOSSES", "MLP", "Params",
    "Config", "Rule", "TrainState", "alignment", "apply", "bdfa", "bp", "dfa", "fa", "forward", "fp", "init",
    "init_feedback", "init_train_state", "loss", "make_train_step", "predict", "shallow",
    "train", "train_step", "update_direction", "weight_update",
]
