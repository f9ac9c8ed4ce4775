"""The feedback points' norms (`jdfa.net.Net.point_norms`) in a run's metrics: every evaluation
records one per point, for the MLP (its hidden layers' ``h``, checked by hand) and the transformer
(its residual stream), and the run's figure draws them beside the per-block alignment."""

import dataclasses
import json

import jax
import numpy as np
import pytest

import jdfa
from jdfa.blocks import TransformerLM
from jdfa.driver import plots

MLP = jdfa.MLP(5, 16, 3, 4)
TRANSFORMER = TransformerLM(vocab=9, context=8, width=16, n_blocks=2, heads=2)


def data(net):
    """Random ``((x, y), (x_test, y_test))`` that fit ``net``: features and classes for the MLP,
    tokens and next tokens for the transformer."""
    rng = np.random.default_rng(0)
    if isinstance(net, TransformerLM):
        t = rng.integers(0, net.vocab, (96, net.context + 1)).astype(np.int32)
        return (t[:64, :-1], t[:64, 1:]), (t[64:, :-1], t[64:, 1:])
    x, y = rng.normal(size=(96, net.in_features)).astype(np.float32), rng.integers(0, 4, 96)
    return (x[:64], y[:64]), (x[64:], y[64:])


def run(net, tmp_path, align_every=0):
    """A short DFA run of ``net``: its summary and its metrics records."""
    config = jdfa.Config(net=net, rule=jdfa.dfa(), optimizer=jdfa.Optimizer("adam", lr=3e-3), steps=6,
                         batch_size=16, eval_every=3, align_every=align_every, train_eval_size=32,
                         progress=False, out=str(tmp_path))
    summary = jdfa.train(config, data=data(net))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return summary, records


@pytest.mark.parametrize("net", [MLP, TRANSFORMER], ids=["mlp", "transformer"])
def test_every_evaluation_records_one_norm_per_feedback_point(net, tmp_path):
    summary, records = run(net, tmp_path)
    evaluated = [r for r in records if "test_loss" in r]
    assert [r["step"] for r in evaluated] == [0, 3, 6]
    for r in evaluated:
        assert len(r["point_norms"]) == net.depth and np.all(np.isfinite(r["point_norms"]))
        assert all(n > 0 for n in r["point_norms"])
    if net is MLP:  # the last evaluation's, by hand: the RMS of each hidden layer's h per example
        p, (_, (h, _)) = jax.tree.map(np.asarray, summary["state"].params), data(net)
        want = []
        for w, b in [(p.input.w, p.input.b), *zip(p.hidden.w, p.hidden.b)]:
            h = np.tanh(h @ w + b)
            want.append(np.mean(np.sqrt(np.mean(h ** 2, axis=1))))
        np.testing.assert_allclose(evaluated[-1]["point_norms"], want, rtol=1e-4)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_the_transformer_norms_are_its_residual_stream_per_token(norm):
    """`point_norms` is the RMS over d_model of each token's residual stream at every point,
    averaged over examples and tokens; post-norm, each block's point is a normed output: about 1."""
    net = dataclasses.replace(TRANSFORMER, norm=norm)
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    x = data(net)[1][0]
    points = net.forward(params, x, False)[0].points
    hs = [points[0].a[0], *points[1].a]  # the embedding's point, then the stacked blocks'
    want = [np.mean(np.sqrt(np.mean(np.square(h), axis=-1))) for h in hs]
    got = jax.jit(net.point_norms)(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    if norm == "post":
        np.testing.assert_allclose(got[1:], 1, atol=1e-3)


@pytest.mark.parametrize("net", [MLP, TRANSFORMER], ids=["mlp", "transformer"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_one_measured_pass_gives_the_logits_and_the_norms(net, jit):
    """The evaluation's one forward pass (`jdfa.net.Net.measured_apply`) gives `apply`'s logits,
    and its norms are `point_norms` (checked by hand above)."""
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    x = data(net)[1][0]
    wrap = jax.jit if jit else (lambda f: f)
    logits, norms = wrap(net.measured_apply)(params, x)
    np.testing.assert_allclose(logits, net.apply(params, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norms, wrap(net.point_norms)(params, x), rtol=1e-5)


def test_the_figure_draws_the_point_norms_and_the_transformer_alignment(tmp_path):
    """With ``align_every`` the transformer's run records an angle per block (its stacked decoder
    blocks each their own) and the figure draws loss, accuracy, angles and norms."""
    _, records = run(TRANSFORMER, tmp_path, align_every=3)
    aligned = [r for r in records if "alignment_angle" in r]
    assert aligned and all(len(r["alignment_angle"]) == TRANSFORMER.depth + 1 for r in aligned)
    assert all(np.all(np.isfinite(r["alignment_angle"])) for r in aligned)
    fig = plots.curves_figure(records)
    assert [ax.get_ylabel() for ax in fig.axes][2:] == [
        "angle to the BP update (degrees)", "RMS of each feedback point (test examples)"]
    assert len(fig.axes[3].lines) == TRANSFORMER.depth
    assert (tmp_path / "curves.png").exists()
