"""`jdfa.mix` (switching between BP and DFA) and dropout: identities, draws inside the jitted step,
and dropout off == the plain forward pass."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdfa
from jdfa import losses, model
from jdfa.driver import flags
from jdfa.rules import StepContext
from jdfa.step import step_context

DEPTH = 6
NET = jdfa.MLP(in_features=13, width=11, depth=DEPTH, out_features=5)
DROPPED = jdfa.MLP(in_features=13, width=11, depth=DEPTH, out_features=5, dropout=0.4)


def batch(net=NET, n=9):
    kx, ky = jax.random.split(jax.random.key(1))
    return jax.random.uniform(kx, (n, net.in_features)), jax.random.randint(ky, (n,), 0, net.out_features)


def context(seed, index=0):
    return StepContext(jnp.int32(index), jax.random.key(seed))


def update(net, rule, params, feedback, x, y, ctx=None):
    return jdfa.update_direction(net, rule, params, feedback, x, y, context=ctx)


def close(a, b):
    return all(np.allclose(u, v, rtol=1e-5, atol=1e-7)
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("per", ["step", "layer"])
@pytest.mark.parametrize("p_bp, other", [(0.0, "dfa"), (1.0, "bp")])
def test_mix_at_zero_is_dfa_and_at_one_is_bp(per, p_bp, other, variant):
    x, y = batch()
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.mix())
    own_feedback = jdfa.init(jax.random.key(0), NET, jdfa.rules.parse(other))[1]
    want = update(NET, jdfa.rules.parse(other), params, own_feedback, x, y)
    rule = jdfa.mix(p_bp, per)
    mixed = variant(lambda p, f, k: update(NET, rule, p, f, x, y, StepContext(jnp.int32(5), k)))
    for seed in range(3):
        chex.assert_trees_all_close(mixed(params, feedback, jax.random.key(seed)), want, rtol=1e-5,
                                    atol=1e-7)


def reference_mix_deltas(params, feedback, trace, e, use_bp):
    """Layer by layer in Python: a BP layer reads the delta the layer above got through W^T."""
    fprime, deltas = trace.fprime, [None] * DEPTH
    above, w_above = e, params.output.w
    for i in reversed(range(DEPTH)):
        dfa = (e @ feedback.output[i].T) * fprime[i]
        deltas[i] = (above @ w_above.T) * fprime[i] if use_bp[i] else dfa
        above, w_above = deltas[i], params.hidden.w[i - 1] if i else None
    return jnp.stack(deltas)


def test_mix_per_layer_draws_each_layer_inside_jit_and_matches_a_per_layer_reference():
    x, y = batch()
    rule = jdfa.mix(0.5, per="layer")
    params, feedback = jdfa.init(jax.random.key(0), NET, rule)
    trace = model.forward(NET, params, x)
    _, e = losses.output_error(NET, trace.a_y, y)
    deltas = jax.jit(lambda k: rule.deltas(NET, params, feedback, trace, e, StepContext(jnp.int32(0), k)))
    choices = set()
    for seed in range(6):
        use_bp = np.asarray(jax.random.uniform(jax.random.key(seed), (DEPTH,)) < 0.5)
        choices.add(tuple(use_bp))
        np.testing.assert_allclose(deltas(jax.random.key(seed)),
                                   reference_mix_deltas(params, feedback, trace, e, use_bp), rtol=1e-5,
                                   atol=1e-7)
    assert len(choices) > 1 and any(0 < sum(c) < DEPTH for c in choices)  # layers differ within a step


def test_mix_per_step_draws_anew_at_every_step_of_the_jitted_train_step():
    """Two steps' keys give two choices: over eight steps of one run both BP and DFA occur, each
    step's update equal to one of them; the same step of a copy of the run draws the same."""
    x, y = batch()
    rule = jdfa.mix(0.5, per="step")
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, optax.sgd(0.0))
    step = jdfa.make_train_step(NET, rule, optax.sgd(0.0))
    bp_feedback = jdfa.init(jax.random.key(0), NET, jdfa.bp())[1]
    bp = update(NET, jdfa.bp(), state.params, bp_feedback, x, y)
    dfa = update(NET, jdfa.dfa(), state.params, state.feedback, x, y)
    seen, mixed = [], jax.jit(lambda s: update(NET, rule, s.params, s.feedback, x, y, step_context(s)))
    for _ in range(8):
        u = mixed(state)
        assert close(u, bp) != close(u, dfa)
        seen.append(close(u, bp))
        state, _ = step(state, x, y)  # lr 0: only the step count moves
    assert any(seen) and not all(seen)
    other = jdfa.init_train_state(jax.random.key(1), NET, rule, optax.sgd(0.0))
    draws = [bool(jax.random.uniform(step_context(s._replace(step=jnp.int32(i))).key, ()) < 0.5)
             for s in (state, other) for i in range(16)]
    assert draws[:16] != draws[16:]  # another run's key, other choices


def test_mix_bp_steps_is_a_deterministic_schedule():
    x, y = batch()
    rule = jdfa.mix(0.0, bp_steps=3)
    params, feedback = jdfa.init(jax.random.key(0), NET, rule)
    bp = update(NET, jdfa.bp(), params, jdfa.init(jax.random.key(0), NET, jdfa.bp())[1], x, y)
    dfa = update(NET, jdfa.dfa(), params, feedback, x, y)
    for index in range(6):
        got = update(NET, rule, params, feedback, x, y, context(index, index))
        assert close(got, bp if index < 3 else dfa)


