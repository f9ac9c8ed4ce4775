"""Nets of Flax blocks (`jdfa.blocks`): every rule's plan against the MLP's stacked deltas, BP
against `jax.grad`, the identities on a conv net, and the errors."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jdfa
from jdfa import blocks, chain, rules
from jdfa.driver import chunks
from jdfa.model import Dense, Params

MLP = jdfa.MLP(12, 8, 4, 3)
SMALL_CONV = blocks.ConvNet(input_shape=(12, 12, 1), channels=(3, 4), kernel=3, width=16, classes=5)


def dense_net(net: jdfa.MLP, **fields) -> blocks.FlaxNet:
    """``net`` as Flax blocks: one ``nnx.Linear`` per hidden layer, then the output layer."""
    def build(rngs):
        sizes = [net.in_features] + [net.width] * net.depth + [net.out_features]
        return [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]

    return blocks.FlaxNet(input_shape=(net.in_features,), activation=net.activation, loss=net.loss,
                          builder=build, **fields)


def as_blocks(params: Params) -> chain.ChainParams:
    hidden = [Dense(w, b) for w, b in zip(params.hidden.w, params.hidden.b)]
    dense = [{"kernel": d.w, "bias": d.b} for d in [params.input, *hidden, params.output]]
    return chain.ChainParams(tuple(dense[:-1]), dense[-1])


def as_block_feedback(rule, feedback: jdfa.Feedback, like: chain.ChainFeedback):
    """The MLP's feedback laid out per feedback point, as the plan reads it: ``error`` sources take
    ``feedback.output`` in order, ``delta`` sources ``feedback.hidden``, ``fa`` the hidden stack
    below the top and the output stack at the top."""
    out, hid, layers = iter(feedback.output), iter(feedback.hidden), []
    plan = rule.plan(MLP.depth)
    for i, (source, slot) in enumerate(zip(plan, like.layers)):
        if source.kind == "backprop":
            layers.append(None)
        elif source.kind == "fa":
            b = next(out if i == len(plan) - 1 else hid)
            layers.append({**slot, "kernel": b})
        else:
            layers.append(next(out if source.kind == "error" else hid))
    assert next(out, None) is None and next(hid, None) is None, "feedback left unread"
    return chain.ChainFeedback(tuple(layers))


def batch(net, n=6, seed=1):
    x = jax.random.uniform(jax.random.key(seed), (n, net.in_features))
    return x, jnp.arange(n) % net.out_features


PLANNED = [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.dfa(use_derivative=False), jdfa.fp(0), jdfa.fp(1),
           jdfa.fp(3), jdfa.fp(2, "error"), jdfa.fp(4), jdfa.bdfa(1), jdfa.bdfa(3), jdfa.bdfa(4),
           jdfa.bdfa(3, "backprop"), jdfa.bdfa(2, "backprop"), jdfa.bdfa(1, "backprop"),
           jdfa.shallow()]


@pytest.mark.parametrize("rule", PLANNED, ids=str)
def test_plan_on_dense_blocks_equals_the_mlps_deltas(rule, variant):
    """Every rule's plan, run on ``nnx.Linear`` blocks, gives the update the MLP's stacked deltas
    give with the same weights and feedback: the plan is the rule."""
    net = dense_net(MLP)
    params, feedback = jdfa.init(jax.random.key(0), MLP, rule)
    like = jdfa.init(jax.random.key(0), net, rule)[1]
    block_feedback = as_block_feedback(rule, feedback, like) if rule.plan(4) else like
    x, y = batch(MLP)
    want = variant(lambda p, f: jdfa.update_direction(MLP, rule, p, f, x, y))(params, feedback)
    got = variant(lambda p, f: jdfa.update_direction(net, rule, p, f, x, y))(as_blocks(params),
                                                                              block_feedback)
    chex.assert_trees_all_close(got, as_blocks(want), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per", ["step", "layer"])
def test_mix_on_dense_blocks_equals_the_mlps(per, variant):
    """Mix's plan draws BP or DFA per step or layer from the step's key: the same draws, and the
    same deltas, on blocks as on the MLP."""
    net, rule = dense_net(MLP), jdfa.mix(0.5, per=per)
    params, feedback = jdfa.init(jax.random.key(0), MLP, rule)
    block_feedback = chain.ChainFeedback(tuple(feedback.output))
    x, y = batch(MLP)
    for seed in range(4):  # draws that differ
        context = rules.StepContext(jnp.int32(3), jax.random.key(seed))
        want = variant(lambda p, f, c=context: jdfa.update_direction(MLP, rule, p, f, x, y, context=c))(
            params, feedback)
        got = variant(lambda p, f, c=context: jdfa.update_direction(net, rule, p, f, x, y, context=c))(
            as_blocks(params), block_feedback)
        chex.assert_trees_all_close(got, as_blocks(want), rtol=1e-5, atol=1e-6)


def test_dfa_with_dropout_on_dense_blocks_equals_the_mlps():
    mlp, rule = jdfa.MLP(12, 8, 4, 3, dropout=0.3), jdfa.dfa()
    net = dense_net(mlp, dropout=0.3)
    params, feedback = jdfa.init(jax.random.key(0), mlp, rule)
    context = rules.StepContext(jnp.int32(3), jax.random.key(7))
    x, y = batch(mlp)
    want = jdfa.update_direction(mlp, rule, params, feedback, x, y, context=context)
    got = jdfa.update_direction(net, rule, as_blocks(params), chain.ChainFeedback(tuple(feedback.output)),
                                x, y, context=context)
    chex.assert_trees_all_close(got, as_blocks(want), rtol=1e-5, atol=1e-6)
    plain = jdfa.update_direction(net, rule, as_blocks(params), chain.ChainFeedback(tuple(feedback.output)),
                                  x, y)
    assert not np.allclose(plain.blocks[1]["kernel"], got.blocks[1]["kernel"])  # units were dropped


def layer_norm_net():
    def build(rngs):
        return [nnx.Conv(1, 3, (3, 3), rngs=rngs),
                nnx.Sequential(nnx.LayerNorm(3, rngs=rngs), nnx.Conv(3, 2, (3, 3), strides=2, rngs=rngs)),
                nnx.Sequential(lambda h: h.reshape(h.shape[0], -1), nnx.Linear(18, 7, rngs=rngs))]

    return blocks.FlaxNet(input_shape=(6, 6, 1), activation="relu", builder=build)


@pytest.mark.parametrize("net", [SMALL_CONV, layer_norm_net()], ids=["conv", "layer_norm"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_bp_equals_jax_grad_of_the_flax_model(net, loss, variant):
    net = dataclasses.replace(net, loss=loss)
    params, feedback = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x, y = batch(net)
    if loss == "mse":
        y = jax.nn.one_hot(y, net.out_features)
    got = variant(lambda p: jdfa.update_direction(net, jdfa.bp(), p, feedback, x, y))(params)
    want = variant(jax.grad(lambda p: jdfa.loss(net, p, x, y)))(params)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def test_conv_identities(variant):
    """BDFA with blocks covering the net is DFA; FA with the true weights as feedback is BP."""
    net, x_y = SMALL_CONV, batch(SMALL_CONV)
    params, feedback = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    dfa = variant(lambda p, f: jdfa.update_direction(net, jdfa.dfa(), p, f, *x_y))(params, feedback)
    for k in (3, 10):
        bdfa = variant(lambda p, f, k=k: jdfa.update_direction(net, jdfa.bdfa(k), p, f, *x_y))(
            params, feedback)
        # Equal maths, two compiled programs: their fusion and summation order differ by CPU (an
        # AVX-512 machine differed in the 7th digit). A kernel entry sums ~900 products (12x12
        # positions x 6 examples): rounding of eps 1.2e-7 each adds up to ~sqrt(900) eps = 4e-6
        # relative -> rtol 1e-5 (as FA against BP below), atol 1e-6 for entries near zero.
        chex.assert_trees_all_close(bdfa, dfa, rtol=1e-5, atol=1e-6)
    true_weights = chain.ChainFeedback(params.blocks[1:] + (params.output,))
    fa = variant(lambda p, f: jdfa.update_direction(net, jdfa.fa(), p, f, *x_y))(params, true_weights)
    no_feedback = jdfa.init(jax.random.key(0), net, jdfa.bp())[1]
    bp = variant(lambda p: jdfa.update_direction(net, jdfa.bp(), p, no_feedback, *x_y))(params)
    chex.assert_trees_all_close(fa, bp, rtol=1e-5, atol=1e-6)
    fa_random = jdfa.update_direction(net, jdfa.fa(), params, jdfa.init(jax.random.key(0), net, jdfa.fa())[1],
                                      *x_y)
    assert not np.allclose(fa_random.blocks[0]["kernel"], bp.blocks[0]["kernel"], atol=1e-4)
    chex.assert_trees_all_close(fa_random.output, bp.output)  # the output layer always gets e


def test_feedback_is_shaped_to_each_feedback_point():
    net = SMALL_CONV
    assert net.point_shapes == ((10, 10, 3), (3, 3, 4), (16,))
    feedback = jdfa.init(jax.random.key(0), net, jdfa.dfa())[1]
    assert [b.shape for b in feedback.layers] == [(300, 5), (36, 5), (16, 5)]
    fp = jdfa.init(jax.random.key(0), net, jdfa.fp(1))[1]
    assert [None if b is None else b.shape for b in fp.layers] == [(300, 16), (36, 16), None]
    bp = jdfa.init(jax.random.key(0), net, jdfa.bp())[1]
    assert bp.layers == (None, None, None)
    fa = jdfa.init(jax.random.key(0), net, jdfa.fa())[1]
    params = jdfa.init(jax.random.key(0), net, jdfa.fa())[0]
    chex.assert_trees_all_equal_shapes(fa.layers, params.blocks[1:] + (params.output,))


def bands(n, net=SMALL_CONV, seed=0):
    """Images of noise with one bright band of rows, the band the class: a task a conv net learns."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % net.out_features
    x = 0.2 * rng.uniform(size=(n,) + net.input_shape)
    for i, label in enumerate(y):
        x[i, 2 * label:2 * label + 2] += 0.8
    return jnp.asarray(x.reshape(n, -1), jnp.float32), jnp.asarray(y)


