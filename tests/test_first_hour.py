"""What a researcher meets in the first hour of the Python API: a summary that prints in a line,
checks and errors in the API's own terms, runs named by what varies, feedback only where a rule
reads it, and a record of where the data came from."""

import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import numpy as np
import optax
import pytest

import jdfa
from jdfa.driver import flags, from_flags, grid
from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.chunks import init_runs

ROOT = Path(__file__).resolve().parents[1]


def _toy(n=128):
    """Train and test data of a learnable toy task (class: the first feature over 0.5)."""
    x = np.random.default_rng(0).uniform(size=(n, 6)).astype(np.float32)
    return ((x, (x[:, 0] > 0.5).astype(np.int32)),) * 2


def _tiny_config(out=None, **fields):
    fields = {"steps": 2, "eval_every": 2, "progress": False, **fields}
    return jdfa.Config(net=jdfa.MLP(6, 8, 2, 2), batch_size=16, train_eval_size=32, out=out, **fields)


def test_a_summary_prints_in_a_line_and_keeps_the_state():
    summary = jdfa.train(_tiny_config(steps=20, eval_every=10, checkpoint=False), data=_toy())
    text = repr(summary)
    assert len(text) < 400 and str(summary) == text, text
    assert text.startswith("Summary(status='finished', step=20") and "Array" not in text
    assert summary["status"] == "finished" and summary.state is summary["state"]
    assert int(summary.state.step) == 20 and jax.tree.leaves(summary.state.params)


def test_a_misspelt_dataset_is_refused_when_the_config_is_made():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnsit'; expected one of \['mnist'"):
        jdfa.Config(dataset="mnsit")


def test_sweep_runs_are_named_by_what_varies_only():
    configs = grid.expand(_tiny_config(), _toy(), seeds=2, rule=["bp", "dfa", "bdfa1"])
    names = [grid.run_name(s) for s in grid.varying(configs)]
    assert names == [f"rule={r}_seed={s}" for s in (0, 1) for r in ("bp", "dfa", "bdfa1")]


@pytest.mark.parametrize("net", [jdfa.MLP(6, 8, 3, 2), jdfa.blocks.ConvNet(input_shape=(12, 12, 1),
                                                                         channels=(2, 3), width=8, kernel=3)],
                         ids=["mlp", "conv"])
def test_feedback_is_optional_for_rules_that_read_none(net):
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.bp())
    x = jax.random.uniform(jax.random.key(1), (4, net.in_features))
    y = jax.numpy.array([0, 1, 1, 0])
    g = jdfa.update_direction(net, jdfa.bp(), params, None, x, y)
    chex.assert_trees_all_close(g, jax.grad(lambda p: jdfa.loss(net, p, x, y))(params), rtol=1e-5, atol=1e-6)
    assert jdfa.align(net, jdfa.shallow(), params, None, x, y).angle.shape == (net.depth + 1,)
    with pytest.raises(ValueError, match="rule 'dfa' reads fixed random feedback: pass the feedback"):
        jdfa.update_direction(net, jdfa.dfa(), params, None, x, y)


def test_errors_speak_python_to_python_and_flags_to_the_command_line(tmp_path):
    data, config = _toy(), _tiny_config(str(tmp_path / "run"))
    jdfa.train(config, data=data)
    with pytest.raises(ValueError, match=r"continue it with Config\(resume=True\), replace it with "
                                         r"Config\(overwrite=True\), or choose another Config\(out=\.\.\.\)"):
        jdfa.train(config, data=data)
    token = flags.SPEAKING.set("cli")
    try:
        with pytest.raises(ValueError, match="continue it with --resume, replace it with --overwrite"):
            jdfa.train(config, data=data)
    finally:
        flags.SPEAKING.reset(token)