def test_mix_without_a_step_context_says_what_to_pass():
    x, y = batch()
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.mix())
    with pytest.raises(ValueError, match="context=jdfa.rules.StepContext"):
        update(NET, jdfa.mix(), params, feedback, x, y)


@pytest.mark.parametrize("fields, match", [({"p_bp": 1.5}, "p_bp"), ({"per": "epoch"}, "per"),
                                           ({"bp_steps": -1}, "bp_steps")])
def test_mix_refuses_bad_fields(fields, match):
    with pytest.raises(ValueError, match=match):
        jdfa.rules.parse("mix", **fields)


def test_dropout_off_is_the_plain_forward_pass(variant):
    """dropout=0 (the default) draws nothing, even given a key: the trace is today's, bit for bit."""
    x, _ = batch()
    params = model.init_params(jax.random.key(0), NET)
    plain = variant(lambda p: model.forward(NET, p, x))(params)
    keyed = variant(lambda p, k: model.forward(NET, p, x, key=k))(params, jax.random.key(3))
    assert plain.keep is None and keyed.keep is None
    chex.assert_trees_all_equal(plain, keyed)


def thinned_loss(params, x, y, keep):
    """The loss of DROPPED with the masks fixed, written out layer by layer for jax.grad."""
    h = jnp.tanh(x @ params.input.w + params.input.b) * keep[0]
    for i in range(DEPTH - 1):
        h = jnp.tanh(h @ params.hidden.w[i] + params.hidden.b[i]) * keep[i + 1]
    return losses.output_loss(DROPPED, h @ params.output.w + params.output.b, y)


def test_bp_with_dropout_is_the_exact_gradient_of_the_thinned_net(variant):
    x, y = batch(DROPPED, n=32)
    params, feedback = jdfa.init(jax.random.key(0), DROPPED, jdfa.bp())
    ctx = context(7)
    keep = model.forward(DROPPED, params, x, key=jax.random.split(ctx.key)[0]).keep
    frac = float(jnp.mean(keep == 0))
    assert 0.3 < frac < 0.5 and np.allclose(np.unique(np.asarray(keep)), [0.0, 1 / 0.6])
    got = variant(lambda p: update(DROPPED, jdfa.bp(), p, feedback, x, y, ctx))(params)
    chex.assert_trees_all_close(got, jax.grad(thinned_loss)(params, x, y, keep), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", [jdfa.dfa(), jdfa.dfa(use_derivative=False), jdfa.fa(), jdfa.fp(2),
                                  jdfa.bdfa(2), jdfa.bdfa(3, "backprop"), jdfa.mix(0.5, per="layer")],
                         ids=lambda r: str(r))
def test_dropped_units_get_no_delta_under_every_rule(rule):
    x, y = batch(DROPPED, n=32)
    params, feedback = jdfa.init(jax.random.key(0), DROPPED, rule)
    trace = model.forward(DROPPED, params, x, key=jax.random.key(2))
    _, e = losses.output_error(DROPPED, trace.a_y, y)
    deltas = rule.deltas(DROPPED, params, feedback, trace, e, context(4))
    dropped = np.asarray(trace.keep == 0)
    assert dropped.any() and np.all(np.asarray(deltas)[dropped] == 0)
    assert np.any(np.asarray(deltas)[~dropped] != 0)


def test_dropout_never_drops_at_evaluation():
    x, _ = batch()
    params = model.init_params(jax.random.key(0), NET)
    np.testing.assert_array_equal(jdfa.apply(DROPPED, params, x), jdfa.apply(NET, params, x))
    np.testing.assert_array_equal(model.forward(DROPPED, params, x).a_y, model.forward(NET, params, x).a_y)


@pytest.mark.parametrize("kwargs", [{"batch_mode": "batch_average"}, {"remat": True}])
def test_dropout_refuses_what_cannot_carry_a_mask(kwargs):
    with pytest.raises(ValueError, match="dropout"):
        jdfa.make_train_step(DROPPED, jdfa.dfa(), optax.sgd(0.1), **kwargs)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_must_be_a_probability_below_one(p):
    with pytest.raises(ValueError, match="dropout"):
        jdfa.MLP(4, 4, 2, 2, dropout=p)


def test_flags_reach_mix_and_dropout():
    data = ((np.zeros((8, 4), np.float32), np.arange(8) % 3), (np.zeros((2, 4), np.float32), np.arange(2)))
    config, _ = flags.from_flags({"rule": "mix", "p_bp": 0.25, "per": "layer", "bp_steps": 100,
                                  "dropout": 0.2}, data=data)
    assert config.rule == jdfa.mix(0.25, "layer", 100) and config.net.dropout == 0.2


REFUSED = {"dropout-average": dict(net=DROPPED, batch_mode="batch_average"),
           "dropout-remat": dict(net=DROPPED, remat=True),
           "mix-remat": dict(net=NET, rule=jdfa.mix(), remat=True)}


@pytest.mark.parametrize("fields", REFUSED.values(), ids=REFUSED.keys())
def test_a_run_that_cannot_train_is_refused_by_its_config(fields):
    """Before anything starts (no progress bar, no folder): the step's own checks run in `Config`."""
    with pytest.raises(ValueError, match="dropout|remat is implemented for DFA"):
        jdfa.Config(**fields)
