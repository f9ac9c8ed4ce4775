"""Equivalences between rules, against jax.grad, against a per-layer reference and by hand."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdfa
from tests import reference

DEPTH = 7
NET = jdfa.MLP(in_features=13, width=11, depth=DEPTH, out_features=5, activation="tanh")


def batch(net=NET, n=9, seed=1):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, net.in_features))
    y = jax.random.randint(ky, (n,), 0, net.out_features)
    return x, y


def setup(rule, net=NET, seed=0):
    params, feedback = jdfa.init(jax.random.key(seed), net, rule)
    return params, feedback


ALL_RULES = [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.fp(0), jdfa.fp(1), jdfa.fp(3), jdfa.fp(DEPTH),
             jdfa.fp(1, "error"), jdfa.fp(3, "error"),
             jdfa.bdfa(1), jdfa.bdfa(2), jdfa.bdfa(3), jdfa.bdfa(DEPTH), jdfa.bdfa(100),
             jdfa.bdfa(1, "backprop"), jdfa.bdfa(2, "backprop"), jdfa.bdfa(3, "backprop"),
             jdfa.bdfa(DEPTH, "backprop"), jdfa.shallow()]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse",
                                  "sigmoid_mse"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_bp_equals_jax_grad(activation, loss, variant):
    net = jdfa.MLP(13, 11, DEPTH, 5, activation=activation, loss=loss)
    params, feedback = setup(jdfa.bp(), net)
    x, y = batch(net)
    g = variant(lambda p, x, y: jdfa.update_direction(net, jdfa.bp(), p, feedback, x, y))(params, x, y)
    want = jax.grad(lambda p: jdfa.loss(net, p, x, y))(params)
    chex.assert_trees_all_close(g, want, rtol=1e-5, atol=1e-7)


def test_bp_equals_jax_grad_with_float_targets():
    net = jdfa.MLP(13, 11, 3, 5, loss="mse")
    params, feedback = setup(jdfa.bp(), net)
    x, _ = batch(net)
    t = jax.random.normal(jax.random.key(5), (x.shape[0], 5))
    g = jdfa.update_direction(net, jdfa.bp(), params, feedback, x, t)
    want = jax.grad(lambda p: jdfa.loss(net, p, x, t))(params)
    chex.assert_trees_all_close(g, want, rtol=1e-5, atol=1e-7)


IDENTITIES = [
    (jdfa.fp(0), jdfa.dfa()),
    (jdfa.fp(DEPTH), jdfa.bp()),
    (jdfa.fp(0, "error"), jdfa.dfa()),
    (jdfa.fp(DEPTH, "error"), jdfa.bp()),
    (jdfa.bdfa(DEPTH), jdfa.dfa()),
    (jdfa.bdfa(DEPTH + 5), jdfa.dfa()),
    (jdfa.bdfa(1, "direct"), jdfa.fa()),
    (jdfa.bdfa(1, "backprop"), jdfa.bp()),
    (jdfa.bdfa(DEPTH, "backprop"), jdfa.fp(1)),
    (jdfa.bdfa(DEPTH + 5, "backprop"), jdfa.fp(1)),
]


@pytest.mark.parametrize("a, b", IDENTITIES, ids=[f"{a.spec}={b.spec}" for a, b in IDENTITIES])
def test_identities(a, b, variant):
    x, y = batch()
    params, feedback = setup(a)
    _, feedback_b = setup(b)
    chex.assert_trees_all_equal_shapes(feedback, feedback_b)
    ga = variant(lambda p, f: jdfa.update_direction(NET, a, p, f, x, y))(params, feedback)
    gb = variant(lambda p, f: jdfa.update_direction(NET, b, p, f, x, y))(params, feedback)
    chex.assert_trees_all_close(ga, gb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("k", [1, 3])
def test_fp_from_the_error_is_dfa_below_and_bp_above(k, variant):
    """``fp(k, source="error")``: the lower layers get DFA's updates (its first depth - k feedback
    matrices), the top k layers and the output BP's."""
    x, y = batch()
    rule = jdfa.fp(k, "error")
    params, feedback = setup(jdfa.dfa())
    own = jdfa.Feedback(output=feedback.output[:DEPTH - k], hidden=feedback.hidden)
    got = variant(lambda p, f: jdfa.update_direction(NET, rule, p, f, x, y))(params, own)
    dfa = jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x, y)
    bp = jdfa.update_direction(NET, jdfa.bp(), params, jdfa.init(jax.random.key(0), NET, jdfa.bp())[1], x, y)
    lower, upper = DEPTH - k, DEPTH - 1  # hidden.w stacks layers 2 .. depth
    chex.assert_trees_all_close(got.input, dfa.input, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(got.hidden.w[:lower - 1], dfa.hidden.w[:lower - 1], rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(got.hidden.w[lower - 1:upper], bp.hidden.w[lower - 1:upper], rtol=1e-5,
                                atol=1e-7)
    chex.assert_trees_all_close(got.output, bp.output, rtol=1e-5, atol=1e-7)
    assert jdfa.rules.parse("fp3-error") == jdfa.fp(3, "error") and jdfa.fp(3, "error").spec == "fp3-error"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.spec)
@pytest.mark.parametrize("use_derivative", [True, False], ids=["with_derivative", "without_derivative"])
def test_matches_per_layer_reference(rule, use_derivative, variant):
    if not use_derivative:
        if rule.name in ("bp", "shallow"):
            pytest.skip("use_derivative is an option of the feedback rules")
        rule = dataclasses.replace(rule, use_derivative=False)
    params, feedback = setup(rule)
    x, y = batch()

    def fn(p, f, x, y):
        return jdfa.update_direction(NET, rule, p, f, x, y)

    g = variant(fn)(params, feedback, x, y)
    want_w, want_b = reference.deltas(rule, params, feedback, x, y, use_derivative=use_derivative)
    got_w, got_b = reference.as_lists(g)
    for i, (gw, ww, gb, wb) in enumerate(zip(got_w, want_w, got_b, want_b)):
        np.testing.assert_allclose(gw, ww, rtol=2e-4, atol=1e-6, err_msg=f"{rule} layer {i + 1} W")
        np.testing.assert_allclose(gb, wb, rtol=2e-4, atol=1e-6, err_msg=f"{rule} layer {i + 1} b")


def test_one_hidden_layer_dfa_by_hand():
    """Nøkland's equations (PyTorch report eq. 10-14) for a 1-hidden-layer net, in NumPy."""
    net = jdfa.MLP(in_features=3, width=4, depth=1, out_features=2, activation="tanh", loss="mse")
    params, feedback = setup(jdfa.dfa(), net)
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], np.float32)
    t = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    w1, b1 = np.asarray(params.input.w), np.asarray(params.input.b)
    w2, b2 = np.asarray(params.output.w), np.asarray(params.output.b)
    B1 = np.asarray(feedback.output[0])  # (width, out)
    a1 = x @ w1 + b1
    h1 = np.tanh(a1)
    y_hat = h1 @ w2 + b2
    e = (y_hat - t) / len(x)  # e = y_hat - y, with the batch mean's 1/N
    d1 = (e @ B1.T) * (1 - np.tanh(a1) ** 2)  # (B1 e) * f'(a1), row form
    g = jdfa.update_direction(net, jdfa.dfa(), params, feedback, jnp.asarray(x), jnp.asarray(t))
    np.testing.assert_allclose(g.input.w, x.T @ d1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g.input.b, d1.sum(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g.output.w, h1.T @ e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g.output.b, e.sum(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.spec)
def test_output_layer_update_is_bps_under_every_rule(rule):
    x, y = batch()
    params, _ = setup(jdfa.bp())
    want = jax.grad(lambda p: jdfa.loss(NET, p, x, y))(params).output
    _, feedback = setup(rule)
    g = jdfa.update_direction(NET, rule, params, feedback, x, y)
    chex.assert_trees_all_close(g.output, want, rtol=1e-6, atol=1e-8)


def test_shallow_leaves_hidden_layers_alone():
    x, y = batch()
    params, feedback = setup(jdfa.shallow())
    g = jdfa.update_direction(NET, jdfa.shallow(), params, feedback, x, y)
    assert all(float(jnp.abs(a).max()) == 0 for a in jax.tree.leaves((g.input, g.hidden)))
    state = jdfa.init_train_state(jax.random.key(0), NET, jdfa.shallow(), optax.sgd(0.1))
    start = jax.tree.map(np.asarray, state.params)
    step = jdfa.make_train_step(NET, jdfa.shallow(), optax.sgd(0.1))
    for _ in range(3):
        state, _ = step(state, x, y)
    chex.assert_trees_all_equal((state.params.input, state.params.hidden), (start.input, start.hidden))
    assert not np.allclose(state.params.output.w, start.output.w)


def test_dfa_updates_differ_from_bp_but_descend():
    """A cheap sanity check that the rules are not secretly the same: DFA's hidden updates differ
    from the gradient, yet (with f' kept) make a positive inner product with it on average."""
    x, y = batch(n=64)
    params, feedback = setup(jdfa.dfa())
    al = jdfa.align(NET, jdfa.dfa(), params, feedback, x, y)
    chex.assert_shape((al.cosine, al.angle, al.norm_ratio), [(DEPTH + 1,)] * 3)
    assert np.all(np.asarray(al.cosine[:-1]) < 0.999)
    np.testing.assert_allclose(al.cosine[-1], 1.0, rtol=1e-5)
    np.testing.assert_allclose(al.norm_ratio[-1], 1.0, rtol=1e-5)
    bp_al = jdfa.align(NET, jdfa.bp(), params, jdfa.Feedback(*setup(jdfa.bp())[1]), x, y)
    np.testing.assert_allclose(bp_al.cosine, 1.0, rtol=1e-5)
    np.testing.assert_allclose(bp_al.angle, 0.0, atol=0.5)


def test_alignment_matches_direct_computation():
    x, y = batch(n=32)
    rule = jdfa.bdfa(3)
    params, feedback = setup(rule)
    al = jax.jit(lambda p, f: jdfa.align(NET, rule, p, f, x, y))(params, feedback)
    u = jdfa.update_direction(NET, rule, params, feedback, x, y)
    g = jax.grad(lambda p: jdfa.loss(NET, p, x, y))(params)
    uw, ub = reference.as_lists(u)
    gw, gb = reference.as_lists(g)
    for i in range(DEPTH + 1):
        a = np.concatenate([uw[i].ravel(), ub[i]])
        b = np.concatenate([gw[i].ravel(), gb[i]])
        cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
        np.testing.assert_allclose(al.cosine[i], cos, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(al.norm_ratio[i], np.linalg.norm(a) / np.linalg.norm(b), rtol=1e-4)
        np.testing.assert_allclose(al.angle[i], np.degrees(np.arccos(np.clip(cos, -1, 1))), atol=0.05)


def master_example_reference(rule, params, feedback, x, y, groups):
    """The update of master examples: per group, average x and every h and a, average the
    per-example errors, form the deltas from those, and average the groups' updates."""
    net = NET
    p = reference.layers(params)
    f, df = reference.ACT["tanh"]
    xs = np.asarray(x, np.float64)
    # per-example forward, column form
    h = [xs.T]
    a = [None]
    for w, b in p[:-1]:
        a.append(w @ h[-1] + b[:, None])
        h.append(f(a[-1]))
    a_y = p[-1][0] @ h[-1] + p[-1][1][:, None]
    e = reference.softmax_xent_error(a_y, np.asarray(y)) * len(xs)  # per-example errors
    B = reference.b_of(rule, net.depth, feedback)
    total = [np.zeros_like(w) for w, _ in p], [np.zeros_like(b) for _, b in p]
    for idx in groups:
        hm = [hh[:, idx].mean(1, keepdims=True) for hh in h]
        am = [None] + [aa[:, idx].mean(1, keepdims=True) for aa in a[1:]]
        em = e[:, idx].mean(1, keepdims=True)
        d = {net.depth + 1: em}
        for i in range(net.depth, 0, -1):
            d[i] = (B[i] @ em) * df(am[i]) if rule.name == "dfa" else (p[i][0].T @ d[i + 1]) * df(am[i])
        for i in range(1, net.depth + 2):
            total[0][i - 1] += d[i] @ hm[i - 1].T / len(groups)
            total[1][i - 1] += d[i][:, 0] / len(groups)
    return total


@pytest.mark.parametrize("mode", ["batch_average", "class_average"])
@pytest.mark.parametrize("rule", [jdfa.dfa(), jdfa.bp()], ids=lambda rule: rule.spec)
def test_batch_and_class_average(rule, mode, variant):
    x, y = batch(n=12)
    y = jnp.asarray([0, 0, 3, 3, 3, 1, 0, 1, 1, 3, 0, 0])  # classes 2 and 4 absent
    groups = {"batch_average": [np.arange(12)],
              "class_average": [np.flatnonzero(np.asarray(y) == c) for c in (0, 1, 3)]}[mode]
    params, feedback = setup(rule)
    g = variant(lambda p, f, x, y: jdfa.update_direction(
        NET, rule, p, f, x, y, batch_mode=mode))(params, feedback, x, y)
    want_w, want_b = master_example_reference(rule, params, feedback, x, y, groups)
    got_w, got_b = reference.as_lists(g)
    for gw, ww, gb, wb in zip(got_w, want_w, got_b, want_b):
        np.testing.assert_allclose(gw, ww, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(gb, wb, rtol=2e-4, atol=1e-6)


def test_batch_average_of_one_example_is_mean_mode():
    x, y = batch(n=1)
    params, feedback = setup(jdfa.dfa())
    a = jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x, y, batch_mode="batch_average")
    b = jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x, y, batch_mode="class_average")
    c = jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x, y)
    chex.assert_trees_all_close(a, c, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(b, c, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scheme, scale, want_std", [
    ("gaussian", 1.9, 1.9),
    ("gaussian", 1.0, 1.0),
    ("variance_scaling", 2.0, 2.0 / np.sqrt(10)),
    ("uniform", 1.0, 1.0 / np.sqrt(10) / np.sqrt(3)),
], ids=["gaussian-1.9", "gaussian-1.0", "variance_scaling-2.0", "uniform-1.0"])
def test_feedback_init_scheme_std(scheme, scale, want_std):
    net = jdfa.MLP(20, 300, 3, 10)
    rule = jdfa.dfa(feedback_init=scheme, feedback_scale=scale)
    _, fb = setup(rule, net)
    np.testing.assert_allclose(np.std(fb.output), want_std, rtol=0.03)


@pytest.mark.parametrize("scheme, gain", [("lecun_normal", 1.0), ("he_normal", 2.0), ("uniform", 1 / 3)])
def test_weight_init_variance(scheme, gain):
    """Every layer's weights have variance gain / fan_in and mean 0 (measured on 400x400 draws)."""
    params = jdfa.model.init_params(jax.random.key(0), jdfa.MLP(300, 400, 4, 10, weight_init=scheme))
    for name, w, fan_in in (("input", params.input.w, 300), ("hidden", params.hidden.w, 400),
                            ("output", params.output.w, 400)):
        np.testing.assert_allclose(np.var(w), gain / fan_in, rtol=0.03, err_msg=name)
        assert abs(np.mean(w)) < 0.05 * np.sqrt(gain / fan_in), name


def test_variance_preserving_init_keeps_a_deep_tanh_signal():
    """At depth 100, lecun_normal keeps the top hidden layer's activity (std 0.07 for inputs in [0, 1));
    uniform (variance 1/(3 fan_in)) loses it (std ~1e-20)."""
    x = jax.random.uniform(jax.random.key(1), (64, 200))
    spread = {}
    for scheme in ("lecun_normal", "uniform"):
        net = jdfa.MLP(200, 200, 100, 10, weight_init=scheme)
        trace = jdfa.forward(net, jdfa.model.init_params(jax.random.key(0), net), x)
        spread[scheme] = float(np.std(trace.h_top))
    assert spread["lecun_normal"] > 0.03 > 1000 * spread["uniform"]


def test_uniform_feedback_stays_within_its_limit():
    _, fb = setup(jdfa.dfa(feedback_init="uniform"), jdfa.MLP(20, 300, 3, 10))
    assert np.abs(fb.output).max() <= 1 / np.sqrt(10)


def test_shared_feedback_is_one_matrix_for_every_layer():
    _, fb = setup(jdfa.fa(shared_feedback=True), jdfa.MLP(20, 30, 4, 10))
    chex.assert_shape(fb.hidden, (3, 30, 30))
    np.testing.assert_array_equal(fb.hidden[0], fb.hidden[2])
    _, fb = setup(jdfa.fa(), jdfa.MLP(20, 30, 4, 10))
    assert not np.allclose(fb.hidden[0], fb.hidden[2])


@pytest.mark.parametrize("rule", [jdfa.dfa(), jdfa.bdfa(3), jdfa.fa(), jdfa.fp(2)],
                         ids=lambda rule: rule.spec)
def test_feedback_unchanged_after_ten_steps(rule):
    step = jdfa.make_train_step(NET, rule, optax.adam(1e-2))
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, optax.adam(1e-2))
    feedback0 = jax.tree.map(np.array, state.feedback)
    params0 = jax.tree.map(np.array, state.params)
    x, y = batch(n=32)
    for _ in range(10):
        state, metrics = step(state, x, y)
        assert bool(metrics["finite"])
    chex.assert_trees_all_equal(state.feedback, feedback0)
    assert int(state.step) == 10
    assert not np.allclose(state.params.input.w, params0.input.w)  # the params did move