def test_config_json_says_where_the_data_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("JDFA_DATA_DIR", "/somewhere/data")
    data, config = _toy(), _tiny_config(str(tmp_path / "run"))
    jdfa.train(config, data=data)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == "arrays passed to jdfa.train(data=...)" and saved["config"]["data_dir"] is None
    assert flags.data_source("mnist", None, False) == "mnist from $JDFA_DATA_DIR=/somewhere/data"
    assert flags.data_source("mnist", "/mine", False) == "mnist from data_dir /mine"


def test_the_bar_shows_the_newest_evaluation_and_messages_stand_above_it(capsys):
    from jdfa.driver.progress import Progress, say

    bar = Progress(10, 0, True)
    bar.update(5, 0.5, {"test_accuracy": 0.25})
    say("SIGINT received: saving a checkpoint")
    bar.update(0, 0.5, {"test_accuracy": 0.75})  # what the loop does right after an evaluation
    assert "test_accuracy=0.7500" in str(bar.bar)
    bar.close()
    lines = capsys.readouterr().err.replace("\r", "\n").split("\n")
    assert "SIGINT received: saving a checkpoint" in [line.strip() for line in lines]


# --- divergence beyond NaN ----------------------------------------------------------------------

BLOWS_UP = ["--rule", "dfa", "--activation", "relu", "--optimizer", "sgd", "--lr", "1e3", "--steps", "300",
            "--eval-every", "100", "--train-eval-size", "1000", "--no-progress"]


def _cli(*args):
    env = {**os.environ, "JDFA_DATA_DIR": str(ROOT.parent / "shared" / "data")}
    done = subprocess.run([sys.executable, "-m", "jdfa", "train", *args], capture_output=True, text=True,
                          env=env)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_a_finite_blow_up_is_divergence_with_its_reason_and_rollback_recovers(tmp_path):
    """The issue's run (relu, sgd, lr 1e3): finite losses of 1e7 and more, once a "finished" run."""
    code, summary, _ = _cli(*BLOWS_UP, "--out", str(tmp_path / "stop"))
    assert code == 1 and summary["status"] == "diverged", summary
    assert "above 100 x the first evaluated test loss" in summary["reason"]
    assert "--divergence-factor" in summary["reason"] and "--on-diverge rollback" in summary["reason"]
    stopped = json.loads((tmp_path / "stop" / "metrics.jsonl").read_text().splitlines()[-1])
    assert stopped["diverged"] and np.isfinite(stopped["loss"]) and stopped["loss"] > stopped["loss_limit"]
    config, _ = from_flags({"rule": "dfa", "activation": "relu", "optimizer": "sgd", "lr": 1e3, "steps": 300},
                           ((np.zeros((64, 784), np.float32), np.arange(64) % 10),) * 2)
    like = init_runs([jax.random.key(0)], [config.rule], config.net, config.optimizer, 300)
    state, meta = Checkpoints(tmp_path / "stop" / "checkpoints").restore_latest(like)  # the last good one
    assert meta["step"] == 0 and all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(state.params))
    code, summary, _ = _cli(*BLOWS_UP, "--on-diverge", "rollback", "--rollback-factor", "1e-5",
                            "--out", str(tmp_path / "rollback"))
    assert code == 0 and summary["status"] == "finished" and summary["rollbacks"] == 1, summary
    assert summary["test_accuracy"] > 0.5


def test_the_divergence_default_is_far_above_every_committed_curve():
    """Every loss of every committed experiment's curve against the default limit (100 x the
    curve's first test loss): the largest ratio recorded is below 2."""
    def curves(tree):
        if isinstance(tree, list) and tree and all(isinstance(r, dict) for r in tree) \
                and any("test_loss" in r for r in tree):
            yield tree
        elif isinstance(tree, (list, dict)):
            for value in tree.values() if isinstance(tree, dict) else tree:
                yield from curves(value)

    found, worst = 0, 0.0
    for path in sorted((ROOT / "experiments" / "results").rglob("*.json")):
        for curve in curves(json.loads(path.read_text())):
            first = next(r["test_loss"] for r in curve if r.get("test_loss") is not None)
            losses = [r[k] for r in curve for k in ("loss", "test_loss") if isinstance(r.get(k), float)]
            found, worst = found + 1, max([worst] + [v / first for v in losses])
    assert found >= 50 and worst < jdfa.Config().divergence_factor / 10, (found, worst)


