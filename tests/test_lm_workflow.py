"""The language-model workflow after training: `jdfa.load_run`, ``jdfa eval`` (the recorded
validation loss, perplexity, bits per byte, the unigram and bigram baselines), ``jdfa sample`` and
`jdfa.generate` (deterministic for a seed, within the net's context), one byte vocabulary for the
command line and Python, and clear errors for a folder that cannot be sampled or evaluated."""

import dataclasses
import json
import math

import chex
import jax
import numpy as np
import pytest

import jdfa
from jdfa.data import text
from jdfa.driver import cli, from_flags, lm, net_for_data
from tests.test_transformer import corpus

FLAGS = dict(model="transformer", dataset="sotu", context=16, width=32, depth=1, heads=2, batch_size=8,
             rule="dfa", optimizer="adam", lr=3e-3, steps=20, eval_every=10, train_eval_size=32,
             progress=False)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny DFA language model trained from Python on a small corpus: ``(out, summary)``."""
    data_dir = tmp_path_factory.mktemp("text")
    corpus(data_dir / "sotu")
    config, data = from_flags({**FLAGS, "data_dir": str(data_dir), "out": str(data_dir / "run")})
    return data_dir / "run", jdfa.train(config, data=data)


def last_record(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines][-1]


def test_load_run_round_trips_the_run(lm_run):
    out, summary = lm_run
    net, params, config = jdfa.load_run(out)
    saved = json.loads((out / "config.json").read_text())["config"]
    assert config == jdfa.Config.from_dict(saved) and net == config.net
    chex.assert_trees_all_equal(params, summary.state.params)  # exactly the final parameters
    x = np.zeros((2, 16), np.int32)
    chex.assert_trees_all_equal(jdfa.apply(net, params, x), jdfa.apply(net, summary.state.params, x))


def test_eval_gives_the_last_recorded_validation_loss_and_the_baselines(lm_run, capsys):
    out, summary = lm_run
    assert cli.main(["eval", str(out)]) == 0
    said = capsys.readouterr()
    result = json.loads(said.out)
    assert f"validation loss {result['test_loss']:.4f} (perplexity" in said.err and "bigram" in said.err
    last = last_record(out)
    assert result["step"] == last["step"] == 20
    assert result["test_loss"] == pytest.approx(last["test_loss"], rel=1e-5)
    assert result["test_perplexity"] == pytest.approx(math.exp(result["test_loss"]))
    assert result["test_bits_per_byte"] == pytest.approx(result["test_loss"] / math.log(2))
    # the summary reports what the last evaluation recorded
    assert summary["test_perplexity"] == last["test_perplexity"]
    assert summary["test_bits_per_byte"] == last["test_bits_per_byte"]
    # a corpus of words: the byte before says much about the next
    assert 0 < result["bigram_loss"] < result["unigram_loss"] < math.log(256)
    assert result["bigram_perplexity"] == pytest.approx(math.exp(result["bigram_loss"]))


def test_a_run_of_a_sweep_loads_from_the_sweeps_checkpoints(lm_run, tmp_path):
    """A sweep's runs share its checkpoints, stacked; each run's folder still loads and evaluates."""
    data_dir = lm_run[0].parent
    config, data = from_flags({**FLAGS, "steps": 6, "eval_every": 6, "data_dir": str(data_dir),
                               "out": str(tmp_path / "sweep")})
    names = [run["name"] for run in jdfa.sweep(config, data=data, seeds=2)["runs"]]
    runs = [tmp_path / "sweep" / name for name in names]
    for run in runs:
        assert lm.evaluate_run(run)["test_loss"] == pytest.approx(last_record(run)["test_loss"], rel=1e-5)
    first, second = (jdfa.load_run(run)[1] for run in runs)
    chex.assert_trees_all_equal_shapes(first, second)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second)))


def test_sample_is_deterministic_for_a_seed_and_reads_only_the_context(lm_run, capsys):
    out, _ = lm_run
    same = [lm.sample_run(out, "The cat", 24, temperature=1.0, seed=3) for _ in range(2)]
    other, _ = lm.sample_run(out, "The cat", 24, temperature=1.0, seed=4)
    assert same[0] == same[1] and same[0][0] != other and same[0][1] == 0
    assert same[0][0].startswith("The cat")
    long = "A dog ran to its red ball. " * 2  # 54 bytes, 38 beyond the context of 16
    cut_text, cut = lm.sample_run(out, long, 24, seed=5)
    tail_text, _ = lm.sample_run(out, long[-16:], 24, seed=5)
    assert cut == len(long) - 16 and cut_text[len(long):] == tail_text[16:]
    assert cli.main(["sample", str(out), "--prompt", long, "--tokens", "24", "--seed", "5",
                     "--temperature", "1"]) == 0
    said = capsys.readouterr()
    assert said.out == cut_text + "\n" and f"first {cut} bytes" in said.err


def test_generate_feeds_at_most_the_context_and_greedy_ignores_the_key():
    net = jdfa.blocks.TransformerLM(vocab=11, context=6, width=8, n_blocks=1, heads=2)
    params = net.init_params(jax.random.key(0))
    prompt = np.arange(15) % 11
    key = jax.random.key(1)
    drawn = jdfa.generate(net, params, prompt, 9, key)
    assert drawn.shape == (9,) and drawn.dtype == np.int32 and int(drawn.max()) < 11
    np.testing.assert_array_equal(drawn, jdfa.generate(net, params, prompt[-6:], 9, key))
    greedy = jdfa.generate(net, params, prompt[:2], 5, key, temperature=0.0)
    np.testing.assert_array_equal(greedy, jdfa.generate(net, params, prompt[:2], 5, jax.random.key(7), 0.0))
    # by hand: each token the argmax at the text's last position, over its last 6 tokens
    text_so_far = list(prompt[:2])
    for _ in range(5):
        window = np.array(text_so_far[-6:], np.int32)
        logits = jdfa.apply(net, params, np.pad(window, (0, 6 - len(window)))[None])[0, len(window) - 1]
        text_so_far.append(int(np.argmax(logits)))
    np.testing.assert_array_equal(greedy, text_so_far[2:])
    with pytest.raises(ValueError, match="at least one integer token"):
        jdfa.generate(net, params, np.array([], np.int32), 3, key)
    with pytest.raises(ValueError, match="needs a language model"):
        jdfa.generate(jdfa.MLP(4, 8, 1, 3), None, prompt, 3, key)


def test_the_command_line_and_python_share_one_byte_vocabulary(lm_run):
    out, summary = lm_run
    assert jdfa.load_run(out)[0].vocab == 256 and summary["status"] == "finished"
    assert jdfa.data.vocabulary("sotu") == text.VOCAB == jdfa.blocks.TransformerLM().vocab == 256
    assert jdfa.data.vocabulary("mnist") is None
    words = ((np.full((4, 6), 3, np.int32),) * 2,) * 2
    assert net_for_data(words, "transformer").vocab == 4  # no declared vocabulary: the data's
    with pytest.raises(ValueError, match="outside its declared vocabulary of 2"):
        net_for_data(words, "transformer", vocab=2)


def test_the_bigram_baseline_scores_each_byte_after_the_one_before():
    train = np.array([1, 2, 1, 2, 1, 2, 1], np.int32)
    # after 1: 2 seen 3 times, 256 smoothed outcomes: p(2 | 1) = 4 / 259; after 2: p(1 | 2) = 4 / 259
    assert text.bigram_loss(train, np.array([1, 2, 1])) == pytest.approx(-math.log(4 / 259))
    assert text.bigram_loss(train, np.array([2, 2])) == pytest.approx(-math.log(1 / 259))
    x, y = text.windows(np.arange(13), 4)
    np.testing.assert_array_equal(text.tokens_of(x, y), np.arange(13))


def test_runs_that_cannot_be_sampled_or_evaluated_say_why(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        jdfa.load_run(tmp_path)
    x = np.random.default_rng(0).uniform(size=(64, 6)).astype(np.float32)
    toy = ((x, (x[:, 0] > 0.5).astype(np.int32)),) * 2
    config = jdfa.Config(net=jdfa.MLP(6, 8, 1, 2), steps=2, eval_every=2, batch_size=16, train_eval_size=16,
                         progress=False, out=str(tmp_path / "mlp"))
    jdfa.train(config, data=toy)
    with pytest.raises(ValueError, match="is not a language model"):
        lm.sample_run(tmp_path / "mlp", "hello", 4)
    with pytest.raises(ValueError, match="arrays passed to jdfa.train"):
        lm.evaluate_run(tmp_path / "mlp")
    jdfa.train(dataclasses.replace(config, out=str(tmp_path / "bare"), checkpoint=False), data=toy)
    with pytest.raises(ValueError, match=r"no checkpoints \(it was trained with Config\(checkpoint=False\)"):
        jdfa.load_run(tmp_path / "bare")