def test_same_seed_bit_identical():
    def run():
        rule = jdfa.bdfa(2)
        step = jdfa.make_train_step(NET, rule, optax.adam(1e-2))
        state = jdfa.init_train_state(jax.random.key(42), NET, rule, optax.adam(1e-2))
        x, y = batch(n=32)
        losses = []
        for _ in range(5):
            state, m = step(state, x, y)
            losses.append(np.asarray(m["loss"]))
        return jax.tree.map(np.asarray, state.params), np.array(losses)

    (p1, l1), (p2, l2) = run(), run()
    chex.assert_trees_all_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)


def test_step_works_with_any_optax_transformation_and_schedule():
    schedule = optax.exponential_decay(1e-2, 5, 0.5)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule))
    rule = jdfa.dfa()
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, opt)
    step = jdfa.make_train_step(NET, rule, opt)
    x, y = batch(n=32)
    first = None
    for _ in range(30):
        state, m = step(state, x, y)
        first = first if first is not None else float(m["loss"])
    assert float(m["loss"]) < first


def test_non_finite_is_flagged():
    rule = jdfa.dfa()
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, optax.sgd(0.1))
    step = jdfa.make_train_step(NET, rule, optax.sgd(0.1))
    x, y = batch(n=8)
    state, m = step(state, x, y)
    assert bool(m["finite"])
    state, m = step(state, x.at[0, 0].set(jnp.nan), y)
    assert not bool(m["finite"])


