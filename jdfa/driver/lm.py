"""A run folder after training: `load_run` (the net, its trained parameters and the config),
`evaluate_run` (``jdfa eval RUN_DIR``: the validation loss and, for a language model, perplexity,
bits per byte and the unigram and bigram baselines) and `sample_run` (``jdfa sample RUN_DIR``:
text from a language model, `jdfa.sampling.generate`).

A run alone keeps its checkpoints in ``RUN_DIR/checkpoints``; a run of a sweep in the sweep's
folder, ``checkpoints/<program>``, stacked with the other runs of its program (`sweeps`). Either
way the newest readable checkpoint is the one read: at the end of a finished run, its last state.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np

from jdfa import data as datasets
from jdfa.data import text
from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.chunks import init_runs, run_keys, run_state
from jdfa.driver.config import Config
from jdfa.driver.evaluation import evaluate, token_metrics
from jdfa.driver.flags import GIVEN, load_data, spelled
from jdfa.sampling import context_of, generate, is_language_model


def load_run(path) -> tuple:
    """``(net, params, config)`` of the run in folder ``path``: its `jdfa.Config` (as its newest
    start or resume wrote it in ``config.json``), ``config.net`` and the parameters of its newest
    readable checkpoint (a pytree shaped like ``net.init_params``'s).

    Raises ValueError, naming the fix, for a folder without ``config.json`` or without checkpoints.
    """
    config, state, _ = restore(path)
    return config.net, state.params, config


def restore(path) -> tuple[Config, object, int]:
    """``(config, state, step)``: the run's config, the `jdfa.TrainState` of its newest readable
    checkpoint and that checkpoint's step."""
    path = Path(path)
    saved = _saved(path)
    config = Config.from_dict((saved.get("resumes") or [saved])[-1]["config"])
    directory, runs, r = _checkpoints_of(path, config)
    one = run_keys(config.seed)[0]
    like = jax.eval_shape(lambda: init_runs([one] * runs, [config.rule] * runs, config.net,
                                            config.optimizer, config.steps))
    checkpoints = Checkpoints(directory)
    try:
        restored = checkpoints.restore_latest(like)
    finally:
        checkpoints.close()
    if restored is None:
        raise ValueError(f"no checkpoint in {directory} could be read for the run in {path} (see the "
                         "warnings above); train it again")
    state, meta = restored
    return config, run_state(state, r), int(meta["step"])


def _saved(path: Path) -> dict:
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} holds no run: it has no config.json. Give the folder that "
                         f"{spelled('out', ...)} named when the run was trained (a run of a sweep: "
                         "the sweep's folder/<run name>)")
    return json.loads((path / "config.json").read_text())


def _checkpoints_of(path: Path, config: Config) -> tuple[Path, int, int]:
    """``(folder, R, r)``: where the run's checkpoints are, how many runs they stack, which is it."""
    if (path / "checkpoints").is_dir():
        return path / "checkpoints", 1, 0
    sweep = path.parent / "sweep_config.json"
    if sweep.is_file():
        saved = json.loads(sweep.read_text())
        if path.name in saved["names"]:
            i = saved["names"].index(path.name)
            p, members = next((p, m) for p, m in enumerate(saved["programs"]) if i in m)
            if (path.parent / "checkpoints" / str(p)).is_dir():
                return path.parent / "checkpoints" / str(p), len(members), members.index(i)
    off = "" if config.checkpoint else f" (it was trained with {spelled('checkpoint', False)})"
    raise ValueError(f"the run in {path} has no checkpoints{off}, so its trained weights are not "
                     f"there; train it again with checkpoints (the default) to load, evaluate or "
                     f"sample it")