def test_hidden_layers_that_never_update_are_named(capsys):
    x = np.random.default_rng(0).uniform(size=(128, 6)).astype(np.float32)
    data = ((x, (x[:, 0] > 0.5).astype(np.int32)),) * 2
    flags = dict(depth=3, width=8, activation="tanh", optimizer="adam", lr=1e3, steps=40, eval_every=20,
                 batch_size=16, train_eval_size=64, progress=False, divergence_factor=0)
    for rule, warned in (("dfa", True), ("shallow", False)):  # shallow trains no hidden layer
        config, _ = from_flags({**flags, "rule": rule}, data)
        jdfa.train(config, data=data)
        err = capsys.readouterr().err
        assert ("hidden layer(s) [1, 2, 3] got exactly zero updates" in err) == warned, err


# --- defects of the first hour (issue 31) -------------------------------------------------------

def test_the_bar_keeps_the_running_loss_after_an_evaluation(capsys):
    """The bar redrawn right after an evaluation showed ``loss=0.0000``: the emptied interval's."""
    jdfa.train(_tiny_config(steps=30, eval_every=10, checkpoint=False, progress=True), data=_toy())
    last = capsys.readouterr().err.replace("\r", "\n").strip().split("\n")[-1]
    assert "loss=" in last and "loss=0.0000" not in last, last


def test_a_command_line_run_records_the_data_folder_it_read(tmp_path, monkeypatch, capsys):
    from jdfa.driver import cli

    data_dir = str(ROOT.parent / "shared" / "data")
    monkeypatch.setenv("JDFA_DATA_DIR", data_dir)
    code = cli.main(["train", "--steps", "2", "--eval-every", "2", "--depth", "1", "--width", "8",
                     "--train-eval-size", "64", "--no-progress", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == f"mnist from $JDFA_DATA_DIR={data_dir}", saved["data"]


def test_divergence_without_checkpoints_advises_a_rollback_only_with_them(capsys):
    x = np.random.default_rng(0).uniform(size=(128, 6)).astype(np.float32)
    data = ((x, (x[:, 0] > 0.5).astype(np.int32)),) * 2
    config = jdfa.Config(net=jdfa.MLP(6, 8, 2, 2, activation="relu"), optimizer=jdfa.Optimizer("sgd", lr=1e6),
                         steps=20, eval_every=10, batch_size=16, train_eval_size=32, progress=False)
    summary = jdfa.train(config, data=data)
    assert summary["status"] == "diverged"
    assert "write checkpoints (Config(out=...)) and pass Config(on_diverge='rollback')" in summary["reason"]


def test_a_skipped_step_in_a_hand_written_loop_reports_no_loss():
    """Labels out of range one-hot to zeros: the step reported a loss of -0.0 for a batch it skipped."""
    net, opt = jdfa.MLP(6, 8, 2, 2), optax.sgd(0.1)
    state = jdfa.init_train_state(jax.random.key(0), net, jdfa.dfa(), opt)
    step = jdfa.make_train_step(net, jdfa.dfa(), opt)
    x = np.random.default_rng(0).uniform(size=(4, 6)).astype(np.float32)
    state, metrics = step(state, x, np.full(4, 7))
    assert bool(metrics["skipped"]) and bool(metrics["bad_labels"]) and int(state.step) == 0
    assert np.isnan(metrics["loss"]) and np.isnan(metrics["accuracy"])
    state, metrics = step(state, x, np.array([0, 1, 1, 0]))
    assert not bool(metrics["skipped"]) and np.isfinite(metrics["loss"]) and metrics["loss"] > 0
