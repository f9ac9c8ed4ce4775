"""Feedback points inside the transformer's decoder blocks (issue 31, Launay et al. 2020's "micro"
DFA): three per block, each cut (`jdfa.chain_points`); BP stays `jax.grad`, DFA equals a per-token
reference written piece by piece here, every rule runs through the chain's plan, the run stays
one scan, and the command line reaches the option."""

import dataclasses
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jdfa
from jdfa import chain_points
from jdfa.activations import ACTIVATIONS
from jdfa.blocks import TransformerLM
from jdfa.driver import cli, flags
from tests.test_chain_runs import _eqns, _update_jaxpr
from tests.test_transformer import NET, tokens

MICRO = dataclasses.replace(NET, feedback_points="micro")
NORMS = pytest.mark.parametrize("net", [MICRO, dataclasses.replace(MICRO, norm="post")],
                                ids=["pre_norm", "post_norm"])


def pieces(net):
    """A decoder block's three pieces, each up to its point, written from the block's layers: the
    attention's residual sum (normed, post-norm), the MLP's hidden activation, the output."""
    act = ACTIVATIONS[net.activation]
    if net.norm == "post":
        return (lambda m, h: m.norm_attention(h + m.attention(h)),
                lambda m, h1: act(m.up(h1)),
                lambda m, h1, u: m.norm_mlp(h1 + m.down(u)))
    return (lambda m, h: h + m.attention(m.norm_attention(h)),
            lambda m, h1: act(m.up(m.norm_mlp(h1))),
            lambda m, h1, u: h1 + m.down(u))


def reference_micro_dfa(net, params, feedback, x, y):
    """Micro DFA by hand: each point's delta is its own ``B e_t`` at every token (e (N, T, V) the
    per-token mean cross-entropy's error); each block's update is the sum of its pieces' VJPs, each
    at its own point's delta with the points below it held fixed; the embeddings take the first
    point's delta at the tokens read and the positions."""
    attention, hidden, out = pieces(net)
    block_b = feedback.layers[1][0]  # (B_1, B_2, B_3), each stacked over the blocks
    h = params.blocks[0]["tokens"]["embedding"][x] + params.blocks[0]["positions"]
    inputs, updates = [], []
    for i in range(1, net.depth):
        p = jax.tree.map(lambda a, i=i: a[i - 1], params.blocks[1])

        def piece(f, *args, i=i):
            return lambda q: f(nnx.merge(net.graphdefs[i], q), *args)

        h1 = piece(attention, h)(p)
        u = piece(hidden, h1)(p)
        inputs.append((p, [piece(attention, h), piece(hidden, h1), piece(out, h1, u)]))
        h = piece(out, h1, u)(p)
    logits = net.block_apply(net.depth, params.output, h)
    n, t, v = logits.shape
    e = (jax.nn.softmax(logits) - jax.nn.one_hot(y, v)) / (n * t)
    d0 = jnp.einsum("ntv,dv->ntd", e, feedback.layers[0])
    for i, (p, fs) in enumerate(inputs):
        deltas = [jnp.einsum("ntv,dv->ntd", e, b[i]) for b in block_b]
        parts = [jax.vjp(f, p)[1](d)[0] for f, d in zip(fs, deltas)]
        updates.append(jax.tree.map(lambda *a: sum(a), *parts))
    embedding = {"tokens": {"embedding": jnp.zeros((v, net.width)).at[x].add(d0)}, "positions": d0.sum(0)}
    output = jax.vjp(lambda p: net.block_apply(net.depth, p, h), params.output)[1](e)[0]
    return jdfa.chain.ChainParams((embedding, jax.tree.map(lambda *a: jnp.stack(a), *updates)), output)


def update(net, rule):
    """``rule``'s update on ``net``, jitted (a few programs keep the file fast; test_transformer
    runs the chain without jit too)."""
    return jax.jit(lambda p, f, x, y, k: jdfa.update_direction(
        net, rule, p, f, x, y, context=jdfa.rules.StepContext(jnp.int32(0), k)))


@NORMS
def test_bp_equals_jax_grad(net):
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x, y = tokens()
    got = update(net, jdfa.bp())(params, None, x, y, jax.random.key(2))
    want = jax.jit(jax.grad(lambda p: jdfa.loss(net, p, x, y)))(params)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


@NORMS
def test_dfa_equals_a_per_token_reference_piece_by_piece(net):
    rule = jdfa.dfa()
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    x, y = tokens()
    got = update(net, rule)(params, feedback, x, y, jax.random.key(2))
    want = jax.jit(reference_micro_dfa, static_argnums=0)(net, params, feedback, x, y)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@NORMS