def test_conv_dfa_trains_and_leaves_feedback_fixed():
    net, rule, opt = SMALL_CONV, jdfa.dfa(), optax.adam(3e-3)
    state = jdfa.init_train_state(jax.random.key(0), net, rule, opt)
    feedback = jax.tree.map(np.array, state.feedback)
    step = jdfa.make_train_step(net, rule, opt)
    x, y = bands(n=40)
    losses = []
    for _ in range(120):
        state, metrics = step(state, x, y)
        losses.append(float(metrics["loss"]))
    assert metrics["layer_update_norms"].shape == (4,)
    accuracy = float(jnp.mean(jnp.argmax(jdfa.apply(net, state.params, x), axis=1) == y))
    assert losses[-1] < 0.7 * losses[0] and accuracy >= 0.8, (losses[-1], accuracy)
    chex.assert_trees_all_equal(state.feedback, feedback)
    alignment = jdfa.align(net, rule, state.params, state.feedback, x, y)
    assert alignment.angle.shape == (4,) and float(alignment.angle[-1]) < 1e-2  # output: BP's


@dataclasses.dataclass(frozen=True)
class _Planless(rules.FeedbackRule):
    """A rule that says its MLP deltas itself (as README's sign-of-e example): no plan to run."""

    def feedback_layout(self, net):
        return rules.FeedbackLayout(net.depth, 0)


