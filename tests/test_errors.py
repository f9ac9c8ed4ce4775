"""Bad input gets a clear error that names the argument and what was expected."""

import jax
import jax.numpy as jnp
import optax
import pytest

import jdfa

NET = jdfa.MLP(in_features=5, width=6, depth=3, out_features=4)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(depth=0), ValueError, "depth must be >= 1"),
    (dict(width=0), ValueError, "width must be >= 1"),
    (dict(in_features=0), ValueError, "in_features must be >= 1"),
    (dict(out_features=0), ValueError, "out_features must be >= 1"),
    (dict(depth=2.5), TypeError, "depth must be an int"),
    (dict(activation="swishy"), ValueError, "unknown activation 'swishy'.*tanh"),
    (dict(loss="hinge"), ValueError, "unknown loss 'hinge'.*softmax_cross_entropy"),
    (dict(weight_init="he"), ValueError, "unknown weight_init 'he'"),
])
def test_bad_net(kwargs, error, match):
    args = dict(in_features=5, width=6, depth=3, out_features=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        jdfa.MLP(**args)


@pytest.mark.parametrize("make, error, match", [
    (lambda: jdfa.rules.parse("sgd"), ValueError, r"unknown rule 'sgd'; expected one of \[.*'dfa'"),
    (lambda: jdfa.bdfa(0), ValueError, "block_size must be >= 1, got 0"),
    (lambda: jdfa.bdfa(2.0), TypeError, "block_size must be an int"),
    (lambda: jdfa.bdfa(4, boundary="skip"), ValueError, "unknown boundary 'skip'.*'backprop'"),
    (lambda: jdfa.fp(-1), ValueError, "bp_depth must be >= 0, got -1"),
    (lambda: jdfa.dfa(feedback_init="laplace"), ValueError, "unknown feedback_init 'laplace'"),
    (lambda: jdfa.dfa(feedback_scale=0.0), ValueError, "feedback_scale must be > 0"),
])
def test_bad_rule(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bp_depth_beyond_depth():
    with pytest.raises(ValueError, match=r"bp_depth must lie in \[0, depth=3\], got 4"):
        jdfa.init(jax.random.key(0), NET, jdfa.fp(4))
    with pytest.raises(ValueError, match="bp_depth"):
        jdfa.make_train_step(NET, jdfa.fp(4), optax.sgd(0.1))


def _setup(rule=None):
    rule = rule or jdfa.dfa()
    params, feedback = jdfa.init(jax.random.key(0), NET, rule)
    return rule, params, feedback


def test_unknown_batch_mode():
    rule, params, feedback = _setup()
    x, y = jnp.zeros((2, 5)), jnp.array([0, 1])
    with pytest.raises(ValueError, match="unknown batch_mode 'median'.*class_average"):
        jdfa.update_direction(NET, rule, params, feedback, x, y, batch_mode="median")
    with pytest.raises(ValueError, match="unknown batch_mode"):
        jdfa.make_train_step(NET, rule, optax.sgd(0.1), batch_mode="median")


@pytest.mark.parametrize("x, y, match", [
    (jnp.zeros((2, 7)), jnp.array([0, 1]), r"x has 7 features but the net expects in_features=5"),
    (jnp.zeros((2, 5, 1)), jnp.array([0, 1]), r"x must have rank 2"),
    (jnp.zeros((5,)), jnp.array([0]), r"x must have rank 2"),
    (jnp.zeros((2, 5)), jnp.array([0, 1, 2]), r"y has length \(3,\) but x has batch size 2"),
    (jnp.zeros((2, 5)), jnp.array([0, 4]), r"labels must lie in \[0, 4\).*\[0, 4\]"),
    (jnp.zeros((2, 5)), jnp.array([-1, 0]), r"labels must lie in \[0, 4\)"),
    (jnp.zeros((2, 5)), jnp.zeros((2, 3)), r"float targets y must have shape .* \(2, 4\)"),
    (jnp.zeros((2, 5)), jnp.zeros((2, 1), jnp.int32), r"integer labels y must have shape \(batch,\)"),
])
def test_bad_batch(x, y, match):
    rule, params, feedback = _setup()
    with pytest.raises(ValueError, match=match):
        jdfa.update_direction(NET, rule, params, feedback, x, y)
    with pytest.raises(ValueError, match=match):
        jdfa.loss(NET, params, x, y)
    with pytest.raises(ValueError, match=match):
        jdfa.align(NET, rule, params, feedback, x, y)


def test_bad_batch_in_the_jitted_step():
    rule = jdfa.dfa()
    opt = optax.sgd(0.1)
    step = jdfa.make_train_step(NET, rule, opt)
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, opt)
    with pytest.raises(ValueError, match="in_features=5"):
        step(state, jnp.zeros((2, 7)), jnp.array([0, 1]))


def test_bad_x_for_apply():
    _, params, _ = _setup()
    with pytest.raises(ValueError, match="in_features=5"):
        jdfa.apply(NET, params, jnp.zeros((3, 4)))


def test_feedback_of_an_incompatible_net_or_rule():
    rule, params, _ = _setup()
    x, y = jnp.zeros((2, 5)), jnp.array([0, 1])
    other = jdfa.MLP(in_features=5, width=9, depth=3, out_features=4)
    _, other_feedback = jdfa.init(jax.random.key(0), other, rule)
    with pytest.raises(ValueError, match=r"feedback does not fit dfa .*expected shapes output=\(3, 6, 4\)"):
        jdfa.update_direction(NET, rule, params, other_feedback, x, y)
    _, fa_feedback = jdfa.init(jax.random.key(0), NET, jdfa.fa())
    with pytest.raises(ValueError, match="feedback does not fit dfa"):
        jdfa.update_direction(NET, rule, params, fa_feedback, x, y)
    with pytest.raises(TypeError, match="feedback must be a jdfa.Feedback"):
        jdfa.update_direction(NET, rule, params, {"B": 1}, x, y)


def test_params_of_an_incompatible_net():
    rule, _, feedback = _setup()
    other = jdfa.MLP(in_features=5, width=6, depth=4, out_features=4)
    other_params, _ = jdfa.init(jax.random.key(0), other, rule)
    with pytest.raises(ValueError, match="params do not fit"):
        jdfa.update_direction(NET, rule, other_params, feedback, jnp.zeros((2, 5)), jnp.array([0, 1]))


def test_checks_do_not_block_tracing():
    """Label values are only checked on concrete input: traced labels pass through."""
    rule, params, feedback = _setup()
    x, y = jnp.zeros((2, 5)), jnp.array([0, 3])
    jax.jit(lambda y: jdfa.update_direction(NET, rule, params, feedback, x, y))(y)
    jax.make_jaxpr(lambda y: jdfa.loss(NET, params, x, y))(y)