def test_traceable_under_vmap_and_make_jaxpr():
    rule = jdfa.bdfa(3)
    params, feedback = setup(rule)
    x, y = batch(n=8)
    xs, ys = jnp.stack([x, x + 1]), jnp.stack([y, y])
    g = jax.vmap(lambda x, y: jdfa.update_direction(NET, rule, params, feedback, x, y))(xs, ys)
    chex.assert_shape(g.hidden.w, (2, DEPTH - 1, NET.width, NET.width))
    jax.make_jaxpr(lambda x, y: jdfa.loss(NET, params, x, y))(x, y)
    jax.make_jaxpr(lambda x: jdfa.apply(NET, params, x))(x)
    logits = jax.vmap(lambda x: jdfa.apply(NET, params, x))(xs)
    chex.assert_shape(logits, (2, 8, NET.out_features))


@pytest.mark.parametrize("rule", [
    jdfa.dfa(), jdfa.dfa(use_derivative=False), jdfa.bdfa(DEPTH), jdfa.fp(0),
], ids=["dfa", "dfa-without-derivative", f"bdfa{DEPTH}", "fp0"])
def test_remat_dfa_equals_stored_dfa(rule, variant):
    x, y = batch()
    params, feedback = setup(rule)
    want = jdfa.update_direction(NET, rule, params, feedback, x, y)
    got = variant(lambda p, f: jdfa.update_direction(NET, rule, p, f, x, y, remat=True))(params, feedback)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", [jdfa.bp(), jdfa.bdfa(2), jdfa.fp(1), jdfa.bdfa(DEPTH, "backprop"),
                                  jdfa.mix(1.0)], ids=str)
