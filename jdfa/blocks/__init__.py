"""DFA and the other rules for nets made of Flax layers (conv nets and your own layers).

    net = jdfa.blocks.ConvNet(input_shape=(28, 28, 1))        # or FlaxNet(builder=...)
    state = jdfa.init_train_state(key, net, jdfa.dfa(), optax.adam(1e-3))
    step = jdfa.make_train_step(net, jdfa.dfa(), optax.adam(1e-3))

A `BlockNet` goes wherever a `jdfa.MLP` goes: `jdfa.init`, the train step, `jdfa.align`,
`jdfa.train` and its checkpoints and sweeps. Modules: `net` (the nets, their parameters and
forward pass), `feedback` (feedback shaped to each feedback point), `update` (the deltas by the
rule's plan and each block's update from its own VJP).
"""

from jdfa.blocks.feedback import BlockFeedback, check_feedback, init_feedback
from jdfa.blocks.net import BlockNet, BlockParams, ConvNet, FlaxNet, apply, check_params, init_params
from jdfa.blocks.update import Point, compute_update, forward

__all__ = [
    "BlockFeedback", "BlockNet", "BlockParams", "ConvNet", "FlaxNet", "Point", "apply",
    "check_feedback", "check_params", "compute_update", "forward", "init_feedback", "init_params",
]