def evaluate_run(path, data_dir: str | None = None) -> dict:
    """The run's newest checkpoint evaluated on its dataset's test (validation) split.

    Args:
      path: the run folder.
      data_dir: where to read the data (default: the run's own ``data_dir``, else
        ``$JDFA_DATA_DIR``).

    Returns:
      ``run``, ``step`` (the checkpoint's), ``test_loss`` (nats; per token for a language model,
      the number its ``metrics.jsonl`` records at that step) and ``test_accuracy``; for token labels
      also ``test_perplexity`` and ``test_bits_per_byte``; for a text dataset the baselines
      ``unigram_loss`` and ``bigram_loss`` (nats per byte, `jdfa.data.text`) with their perplexities.
    """
    path = Path(path)
    if _saved(path).get("data") == GIVEN:
        raise ValueError(f"the run in {path} was trained on arrays passed to jdfa.train(data=...), which "
                         "jdfa cannot load again by name; evaluate it from Python: net, params, config = "
                         "jdfa.load_run(path), then jdfa.loss(net, params, x, y)")
    config, state, step = restore(path)
    (x_train, y_train), (x_test, y_test) = load_data(config.dataset, data_dir or config.data_dir,
                                                     config.net.in_features)
    measured = evaluate(config.net, state.params, x_test, y_test)
    result = {"run": str(path), "step": step, "dataset": config.dataset,
              "test_loss": measured["loss"], "test_accuracy": measured["accuracy"]}
    if is_language_model(config.net):
        result.update(token_metrics(measured["loss"]))
    if datasets.vocabulary(config.dataset) is not None:
        train, test = text.tokens_of(x_train, y_train), text.tokens_of(x_test, y_test)
        # scored on the tokens the model predicts: every window's next tokens
        baselines = {"unigram": text.unigram_loss(train, test[1:]), "bigram": text.bigram_loss(train, test)}
        for name, loss in baselines.items():
            result[f"{name}_loss"], result[f"{name}_perplexity"] = loss, math.exp(loss)
    return result


def in_words(result: dict) -> str:
    """`evaluate_run`'s ``result`` in a line for a person: the loss, and for a language model its
    perplexity, bits per byte and the baselines' losses."""
    line = f"step {result['step']}: validation loss {result['test_loss']:.4f}"
    if "test_perplexity" in result:
        line += (f" (perplexity {result['test_perplexity']:.3f}, "
                 f"{result['test_bits_per_byte']:.3f} bits per byte)")
    if "unigram_loss" in result:
        line += f"; baselines: unigram {result['unigram_loss']:.4f}, bigram {result['bigram_loss']:.4f}"
    return line + f"; accuracy {result['test_accuracy']:.4f}"


def sample_run(path, prompt: str, tokens: int, temperature: float = 1.0, seed: int = 0) -> tuple[str, int]:
    """``(text, cut)``: ``prompt`` followed by ``tokens`` bytes that the run's language model
    draws at ``temperature`` with key ``seed`` (`jdfa.sampling.generate`; the same seed, the same
    text), decoded as UTF-8 (an invalid byte shows as U+FFFD); ``cut``: how many of the prompt's
    first bytes lie beyond the net's context, and so were not read."""
    net, params, _ = load_run(path)
    if not is_language_model(net):
        raise ValueError(f"the run in {path} is not a language model ({net.describe()}: it does not read "
                         "tokens and predict the next one at each position); sample a run trained on a "
                         "text dataset, e.g. --dataset sotu")
    given = np.frombuffer(prompt.encode("utf-8"), np.uint8)
    if given.size == 0:
        raise ValueError("the prompt is empty: give at least one character for the model to continue")
    if given.max() >= net.out_features:
        raise ValueError(f"the prompt holds byte {given.max()}, outside the net's vocabulary of "
                         f"{net.out_features}")
    drawn = generate(net, params, given.astype(np.int32), tokens, jax.random.key(seed), temperature)
    text_out = (given.tobytes() + np.asarray(drawn, np.uint8).tobytes()).decode("utf-8", errors="replace")
    return text_out, max(given.size - context_of(net), 0)
