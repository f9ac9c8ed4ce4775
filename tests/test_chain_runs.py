"""Stacked runs of identical blocks in a `jdfa.chain.ChainNet`: a residual MLP whose blocks are one
run trains with every rule and gives, rule by rule, the update of the same net taken block by
block; the transformer's decoder blocks are one forward scan and one vmapped VJP, flat in depth."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdfa
from jdfa import chain_units
from jdfa.blocks import TransformerLM
from jdfa.chain import ChainFeedback, ChainNet, ChainParams
from jdfa.model import check_inputs


@dataclasses.dataclass(frozen=True)
class StackedResidualMLP(ChainNet):
    """An input Dense ``h_0 = tanh(x W + b)``, ``blocks`` residual blocks ``h + W2 tanh(W1 h + b1)
    + b2`` (the feedback points: the stream after each block, no point activation), a Dense output.
    ``stacked``: the residual blocks are one run (params on a leading axis), else lone blocks."""

    in_features: int = 6
    width: int = 8
    blocks: int = 4
    out_features: int = 3
    stacked: bool = True
    loss: str = "softmax_cross_entropy"
    dropout: float = 0.0

    def segment_lengths(self):
        return (None, self.blocks) if self.stacked else (None,) * (self.blocks + 1)

    def init_params(self, key):
        k_in, k_blocks, k_out = jax.random.split(key, 3)

        def dense(k, n_in, n_out, scale=1.0):
            return {"w": scale * jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}

        def residual(k):
            k1, k2 = jax.random.split(k)
            return {"up": dense(k1, self.width, 2 * self.width),
                    "down": dense(k2, 2 * self.width, self.width, 0.5)}

        run = jax.vmap(residual)(jax.random.split(k_blocks, self.blocks))
        lone = [jax.tree.map(lambda a, i=i: a[i], run) for i in range(self.blocks)]
        return ChainParams((dense(k_in, self.in_features, self.width), *((run,) if self.stacked else lone)),
                           dense(k_out, self.width, self.out_features))

    def block_apply(self, i, p, h):
        if i == 0:
            return jnp.tanh(h @ p["w"] + p["b"])
        if i == self.blocks + 1:
            return h @ p["w"] + p["b"]
        return h + jnp.tanh(h @ p["up"]["w"] + p["up"]["b"]) @ p["down"]["w"] + p["down"]["b"]

    def check_inputs(self, x, y=None):
        check_inputs(self, x, y)

    def to_dict(self):
        return {"model": type(self).__name__, **dataclasses.asdict(self)}


NET = StackedResidualMLP()
LONE = dataclasses.replace(NET, stacked=False)
RULES = [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.dfa(use_derivative=False), jdfa.fp(2), jdfa.fp(2, "error"),
         jdfa.bdfa(1), jdfa.bdfa(2), jdfa.bdfa(2, "backprop"), jdfa.bdfa(3), jdfa.mix(0.5, per="layer"),
         jdfa.shallow()]


def _batch(n=8, net=NET):
    kx, ky = jax.random.split(jax.random.key(3))
    return jax.random.uniform(kx, (n, net.in_features)), jax.random.randint(ky, (n,), 0, net.out_features)


def _unstack_params(params):
    first, run = params.blocks
    return ChainParams((first, *(jax.tree.map(lambda a, i=i: a[i], run) for i in range(NET.blocks))),
                       params.output)


def _unstack_feedback(rule, feedback):
    """The stacked net's feedback laid out for the net of lone blocks: one entry per point."""
    units = chain_units.cut(rule.plan(NET.depth), NET.segments)
    first, run = feedback.layers
    points = []
    for u, entry in zip(units[1:], run):
        if u.boundary:  # each part: its points below the top read B, the top none
            rows = iter(range(u.hi - u.lo - u.repeat))
            points += [None if j % u.part == u.part - 1 else (entry, next(rows)) for j in range(u.hi - u.lo)]
        else:
            points += [(entry, j) for j in range(u.hi - u.lo)]
    return ChainFeedback((first, *(None if p is None else jax.tree.map(lambda a, j=p[1]: a[j], p[0])
                                   for p in points)))


