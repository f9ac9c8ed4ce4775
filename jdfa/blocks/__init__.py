"""DFA and the other rules for nets made of Flax layers (conv nets, a causal transformer language
model and your own layers).

    net = jdfa.blocks.ConvNet(input_shape=(28, 28, 1))        # or FlaxNet(builder=...)
    state = jdfa.init_train_state(key, net, jdfa.dfa(), optax.adam(1e-3))
    step = jdfa.make_train_step(net, jdfa.dfa(), optax.adam(1e-3))

A `BlockNet` is a `jdfa.chain.ChainNet` of Flax NNX blocks: it goes wherever a `jdfa.MLP` goes
(`jdfa.init`, the train step, `jdfa.align`, `jdfa.train` and its checkpoints and sweeps), trained
by the rule's plan (`jdfa.chain`).
"""

from jdfa.blocks.net import BlockNet, ConvNet, FlaxNet
from jdfa.blocks.transformer import TransformerLM

__all__ = ["BlockNet", "ConvNet", "FlaxNet", "TransformerLM"]
