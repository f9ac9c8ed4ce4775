"""The transformer's options toward Launay et al. 2020's DFA (issue 31): post-norm decoder blocks,
TinyDFA's feedback normalisation, the feedback read at the top of the stack (``fp(1)``) against
the per-token reference, and the command line's flags for them."""

import functools

import chex
import jax
import numpy as np
import pytest

import jdfa
from jdfa.blocks import TransformerLM
from tests.test_transformer import NET, NORMS, POST, reference_dfa, tokens


@NORMS
def test_fp1_reads_the_true_top_delta_through_d_by_d_feedback(variant, net):
    """``fp(1)`` on the transformer: the feedback signal read at the top of the stack (the last
    point's true delta) and projected to every point below by a (d, d) ``B`` per token."""
    rule = jdfa.fp(1)
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    chex.assert_shape([feedback.layers[0], feedback.layers[1][0]],
                      [(net.width, net.width), (net.n_blocks - 1, net.width, net.width)])
    x, y = tokens()
    got = variant(lambda p, f: jdfa.update_direction(net, rule, p, f, x, y))(params, feedback)
    chex.assert_trees_all_close(got, reference_dfa(net, params, feedback, x, y, top=True), rtol=1e-5,
                                atol=1e-7)


@pytest.mark.parametrize("shared", [False, True], ids=["own_feedback", "shared_feedback"])
@pytest.mark.parametrize("rule", [jdfa.dfa, functools.partial(jdfa.bdfa, 1)], ids=["dfa", "bdfa1"])
def test_tinydfa_feedback_is_uniform_over_the_root_of_the_widest_point(rule, shared):
    """``feedback_init="tinydfa"``: every ``B`` (reading ``e`` or a delta) uniform within
    ``scale / sqrt(d_model)`` -- the widest point's size, not the vocabulary's ``uniform`` reads --
    on the transformer, and ``scale / sqrt(width)`` on the MLP; with shared feedback one ``B``."""
    rule = rule(feedback_init="tinydfa", feedback_scale=2.0, shared_feedback=shared)
    transformer = TransformerLM(vocab=40, context=6, width=16, n_blocks=2, heads=2)
    for net, widest in ((transformer, 16), (jdfa.MLP(5, 16, 3, 40), 16)):
        _, feedback = jdfa.init(jax.random.key(0), net, rule)
        leaves = [b for b in jax.tree.leaves(feedback) if b.size]
        bound = np.max([np.abs(b).max() for b in leaves])
        assert 0.95 * 2.0 / np.sqrt(widest) < bound <= 2.0 / np.sqrt(widest), (net, bound)
        if shared and rule.name == "dfa":
            matrices = np.concatenate([np.reshape(b, (-1, *b.shape[-2:])) for b in leaves])
            np.testing.assert_array_equal(matrices, np.broadcast_to(matrices[0], matrices.shape))


def test_the_command_line_builds_post_norm_blocks_and_tinydfa_feedback():
    """``--norm post --feedback-init tinydfa`` reach the net's field and the rule's."""
    words = ((np.zeros((4, 6), np.int32),) * 2, (np.zeros((4, 6), np.int32),) * 2)
    config, _ = jdfa.driver.flags.from_flags({"model": "transformer", "norm": "post", "heads": 2, "width": 8,
                                              "feedback_init": "tinydfa"}, data=words)
    assert config.net.norm == "post" and config.rule.feedback_init == "tinydfa"
    assert jdfa.driver.flags.config_flags(config)["norm"] == "post"
    with pytest.raises(ValueError, match="norm"):
        jdfa.driver.flags.from_flags({"model": "transformer", "norm": "middle"}, data=words)


def test_post_norm_blocks_norm_each_residual_sum():
    """A post-norm block is ``LN(h + mlp(h))`` of ``h = LN(h_in + attn(h_in))``: each point is
    normed per token (mean 0, variance 1 at the initial unit scale and zero shift), and the pre-norm
    net of the same parameters differs."""
    params, _ = jdfa.init(jax.random.key(0), POST, jdfa.bp())
    x, _ = tokens()
    trace = POST.forward(params, x, False)[0]
    blocks = trace.points[1].a  # (n_blocks, N, T, d)
    np.testing.assert_allclose(blocks.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(blocks.var(-1), 1, atol=1e-3)
    assert not np.allclose(jdfa.apply(POST, params, x), jdfa.apply(NET, params, x))
