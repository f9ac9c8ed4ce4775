"""The shape of the computation, read off `jax.make_jaxpr`: what is parallel, what is sequential,
and that nothing unrolls with depth."""

import jax
import pytest

import jdfa


def _eqns(jaxpr):
    """Every equation of a jaxpr, sub-jaxprs (scan bodies, ...) included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            subs = param if isinstance(param, (list, tuple)) else [param]
            for sub in subs:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def _update_jaxpr(rule, depth, width=8, batch=4):
    net = jdfa.MLP(in_features=6, width=width, depth=depth, out_features=3)
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    x = jax.numpy.zeros((batch, 6))
    y = jax.numpy.zeros((batch,), jax.numpy.int32)
    return jax.make_jaxpr(lambda p, f: jdfa.update_direction(net, rule, p, f, x, y))(
        params, feedback).jaxpr


def _scan_lengths(jaxpr):
    return sorted(e.params["length"] for e in _eqns(jaxpr) if e.primitive.name == "scan")


def test_dfa_has_only_the_forward_scan():
    assert _scan_lengths(_update_jaxpr(jdfa.dfa(), 50)) == [49]


def test_bp_has_forward_and_backward_scans():
    assert _scan_lengths(_update_jaxpr(jdfa.bp(), 50)) == [49, 49]


def test_dfa_deltas_and_weight_updates_are_single_batched_ops():
    """Outside the forward scan, the hidden layers are touched by exactly two dots, each over all
    layers at once: one for every delta (B stacked, 50 layers), one for every weight update (the
    49 hidden-to-hidden layers, the layer axis a batch dimension)."""
    jaxpr = _update_jaxpr(jdfa.dfa(), 50)
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    over_layers = [e for e in dots if e.outvars[0].aval.ndim == 3]
    assert sorted(e.outvars[0].aval.shape[0] for e in over_layers) == [49, 50]
    weight_dot = next(e for e in over_layers if e.outvars[0].aval.shape[0] == 49)
    assert weight_dot.params["dimension_numbers"][1] == ((0,), (0,))  # batched over layers
    assert len(dots) == 6  # + input/output forward, input/output weight updates


@pytest.mark.parametrize("rule", [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.fp(2), jdfa.bdfa(3),
                                  jdfa.bdfa(3, "backprop"), jdfa.shallow()], ids=lambda rule: rule.spec)
def test_equation_count_is_flat_in_depth(rule):
    small, large = _update_jaxpr(rule, 10), _update_jaxpr(rule, 100)
    assert len(list(_eqns(small))) == len(list(_eqns(large)))


@pytest.mark.parametrize("block_size, lower_blocks", [(25, 3), (10, 9)], ids=["blocks25", "blocks10"])
@pytest.mark.parametrize("boundary", ["direct", "backprop"])
def test_bdfa_is_sequential_over_blocks_not_layers(boundary, block_size, lower_blocks):
    # depth 100, blocks of 25: the forward scan (99 steps) and one scan over the 3 lower blocks.
    assert _scan_lengths(_update_jaxpr(jdfa.bdfa(block_size, boundary), 100)) == [lower_blocks, 99]


def test_bdfa_direct_sequential_path_has_no_forward_weights():
    """With the paper's direct boundary, the block scan carries only feedback matrices: its body
    reads nothing of shape (width, width) that is a forward weight (it gets no params at all)."""
    rule = jdfa.bdfa(10)
    net = jdfa.MLP(in_features=6, width=8, depth=100, out_features=3)
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    x = jax.numpy.zeros((4, 6))
    y = jax.numpy.zeros((4,), jax.numpy.int32)
    closed = jax.make_jaxpr(lambda f, w: jdfa.update_direction(
        net, rule, params._replace(hidden=params.hidden._replace(w=w)), f, x, y))(
        feedback, params.hidden.w)
    w_var = closed.jaxpr.invars[-1]
    block_scans = [e for e in closed.jaxpr.eqns if e.primitive.name == "scan" and e.params["length"] == 9]
    assert len(block_scans) == 1
    assert w_var not in block_scans[0].invars


def test_fp_bp_part_scales_with_bp_depth():
    assert _scan_lengths(_update_jaxpr(jdfa.fp(4), 50)) == [3, 49]
