"""The net protocol: a kind of net jdfa does not ship, defined here through `jdfa.chain.ChainNet`
alone, trains with every rule that has a plan; the optimizer's decay and the sharding ask the net
which leaves are weights and which are stacked."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jdfa
from jdfa.chain import ChainNet, ChainParams
from jdfa.model import check_inputs


@dataclasses.dataclass(frozen=True)
class ResidualMLP(ChainNet):
    """``h_1 = f(x W_1 + b_1)``, ``h_i = h_{i-1} + f(h_{i-1} W_i + b_i)`` for ``i = 2..depth``,
    logits ``h_depth W_y + b_y``. The feedback points are the residual stream ``h_i`` itself (no
    point activation: a delta lands on the stream, as in DFA for transformers)."""

    in_features: int
    width: int
    depth_: int
    out_features: int
    loss: str = "softmax_cross_entropy"
    dropout: float = 0.0

    def init_params(self, key):
        keys = jax.random.split(key, self.depth_ + 1)
        sizes = [self.in_features] + [self.width] * self.depth_

        def dense(k, n_in, n_out):
            return {"w": jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}

        blocks = tuple(dense(keys[i], sizes[i], self.width) for i in range(self.depth_))
        return ChainParams(blocks, dense(keys[-1], self.width, self.out_features))

    def block_apply(self, i, p, h):
        a = h @ p["w"] + p["b"]
        if i == self.depth_:
            return a
        return jnp.tanh(a) if i == 0 else h + jnp.tanh(a)

    def check_inputs(self, x, y=None):
        check_inputs(self, x, y)

    def to_dict(self):
        return {"model": type(self).__name__, **dataclasses.asdict(self)}


NET = ResidualMLP(in_features=12, width=16, depth_=4, out_features=5)
RULES = [jdfa.bp(), jdfa.dfa(), jdfa.bdfa(2), jdfa.bdfa(2, "backprop"), jdfa.fa(), jdfa.fp(1),
         jdfa.mix(0.5, per="layer"), jdfa.shallow()]


def _batch(n=8):
    kx, ky = jax.random.split(jax.random.key(3))
    return jax.random.uniform(kx, (n, 12)), jax.random.randint(ky, (n,), 0, 5)


def test_the_net_answers_the_protocol():
    assert NET.depth == 4 and NET.point_shapes == ((16,),) * 4 and NET.point_sizes == [16] * 4
    assert jdfa.net.from_dict(NET.to_dict()) == NET
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.dfa())
    assert [f.shape for f in feedback.layers] == [(16, 5)] * 4
    x, _ = _batch()
    assert jdfa.apply(NET, params, x).shape == (8, 5)


def test_bp_equals_jax_grad(variant):
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    x, y = _batch()
    got = variant(lambda p, f: _update(jdfa.bp(), p, f, x, y))(params, feedback)
    want = jax.grad(lambda p: jdfa.loss(NET, p, x, y))(params)
    # two different programs: the plan's VJP chain against autodiff of the loss (float32 rounding)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


def _update(rule, params, feedback, x, y):
    return jdfa.update_direction(NET, rule, params, feedback, x, y)


def test_dfa_equals_a_hand_written_reference(variant):
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.dfa())
    x, y = _batch()
    got = variant(lambda p, f: _update(jdfa.dfa(), p, f, x, y))(params, feedback)
    # by hand: e = dL/dlogits (batch mean); delta_i = e B_i^T on the stream; the block's own
    # derivative: W_i gets h_{i-1}^T (delta_i * tanh'(a_i)), whether or not the block is residual.
    e = (jax.nn.softmax(jdfa.apply(NET, params, x)) - jax.nn.one_hot(y, 5)) / len(y)
    h, want = x, []
    for i, p in enumerate(params.blocks):
        a = h @ p["w"] + p["b"]
        d = (e @ feedback.layers[i].T) * (1 - jnp.tanh(a) ** 2)
        want.append({"w": h.T @ d, "b": d.sum(0)})
        h = jnp.tanh(a) if i == 0 else h + jnp.tanh(a)
    want = ChainParams(tuple(want), {"w": h.T @ e, "b": e.sum(0)})
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_every_rule_with_a_plan_trains_it(rule):
    (x, y), data = _task()
    config = jdfa.Config(net=NET, rule=rule, optimizer=jdfa.Optimizer("adam", lr=3e-3), steps=300,
                         batch_size=32, eval_every=300, train_eval_size=256, progress=False,
                         checkpoint=False)
    summary = jdfa.train(config, data=data)
    assert summary["status"] == "finished"
    assert summary["train_accuracy"] > (0.3 if rule.name == "shallow" else 0.6), summary


def _task():
    """A learnable task: the class is the arg-max of a fixed linear map of the input."""
    k1, k2 = jax.random.split(jax.random.key(5))
    x = np.asarray(jax.random.uniform(k1, (2048, 12)), np.float32)
    y = np.argmax(x @ np.asarray(jax.random.normal(k2, (12, 5))), axis=1).astype(np.int32)
    return (x, y), ((x[:1536], y[:1536]), (x[1536:], y[1536:]))


def test_mix_outside_a_training_step_asks_for_the_step():
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.mix(0.5))
    with pytest.raises(ValueError, match="StepContext"):
        jdfa.update_direction(NET, jdfa.mix(0.5), params, feedback, *_batch())


# --- weight decay asks the net for its weights ---------------------------------------------------


def _layernorm_net():
    def build(rngs):
        return [nnx.Sequential(nnx.LayerNorm(6, rngs=rngs), nnx.Linear(6, 8, rngs=rngs)),
                nnx.Linear(8, 3, rngs=rngs)]

    return jdfa.blocks.FlaxNet(input_shape=(6,), builder=build)


@pytest.mark.parametrize("net", [jdfa.blocks.ConvNet(input_shape=(12, 12, 1), channels=(2, 3), width=8,
                                                     kernel=3), _layernorm_net()],
                         ids=["conv", "flax_layernorm"])
def test_weight_decay_shrinks_kernels_and_no_bias_or_scale(net):
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    params = jax.tree.map(lambda p: p + 1.0, params)  # non-zero biases, so a decay would show
    optimizer = jdfa.Optimizer("sgd", lr=0.1, weight_decay=0.5).build(1, weight_mask=net.weight_mask)
    updates, _ = optimizer.update(jax.tree.map(jnp.zeros_like, params), optimizer.init(params), params)
    after = optax.apply_updates(params, updates)
    for path, before in jax.tree_util.tree_leaves_with_path(params):
        name = jax.tree_util.keystr(path)
        now = after
        for key in path:
            now = now[key.key] if hasattr(key, "key") else now[key.idx] if hasattr(key, "idx") else \
                getattr(now, key.name)
        factor = 1 - 0.1 * 0.5 if "kernel" in name else 1.0
        np.testing.assert_allclose(now, before * factor, rtol=1e-6, err_msg=name)
    assert any("scale" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)) \
        or isinstance(net, jdfa.blocks.ConvNet)


def test_decay_without_the_nets_mask_is_refused():
    with pytest.raises(ValueError, match="weight mask"):
        jdfa.Optimizer("adam", weight_decay=0.1).build(10)