def test_errors_name_the_problem():
    net = SMALL_CONV
    params, feedback = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    x, y = batch(net)
    with pytest.raises(ValueError, match="no plan"):
        jdfa.init(jax.random.key(0), net, _Planless())
    with pytest.raises(ValueError, match="batch_mode='mean'"):
        jdfa.update_direction(net, jdfa.dfa(), params, feedback, x, y, batch_mode="batch_average")
    with pytest.raises(ValueError, match="shared_feedback"):
        jdfa.init(jax.random.key(0), net, jdfa.dfa(shared_feedback=True))
    with pytest.raises(ValueError, match="feedback does not fit"):
        jdfa.update_direction(net, jdfa.fp(1), params, feedback, x, y)
    with pytest.raises(ValueError, match="in_features=144"):
        jdfa.update_direction(net, jdfa.dfa(), params, feedback, jnp.ones((6, 100)), y)
    other = jdfa.init(jax.random.key(0), dataclasses.replace(net, channels=(3, 5)), jdfa.dfa())[0]
    with pytest.raises(ValueError, match="params do not fit"):
        jdfa.update_direction(net, jdfa.dfa(), other, feedback, x, y)
    with pytest.raises(ValueError, match="BatchNorm"):
        _ = blocks.FlaxNet(input_shape=(4,), builder=lambda rngs: [
            nnx.Sequential(nnx.Linear(4, 3, rngs=rngs), nnx.BatchNorm(3, rngs=rngs)),
            nnx.Linear(3, 2, rngs=rngs)]).depth
    with pytest.raises(ValueError, match="too small"):
        blocks.ConvNet(input_shape=(8, 8, 1))
    with pytest.raises(TypeError, match="builder"):
        blocks.FlaxNet(input_shape=(4,))