def test_bp_with_dropout_is_the_gradient_of_the_thinned_net(net):
    """Dropout drops the stream after each block (at its output point); with three points a block,
    BP through the plan is still the exact gradient of the net thinned by the step's masks."""
    net = dataclasses.replace(net, dropout=0.3)
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x, y = tokens(n=8)
    key = jax.random.key(2)
    got = update(net, jdfa.bp())(params, None, x, y, key)
    # the step's dropout half of its key (`ChainNet.compute_update`), one key a block
    keys = jax.random.split(jax.random.split(key)[0], net.depth)

    def thinned_loss(p):
        """The loss with the step's masks fixed, block by block from `block_apply`, for jax.grad."""
        h = net.embed(x)
        for i in range(net.depth):
            block = p.blocks[0] if i == 0 else jax.tree.map(lambda a, i=i: a[i - 1], p.blocks[1])
            h = chain_points.output(net.block_apply(i, block, h))
            h = h * jax.random.bernoulli(keys[i], 0.7, h.shape) / 0.7
        return jdfa.losses.output_loss(net, net.block_apply(net.depth, p.output, h), y)

    chex.assert_trees_all_close(got, jax.jit(jax.grad(thinned_loss))(params), rtol=1e-5, atol=1e-6)
    plain = update(dataclasses.replace(net, dropout=0.0), jdfa.bp())(params, None, x, y, key)
    assert not np.allclose(got.blocks[1]["qkv"]["kernel"], plain.blocks[1]["qkv"]["kernel"])
    dfa = update(net, jdfa.dfa())(*jdfa.init(jax.random.key(0), net, jdfa.dfa()), x, y, key)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(dfa))


def test_each_point_has_its_own_feedback_shaped_to_it():
    """Points per block: the stream (d), the MLP's hidden (4d), the output (d); a ``B`` for each,
    reading ``e`` (d or 4d, vocab) or, for ``fp(1)``, the top delta (., d). Shared feedback: one
    matrix per shape, the (d, vocab) one the embedding's too."""
    d, v, n = MICRO.width, MICRO.vocab, MICRO.n_blocks
    assert MICRO.depth == NET.depth == n + 1 and MICRO.point_shapes == NET.point_shapes
    assert MICRO.block_points == (((6, d),),) + (((6, d), (6, 4 * d), (6, d)),) * n
    for rule, src in ((jdfa.dfa(), v), (jdfa.fp(1), d)):
        feedback = jdfa.init(jax.random.key(0), MICRO, rule)[1]
        run = feedback.layers[1][0]
        rows = n - (rule.name == "fp")  # fp(1): the top block takes its true delta
        assert [b.shape for b in run] == [(rows, d, src), (rows, 4 * d, src), (rows, d, src)]
    shared = jdfa.init(jax.random.key(0), MICRO, jdfa.dfa(shared_feedback=True))[1]
    first, (run,) = shared.layers
    for b in run:
        np.testing.assert_array_equal(b, np.broadcast_to(b[0], b.shape))
    np.testing.assert_array_equal(first, run[0][0])
    np.testing.assert_array_equal(first, run[2][0])


@pytest.mark.parametrize("rule", [jdfa.fa(), jdfa.fp(1), jdfa.bdfa(1), jdfa.bdfa(1, "backprop"),
                                  jdfa.mix(0.5, per="layer"), jdfa.shallow()], ids=str)
def test_every_rule_runs_and_the_true_steps_backprop_inside_the_blocks(rule):
    """Each rule's update is finite and reaches every block; a rule that takes each block's true
    delta (``bdfa(1, "backprop")``, ``mix(1)``) backpropagates inside the blocks: it is BP's."""
    params, feedback = jdfa.init(jax.random.key(0), MICRO, rule)
    x, y = tokens()
    got = update(MICRO, rule)(params, feedback, x, y, jax.random.key(2))
    chex.assert_trees_all_equal_shapes(got, params)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(got))
    if rule.name != "shallow":
        assert np.all(jnp.sum(jnp.abs(got.blocks[1]["qkv"]["kernel"]), axis=(1, 2)) > 0)
    if rule.name == "bdfa" and rule.boundary == "backprop":
        bp = update(MICRO, jdfa.bp())(params, None, x, y, jax.random.key(2))
        chex.assert_trees_all_close(got, bp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", [jdfa.dfa(), jdfa.bp()], ids=str)
def test_the_blocks_stay_one_scan(rule):
    """Micro points add no loop over the blocks: the forward is one scan, DFA nothing more, BP one
    backward scan; the program does not grow with the number of blocks."""
    net = dataclasses.replace(MICRO, n_blocks=3)
    jaxpr = _update_jaxpr(net, rule)
    scans = [e.params["length"] for e in _eqns(jaxpr) if e.primitive.name == "scan"]
    assert scans == [3] * (1 + (rule.name == "bp")), scans
    deeper = _update_jaxpr(dataclasses.replace(net, n_blocks=6), rule)
    assert len(list(_eqns(deeper))) == len(list(_eqns(jaxpr)))


def test_the_command_line_reaches_the_option():
    words = ((np.zeros((4, 6), np.int32),) * 2, (np.zeros((4, 6), np.int32),) * 2)
    config, _ = flags.from_flags({"model": "transformer", "feedback_points": "micro", "heads": 2, "width": 8},
                                 data=words)
    assert config.net.feedback_points == "micro" and "micro" in config.net.describe()
    assert flags.config_flags(config)["feedback_points"] == "micro"
    text = cli.parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert re.search(r"--feedback-points \{block,micro\}\s+transformer: feedback points of each decoder "
                     r"block", text)
    with pytest.raises(ValueError, match="feedback_points"):
        TransformerLM(feedback_points="nano")