def test_remat_is_refused_for_other_rules(rule):
    """Also where the feedback is laid out as DFA's but the deltas are not (mix)."""
    x, y = batch()
    params, feedback = setup(rule)
    with pytest.raises(ValueError, match="remat is implemented for DFA"):
        jdfa.update_direction(NET, rule, params, feedback, x, y, remat=True)


def test_remat_is_refused_for_class_average():
    with pytest.raises(ValueError, match="batch_mode='class_average'"):
        jdfa.make_train_step(NET, jdfa.dfa(), optax.sgd(0.1), batch_mode="class_average",
                             remat=True)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_fprime_recomputed_from_h_is_the_jvps(activation, variant):
    """For tanh and sigmoid the forward pass does not store f'(a) but recomputes it from h where
    the deltas read it (`jdfa.activations.FPRIME_FROM_H`); it must be the JVP's own value, up to
    the rounding of a: the forward scan and the layer-by-layer loop below are two programs."""
    net = jdfa.MLP(20, 16, 5, 4, activation=activation)
    params = jdfa.model.init_params(jax.random.key(0), net)
    x = jax.random.uniform(jax.random.key(1), (8, 20))
    got = variant(lambda p, x: jdfa.forward(net, p, x).fprime)(params, x)
    h, want = x, []
    for w, b in [(params.input.w, params.input.b), *zip(params.hidden.w, params.hidden.b)]:
        a = h @ w + b
        want.append(jax.jvp(net.f, (a,), (jnp.ones_like(a),))[1])
        h = net.f(a)
    # a sums 20 (then 16) products, ~20 eps of 1.2e-7 each, carried through 5 layers whose f'
    # (slope at most 1) does not grow it: rtol 1e-5; atol 1e-6 for f' near 0 (saturated units).
    np.testing.assert_allclose(got, jnp.stack(want), rtol=1e-5, atol=1e-6)
