"""Sharded training on 8 simulated CPU devices equals the single-device step.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before JAX starts, as the README's
test command does; real XLA SPMD partitioning runs over the simulated devices.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import jdfa
from jdfa import parallel
from jdfa.driver import from_flags

pytestmark = pytest.mark.skipif(
    jax.device_count() < 8,
    reason="needs 8 devices: run with XLA_FLAGS=--xla_force_host_platform_device_count=8")

# depth 9: params.hidden has 8 layers, so it splits evenly over 8 or 4 layer devices.
NET = jdfa.MLP(in_features=12, width=16, depth=9, out_features=4)
MESHES = [(8, 1), (1, 8), (2, 4)]  # (data, layers)
RULES = [jdfa.dfa(), jdfa.bdfa(3), jdfa.bdfa(3, "backprop"), jdfa.fp(2), jdfa.bp()]


def _batch(n=32):
    x = jax.random.normal(jax.random.key(1), (n, NET.in_features))
    return x, jnp.arange(n) % NET.out_features


@pytest.mark.parametrize("data, layers", MESHES, ids=[f"data{d}-layers{n}" for d, n in MESHES])
@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.spec)
def test_sharded_step_equals_unsharded(rule, data, layers):
    opt = optax.sgd(0.1)
    x, y = _batch()
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, opt)
    step = jdfa.make_train_step(NET, rule, opt)
    for _ in range(3):
        state, metrics = step(state, x, y)
    want = jax.device_get(state.params)
    mesh = parallel.make_mesh(data, layers)
    sharded = parallel.shard_state(mesh, jdfa.init_train_state(jax.random.key(0), NET, rule, opt), NET)
    sharded_step = jdfa.make_train_step(NET, rule, opt, mesh=mesh)
    for _ in range(3):
        sharded, sharded_metrics = sharded_step(sharded, x, y)
    chex.assert_trees_all_close(jax.device_get(sharded.params), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sharded_metrics["loss"], metrics["loss"], rtol=1e-5)
    # the layout is what was asked for
    spec = sharded.params.hidden.w.sharding.spec
    assert spec == (P("layers") if layers > 1 else P())
    assert sharded.params.input.w.sharding.spec == P()
    assert len(sharded.params.hidden.w.sharding.device_set) == data * layers


def test_layer_axis_splits_hidden_stack_feedback_and_optimizer_state():
    mesh = parallel.make_mesh(1, 8)
    rule = jdfa.bdfa(1)  # feedback.hidden has depth - 1 = 8 layers, feedback.output 1
    state = parallel.shard_state(mesh, jdfa.init_train_state(jax.random.key(0), NET, rule,
                                                             optax.adam(1e-3)), NET)
    mu = state.opt_state[0].mu
    for leaf in (state.params.hidden.w, state.params.hidden.b, state.feedback.hidden, mu.hidden.w):
        assert leaf.sharding.spec == P("layers")
        assert leaf.addressable_shards[0].data.shape[0] == 1  # one layer per device
    assert state.feedback.output.sharding.spec == P()  # 1 layer: does not split, replicated
    assert mu.input.w.sharding.spec == P()


def test_driver_with_a_mesh_matches_single_device():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype(np.float32)
    y = rng.integers(0, 4, 256).astype(np.int32)
    config, data = from_flags(dict(rule="dfa", depth=9, width=16, steps=40, batch_size=32,
                                   optimizer="sgd", lr=0.05, eval_every=20, progress=False),
                              ((x, y), (x, y)))
    single = jdfa.train(config, data=data)
    sharded = jdfa.train(dataclasses.replace(config, mesh_data=2, mesh_layers=4), data=data)
    chex.assert_trees_all_close(jax.device_get(sharded["state"].params),
                                jax.device_get(single["state"].params), rtol=1e-5, atol=1e-6)
    assert sharded["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=1e-6)


def test_mesh_errors():
    with pytest.raises(ValueError, match="needs 16 devices"):
        parallel.make_mesh(4, 4)
    with pytest.raises(ValueError, match="does not split over 8 data devices"):
        parallel.check_batch(parallel.make_mesh(8, 1), 12)
