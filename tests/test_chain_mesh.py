"""Chain nets on a mesh of 8 simulated CPU devices equal the one-device run: the transformer on the
data axis, on the layer axis of its stacked decoder blocks and on both; the conv net on the data
axis. Through the driver, as ``jdfa train --mesh-data D --mesh-layers L`` runs them.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before JAX starts, as the README's
test command does. Sharding re-associates the batch sums (an all-reduce) and nothing else, so the
runs agree to float32 rounding over a few steps, not bit for bit.
"""

import dataclasses
import functools
import os
import socket
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jdfa
from jdfa.driver import from_flags

pytestmark = pytest.mark.skipif(
    jax.device_count() < 8,
    reason="needs 8 devices: run with XLA_FLAGS=--xla_force_host_platform_device_count=8")

MESHES = [(2, 4), (8, 1), (1, 4)]  # (data, layers)
RUN = dict(steps=4, batch_size=16, optimizer="adam", lr=3e-3, eval_every=2, train_eval_size=32,
           progress=False, checkpoint=False)
TRANSFORMER = dict(RUN, model="transformer", depth=4, width=16, heads=2, context=8, rule="dfa")


def _tokens(n=64, context=8, vocab=24, seed=0):  # PROCESS holds the same function
    text = np.random.default_rng(seed).integers(0, vocab, n * context + 1).astype(np.int32)
    x = text[:-1].reshape(n, context)
    return x, text[1:].reshape(n, context)


@functools.cache
def _alone(rule: str):
    """``(params, test loss)`` of the transformer run on one device (trained once per rule)."""
    config, data = from_flags(dict(TRANSFORMER, rule=rule), (_tokens(), _tokens(32, seed=1)))
    summary = jdfa.train(config, data=data)
    return jax.device_get(summary.state.params), summary["test_loss"]


def _close_to(summary, params, loss):
    chex.assert_trees_all_close(jax.device_get(summary.state.params), params, rtol=2e-5, atol=2e-6)
    assert summary["test_loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("rule", ["dfa", "bp"])
@pytest.mark.parametrize("mesh_data, mesh_layers", MESHES, ids=[f"data{d}-layers{n}" for d, n in MESHES])
def test_transformer_on_a_mesh_equals_one_device(rule, mesh_data, mesh_layers):
    config, data = from_flags(dict(TRANSFORMER, rule=rule, mesh_data=mesh_data, mesh_layers=mesh_layers),
                              (_tokens(), _tokens(32, seed=1)))
    summary = jdfa.train(config, data=data)
    _close_to(summary, *_alone(rule))
    state = summary.state
    # the decoder blocks' stacked weights are split over the layer axis: one block per device
    split = [leaf for leaf, stacked in zip(jax.tree.leaves(state.params),
                                           jax.tree.leaves(config.net.layer_axis_mask(state.params)))
             if stacked]
    assert split, "the transformer marks no stacked leaf"
    for leaf in split:
        assert leaf.sharding.spec == (P("layers") if mesh_layers > 1 else P())


def test_micro_points_on_the_layer_axis_equal_one_device():
    """Three feedback points a block (``--feedback-points micro``): the three stacked ``B`` of the
    decoder blocks are split over the layer axis with the blocks, and the run equals one device."""
    micro = dict(TRANSFORMER, feedback_points="micro")
    data = (_tokens(), _tokens(32, seed=1))
    config, _ = from_flags(micro, data)
    alone = jdfa.train(config, data=data)
    config, _ = from_flags(dict(micro, mesh_layers=4), data)
    split = jdfa.train(config, data=data)
    _close_to(split, jax.device_get(alone.state.params), alone["test_loss"])
    stacked = jax.tree.leaves(split.state.feedback.layers[1])
    assert len(stacked) == 3 and all(b.sharding.spec == P("layers") for b in stacked)


def test_conv_net_data_parallel_equals_one_device():
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    config, data = from_flags(dict(RUN, model="conv", width=16, rule="dfa"), ((x, y), (x[:32], y[:32])))
    config = dataclasses.replace(config, net=dataclasses.replace(config.net, channels=(4, 8)))
    alone = jdfa.train(config, data=data)
    sharded = jdfa.train(dataclasses.replace(config, mesh_data=8), data=data)
    _close_to(sharded, jax.device_get(alone.state.params), alone["test_loss"])


# One process of a 2-process run: 4 devices each, one 2 x 4 mesh over both, joined through the
# environment as `jdfa train --distributed` is on a plain machine; process 0 saves the params.
PROCESS = """
import jax
import numpy as np
from jax.experimental import multihost_utils
import jdfa
from jdfa.driver import from_flags

def tokens(n=64, context=8, vocab=24, seed=0):
    text = np.random.default_rng(seed).integers(0, vocab, n * context + 1).astype(np.int32)
    return text[:-1].reshape(n, context), text[1:].reshape(n, context)

config, data = from_flags(dict({flags!r}, mesh_data=2, mesh_layers=4, distributed=True),
                          (tokens(), tokens(32, seed=1)))
assert jax.process_count() == 2 and jax.local_device_count() == 4
summary = jdfa.train(config, data=data)
params = [np.asarray(multihost_utils.process_allgather(p, tiled=True))
          for p in jax.tree.leaves(summary.state.params)]
if jax.process_index() == 0:
    np.savez({out!r}, loss=summary["test_loss"], *params)
"""


def test_a_two_process_transformer_run_equals_one_process(tmp_path):
    with socket.socket() as s:  # a free port on this machine for the coordinator
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "process.py"
    out = tmp_path / "params.npz"
    script.write_text(textwrap.dedent(PROCESS.format(flags=TRANSFORMER, out=str(out))))
    procs = [subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
             "JDFA_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JDFA_NUM_PROCESSES": "2",
             "JDFA_PROCESS_ID": str(i)}) for i in range(2)]
    for p in procs:
        output = p.communicate(timeout=600)[0]
        assert p.returncode == 0, output[-3000:]
    saved = np.load(out)
    params, loss = _alone("dfa")
    want = [np.asarray(p) for p in jax.tree.leaves(params)]
    chex.assert_trees_all_close([saved[f"arr_{i}"] for i in range(len(want))], want, rtol=2e-5, atol=2e-6)
    assert float(saved["loss"]) == pytest.approx(loss, rel=1e-5)


def test_distributed_settings_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv("JDFA_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JDFA_NUM_PROCESSES and JDFA_PROCESS_ID must be whole numbers"):
        jdfa.parallel.initialize_distributed()