# --- the driver: the command line on MNIST, resume, the CPU's stepwise chunks ---------------------

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_cli_model_conv_dfa_trains_on_mnist(tmp_path):
    """``--model conv --rule dfa`` at reduced size (channels of LeNet, a Dense layer of 64, 300
    steps): DFA trains the conv net past 90 %, where the shallow control needs 5 epochs to reach
    91 % (experiment 11)."""
    args = ["--model", "conv", "--width", "64", "--steps", "300", "--eval-every", "300", "--lr", "1e-3",
            "--train-eval-size", "1000", "--no-progress", "--data-dir", str(MNIST_DIR)]
    done = subprocess.run([sys.executable, "-m", "jdfa", "train", *args, "--rule", "dfa",
                           "--out", str(tmp_path / "dfa")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    config = json.loads((tmp_path / "dfa" / "config.json").read_text())["config"]
    assert config["net"]["model"] == "ConvNet" and config["net"]["width"] == 64
    assert summary["test_accuracy"] >= 0.90, summary
    mixed = subprocess.run([sys.executable, "-m", "jdfa", "train", *args[:4], "--steps", "20", *args[6:],
                            "--rule", "mix"], capture_output=True, text=True)  # mix has a plan too
    assert mixed.returncode == 0 and json.loads(mixed.stdout)["rule"] == "mix50", mixed.stderr


def test_conv_run_resumes_to_the_uninterrupted_metrics(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(512, 144)).astype(np.float32)
    y = (x[:, :72].mean(axis=1) > x[:, 72:].mean(axis=1)).astype(np.int32)
    data = ((x, y), (x[:128], y[:128]))
    base = jdfa.Config(net=dataclasses.replace(SMALL_CONV, classes=2), rule=jdfa.fa(),
                       optimizer=jdfa.Optimizer("adam", lr=3e-3), batch_size=32, eval_every=10,
                       train_eval_size=128, progress=False)
    jdfa.train(dataclasses.replace(base, steps=20, out=str(tmp_path / "cut")), data=data)
    jdfa.train(dataclasses.replace(base, steps=30, out=str(tmp_path / "cut"), resume=True), data=data)
    jdfa.train(dataclasses.replace(base, steps=30, out=str(tmp_path / "whole")), data=data)
    a, b = (strip(tmp_path / name) for name in ("cut", "whole"))
    assert [r["step"] for r in a] == [0, 10, 20, 30]
    for got, want in zip(a, b):
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def strip(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "steps_per_s")}
            for line in lines]


@pytest.mark.parametrize("vmapped", [False, True], ids=["one_run", "vmapped_runs"])
def test_stepwise_chunk_equals_the_looped_chunk(vmapped):
    """On the CPU a blocks net's chunk runs one jitted step per call (`stepwise`); it takes the
    same steps, sums and norms as the looped chunk, a skipped step included."""
    net, rule, opt = SMALL_CONV, jdfa.dfa(), jdfa.Optimizer("adam", lr=1e-3)
    x = np.asarray(jax.random.uniform(jax.random.key(1), (96, net.in_features)))
    y = np.arange(96) % net.out_features
    y[40:] = 99  # from the 2nd batch of the 2nd epoch on, labels out of range: steps skipped
    body = chunks.chunk_body(net, rule, opt, 50, 16, "mean", False, 96)
    state = jdfa.init_train_state(jax.random.key(0), net, rule, opt.build(50))
    hyper = chunks.hyper(jax.random.key(2), opt)
    runs = 2 if vmapped else 1
    state, hyper = jax.tree.map(lambda a: jnp.stack([a] * runs), (state, hyper))
    looped = jax.jit(jax.vmap(body, in_axes=(0, 0, None, None, None, 0, 0, 0)))
    stepwise = chunks.make_chunk(net, rule, opt, 50, 16, "mean", False, 96, n_runs=runs)
    sums, epochs = (jnp.zeros(runs), jnp.zeros(runs)), chunks.Epochs(96, 16)
    assert chunks.stepwise_on_cpu(net)
    for n in (6, 5):  # an epoch of 6 steps, then 5 of the next, most of them skipped
        order = epochs.orders(hyper.data_key, state.step)
        want = looped(state, hyper, x, y, n, *sums, order)
        got = stepwise(state, hyper, x, y, n, *sums, order)
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
        state = want[0]
    assert int(np.ravel(want[1].skipped_at)[0]) > 0 and int(np.ravel(want[1].steps)[0]) < 5


def test_a_flax_net_sweeps_its_seeds_as_the_runs_alone(tmp_path):
    net = dense_net(jdfa.MLP(12, 8, 2, 3))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(128, 12)).astype(np.float32)
    y = (x[:, 0] * 3).astype(np.int32) % 3
    data = ((x, y), (x[:32], y[:32]))
    config = jdfa.Config(net=net, rule=jdfa.dfa(), optimizer=jdfa.Optimizer("adam", lr=1e-2), steps=12,
                         batch_size=16, eval_every=6, train_eval_size=32, progress=False)
    swept = jdfa.sweep(dataclasses.replace(config, out=str(tmp_path / "sweep")), data=data, seeds=2)
    assert [r["status"] for r in swept["runs"]] == ["finished", "finished"]
    alone = jdfa.train(dataclasses.replace(config, seed=1), data=data)
    for key in ("test_accuracy", "test_loss", "train_accuracy", "batch_accuracy"):
        np.testing.assert_allclose(swept["runs"][1]["summary"][key], alone[key], rtol=1e-5, err_msg=key)
    assert swept["runs"][0]["summary"]["test_loss"] != alone["test_loss"]  # the seeds differ
    with pytest.raises(ValueError, match="its structure is its builder"):
        jdfa.sweep(config, data=data, width=[4, 8])