def test_the_run_is_one_segment_of_stacked_blocks():
    assert NET.depth == LONE.depth == 5 and NET.point_shapes == ((8,),) * 5
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.dfa())
    chex.assert_shape(params.blocks[1]["up"]["w"], (4, 8, 16))
    assert [b.shape for b in jax.tree.leaves(feedback)] == [(8, 3), (4, 8, 3)]
    mask = NET.layer_axis_mask(params)
    assert not any(jax.tree.leaves(mask.blocks[0])) and all(jax.tree.leaves(mask.blocks[1]))
    assert NET.feedback_layer_axis_mask(feedback).layers == (False, (True,))
    assert not any(jax.tree.leaves(NET.weight_mask(params).blocks[1]["up"]["b"]))  # a stacked bias
    x, _ = _batch()
    np.testing.assert_allclose(jdfa.apply(NET, params, x), jdfa.apply(LONE, _unstack_params(params), x),
                               rtol=1e-6)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_every_rule_on_the_run_equals_the_lone_blocks(rule):
    """The run's units (einsums, vmapped VJPs, scans) give each block the update the same rule gives
    the same net taken block by block; the per-block measurements agree too."""
    params, feedback = jdfa.init(jax.random.key(0), NET, rule)
    x, y = _batch()
    context = jdfa.rules.StepContext(jnp.int32(0), jax.random.key(4))
    got = jax.jit(lambda p, f: NET.compute_update(rule, p, f, x, y, context=context)[0])(params, feedback)
    lone_feedback = _unstack_feedback(rule, feedback) if rule.plan(NET.depth) else feedback
    want = jax.jit(lambda p, f: LONE.compute_update(rule, p, f, x, y, context=context)[0])(
        _unstack_params(params), lone_feedback)
    chex.assert_trees_all_close(_unstack_params(got), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(NET.layer_dots(got, got), LONE.layer_dots(want, want), rtol=1e-5)


@pytest.mark.parametrize("rule", [jdfa.bp(), jdfa.fa(), jdfa.dfa(use_derivative=False), jdfa.bdfa(1)],
                         ids=str)
def test_dropout_on_the_run_equals_the_lone_blocks(rule):
    """Each point of the run drops the units the same point of the lone blocks drops."""
    net, lone = (dataclasses.replace(n, dropout=0.3) for n in (NET, LONE))
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    x, y = _batch()
    context = jdfa.rules.StepContext(jnp.int32(0), jax.random.key(4))
    got = net.compute_update(rule, params, feedback, x, y, context=context)[0]
    want = lone.compute_update(rule, _unstack_params(params), _unstack_feedback(rule, feedback), x, y,
                               context=context)[0]
    chex.assert_trees_all_close(_unstack_params(got), want, rtol=1e-5, atol=1e-7)
    plain = net.compute_update(rule, params, feedback, x, y)[0]
    assert not np.allclose(plain.blocks[1]["up"]["w"], got.blocks[1]["up"]["w"])  # units were dropped


def test_bp_equals_jax_grad():
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    x, y = _batch()
    got = jdfa.update_direction(NET, jdfa.bp(), params, feedback, x, y)
    want = jax.grad(lambda p: jdfa.loss(NET, p, x, y))(params)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_every_rule_trains_the_stacked_net(rule):
    net = dataclasses.replace(NET, blocks=3)
    w = jax.random.normal(jax.random.key(9), (net.in_features, net.out_features))
    x = jax.random.uniform(jax.random.key(8), (64, net.in_features)) - 0.5
    y = jnp.argmax(x @ w, axis=1)
    opt = optax.adam(1e-2)
    state = jdfa.init_train_state(jax.random.key(0), net, rule, opt)
    step = jdfa.make_train_step(net, rule, opt)
    losses = []
    for _ in range(40):
        state, metrics = step(state, x, y)
        losses.append(float(metrics["loss"]))
    assert not bool(metrics["skipped"]) and losses[-1] < 0.8 * losses[0], losses


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def _update_jaxpr(net, rule):
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    x, y = (jnp.zeros(s.shape, s.dtype) for s in net.batch_struct(4))
    context = jdfa.rules.StepContext(jnp.int32(0), jax.random.key(1))
    return jax.make_jaxpr(lambda p, f: net.compute_update(rule, p, f, x, y, context=context)[0])(
        params, feedback).jaxpr


FLAT = [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.fp(2), jdfa.bdfa(2), jdfa.bdfa(2, "backprop"), jdfa.mix(0.5),
        jdfa.shallow()]


@pytest.mark.parametrize("rule", FLAT, ids=str)
def test_the_update_is_flat_in_the_runs_length(rule):
    """Nothing unrolls with the run's length; BDFA's lower blocks are one scan over blocks."""
    small, large = (_update_jaxpr(dataclasses.replace(NET, blocks=n), rule) for n in (8, 16))
    assert len(list(_eqns(small))) == len(list(_eqns(large)))
    assert 8 in [e.params["length"] for e in _eqns(small) if e.primitive.name == "scan"]  # the forward
    if rule.name == "bdfa":  # the forward scan, and one over BDFA's full blocks in the run
        scans = sorted(e.params["length"] for e in _eqns(small) if e.primitive.name == "scan")
        assert scans == ([3, 8] if rule.boundary == "direct" else [4, 8]), scans


def test_the_transformer_dfa_step_is_one_scan_and_one_vmapped_vjp():
    """DFA on `TransformerLM`: the decoder blocks run forward in one scan (over all ``n_blocks``),
    nothing else loops, and their updates are one VJP vmapped over the blocks: each kernel's update
    is one dot with the block axis a batch dimension, for all blocks at once."""
    n, width = 5, 8
    net = TransformerLM(vocab=7, context=6, width=width, n_blocks=n, heads=2)
    jaxpr = _update_jaxpr(net, jdfa.dfa())
    assert [e.params["length"] for e in _eqns(jaxpr) if e.primitive.name == "scan"] == [n]
    batched = [e.outvars[0].aval.shape for e in jaxpr.eqns if e.primitive.name == "dot_general"
               and e.params["dimension_numbers"][1] == ((0,), (0,))]  # batched over the blocks
    assert sorted(s[1:] for s in batched if s[0] == n and len(s) == 3) == sorted([
        (4 * width, width), (width, width), (width, 4 * width), (3 * width, width)])  # down, out, up, qkv
    deeper = _update_jaxpr(dataclasses.replace(net, n_blocks=2 * n), jdfa.dfa())
    assert len(list(_eqns(deeper))) == len(list(_eqns(jaxpr)))
    bp = _update_jaxpr(net, jdfa.bp())  # BP: the forward scan and one backward scan over the blocks
    assert [e.params["length"] for e in _eqns(bp) if e.primitive.name == "scan"] == [n, n]


def test_a_checkpoint_of_the_unstacked_layout_fails_clearly(tmp_path):
    """A TransformerLM checkpoint written before its decoder blocks were stacked (one tree per
    block) is refused with the reason, not restored, skipped or crashed on inside orbax."""
    from jdfa.driver.checkpoints import Checkpoints

    net = TransformerLM(vocab=7, context=6, width=8, n_blocks=2, heads=2)
    state = jdfa.init_train_state(jax.random.key(0), net, jdfa.dfa(), optax.adam(1e-3))
    first, run = state.params.blocks
    lone = (first, *(jax.tree.map(lambda a, i=i: a[i], run) for i in range(net.n_blocks)))
    old = Checkpoints(tmp_path / "old")
    old.save(state._replace(params=state.params._replace(blocks=lone)), {"step": 5.0}, step=5)
    with pytest.raises(ValueError, match="another layout.*stacked"):
        old.restore_latest(state)
    new = Checkpoints(tmp_path / "new")
    new.save(state, {"step": 3.0}, step=3)
    chex.assert_trees_all_equal(new.restore_latest(state)[0], state)
