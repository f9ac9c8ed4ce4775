"""A run never loses its work: kill and resume, a corrupt checkpoint, Ctrl-C, NaN, rollback."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import optax
import pytest

import jdfa
from jdfa.driver import from_flags
from jdfa.driver.checkpoints import Checkpoints
from jdfa.driver.chunks import Epochs, batch_indices, hyper, init_runs, make_chunk, run_keys

MNIST = Path(os.environ.get("JDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
RUN = ["--dataset", "mnist", "--data-dir", str(MNIST), "--rule", "bdfa", "--block-size", "2",
       "--depth", "4", "--width", "256", "--batch-size", "64", "--steps", "800", "--lr", "1e-3",
       "--eval-every", "100", "--checkpoint-every", "100", "--train-eval-size", "1000",
       "--no-progress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "JDFA_CACHE_DIR": os.environ.get("JDFA_CACHE_DIR", str(cache))}


def _cli(args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "jdfa", "train", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _train(data, **flags):
    config, data = from_flags(flags, data)
    return jdfa.train(config, data=data)


def _wait_for(path, proc, timeout=300):
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path} appeared: {proc.communicate()}"
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.02)


def _final(out):
    ckpt = Checkpoints(out / "checkpoints")
    state, _ = ckpt.restore_latest(_abstract_state())
    ckpt.close()
    return state


def _abstract_state():
    """The shapes of the driver's checkpointed state: one run, stacked on a run axis of 1."""
    net = jdfa.MLP(784, 256, 4, 10)
    return jax.eval_shape(lambda: jax.tree.map(lambda a: a[None], jdfa.init_train_state(
        jax.random.key(0), net, jdfa.bdfa(2), optax.adam(1e-3))))


def _records(out):
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "steps_per_s")}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_killed_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, env):
    whole = _cli(RUN + ["--out", str(tmp_path / "whole")], env)
    killed = _cli(RUN + ["--out", str(tmp_path / "killed")], env)
    _wait_for(tmp_path / "killed" / "checkpoints" / "200", killed)  # 600 steps before its end
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "checkpoints" / "800").exists()
    resumed = _cli(RUN + ["--out", str(tmp_path / "killed"), "--resume"], env)
    assert resumed.wait(timeout=600) == 0, resumed.communicate()
    assert whole.wait(timeout=600) == 0, whole.communicate()
    a, b = _final(tmp_path / "whole"), _final(tmp_path / "killed")
    assert int(a.step[0]) == int(b.step[0]) == 800
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.opt_state, b.opt_state)
    assert _records(tmp_path / "whole") == _records(tmp_path / "killed")


def test_where_chunks_split_an_interval_does_not_change_its_sums():
    # The driver sizes chunks by wall time, so a resumed run splits differently from a whole one.
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.normal(size=(1024, 8)), jax.numpy.float32)  # 32 steps an epoch
    y = jax.numpy.asarray(rng.integers(0, 3, 1024), jax.numpy.int32)
    net, rule, opt = jdfa.MLP(8, 16, 3, 3), jdfa.rules.dfa(), jdfa.Optimizer("adam")
    k_init, k_data, _ = run_keys(0)
    chunk = make_chunk(net, rule, opt, 100, 32, "mean", False, len(x))
    start = init_runs([k_init], [rule], net, opt, 100)
    sums, run = (jax.numpy.zeros(1), jax.numpy.zeros(1)), jax.tree.map(lambda a: a[None], hyper(k_data, opt))
    order = Epochs(len(x), 32).orders(run.data_key, start.step)  # the 23 steps stay in epoch 0
    _, whole = chunk(start, run, x, y, jax.numpy.int32(23), *sums, order)
    state, split = start, None
    for n in (1, 7, 2, 13):
        state, split = chunk(state, run, x, y, jax.numpy.int32(n), *sums, order)
        sums = (split.loss_sum, split.accuracy_sum)
    assert int(state.step[0]) == 23
    assert float(whole.loss_sum[0]) == float(split.loss_sum[0])  # bitwise, not approximately
    assert float(whole.accuracy_sum[0]) == float(split.accuracy_sum[0])


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path, env):
    proc = _cli(RUN + ["--out", str(tmp_path), "--checkpoint-every", "1000"], env)
    _wait_for(tmp_path / "metrics.jsonl", proc)
    while not (tmp_path / "metrics.jsonl").read_text():
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err  # messages on stderr, the JSON summary alone on stdout
    summary = json.loads(out)
    assert summary["status"] == "interrupted" and summary["step"] < 800
    assert (tmp_path / "checkpoints" / str(summary["step"])).exists()


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype(np.float32)
    y = rng.integers(0, 3, 128).astype(np.int32)
    data = ((x, y), (x, y))
    flags = dict(rule="dfa", depth=3, width=16, batch_size=32, eval_every=10, checkpoint_every=10,
                 out=str(tmp_path), progress=False)
    at_10 = jax.tree.map(lambda a: a[None], _train(data, steps=10, **flags)["state"])  # as checkpointed
    _train(data, steps=20, resume=True, **flags)
    newest = tmp_path / "checkpoints" / "20"
    for f in newest.rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    ckpt = Checkpoints(tmp_path / "checkpoints")
    with pytest.warns(RuntimeWarning, match="checkpoint of step 20 .* unreadable.*previous"):
        restored, _ = ckpt.restore_latest(at_10)
    ckpt.close()
    assert int(restored.step[0]) == 10
    chex.assert_trees_all_equal(jax.device_get(restored.params), jax.device_get(at_10.params))
    # and a resumed run goes on from there
    with pytest.warns(RuntimeWarning, match="unreadable"):
        result = _train(data, steps=30, resume=True, **flags)
    assert result["step"] == 30


def test_ctrl_c_inside_a_save_lets_it_complete_then_interrupts(tmp_path, monkeypatch):
    # The race the CLI test met by chance (a second Ctrl-C while a periodic checkpoint is written),
    # made certain: SIGINT arrives while orbax is writing.
    state = jdfa.init_train_state(jax.random.key(0), jdfa.MLP(8, 16, 3, 3), jdfa.dfa(), optax.sgd(0.1))
    ckpt = Checkpoints(tmp_path / "checkpoints")
    write = ckpt.manager.save

    def interrupted_write(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return write(*args, **kwargs)

    monkeypatch.setattr(ckpt.manager, "save", interrupted_write)
    # Python's own handler, whatever an earlier test of this process left installed: the save
    # must hand the Ctrl-C back to the handler it found.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            ckpt.save(state)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ckpt.steps() == [0]
    assert not list((tmp_path / "checkpoints").glob("*tmp*"))
    restored, _ = ckpt.restore_latest(state)
    ckpt.close()
    chex.assert_trees_all_equal(jax.device_get(restored.params), jax.device_get(state.params))


def _poisoned(step):
    """Data whose only NaN sits in the batch of ``step`` (1-based) of seed 0, and that row."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 8)).astype(np.float32)  # 32 steps an epoch
    y = rng.integers(0, 3, 1024).astype(np.int32)
    _, data_key, _ = run_keys(0)
    row = int(batch_indices(data_key, step - 1, len(x), 32)[5])
    x[row, 3] = np.nan
    return ((x, y), (x[:10], y[:10])), row


FLAGS = dict(rule="bdfa", block_size=2, depth=4, width=16, batch_size=32, steps=100, eval_every=50,
             seed=0, progress=False)


def test_planted_nan_is_refused_before_training(tmp_path):
    data, row = _poisoned(23)
    message = rf"the training data .* NaN or inf in 1 row\(s\) \(the first is row {row}\)"
    with pytest.raises(ValueError, match=message):
        _train(data, out=str(tmp_path), **FLAGS)
    assert not tmp_path.joinpath("metrics.jsonl").exists()


def test_planted_nan_past_the_check_stops_the_run_naming_the_step(tmp_path, capsys, monkeypatch):
    from jdfa.driver import sweeps

    monkeypatch.setattr(sweeps, "check_data", lambda *args: None)  # as if it came from elsewhere
    data, _ = _poisoned(23)
    result = _train(data, out=str(tmp_path), **FLAGS)
    assert result["status"] == "invalid_data"
    assert int(result["state"].step) == 22  # the guard skipped step 23: the state after 22 is kept
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result["state"].params))
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["stopped"] and last["step"] == 23
    assert "the batch of step 23 has non-finite inputs" in capsys.readouterr().err


def test_rollback_lowers_the_learning_rate_and_recovers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = rng.integers(0, 3, 256).astype(np.int32)
    data = ((x, y), (x, y))
    flags = dict(rule="dfa", depth=3, width=16, steps=60, batch_size=32, optimizer="sgd", loss="mse",
                 activation="relu", eval_every=20, checkpoint_every=20, on_diverge="rollback",
                 progress=False)
    saved = _train(data, lr=1e4, rollback_factor=1e-5, out=str(tmp_path / "a"), **flags)
    assert saved["status"] == "finished" and saved["rollbacks"] == 1
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("diverged") for r in records)
    assert any(r.get("rollback") == 1 and r["lr"] == pytest.approx(0.1) for r in records)
    hopeless = _train(data, lr=1e12, rollback_factor=0.5, max_rollbacks=2, out=str(tmp_path / "b"),
                      **flags)
    assert hopeless["status"] == "diverged" and hopeless["rollbacks"] == 2


def test_a_checkpoint_of_the_old_single_run_format_is_refused_naming_the_change(tmp_path):
    data = ((np.zeros((64, 8), np.float32), np.arange(64) % 3),) * 2
    flags = dict(depth=2, width=8, steps=8, batch_size=16, eval_every=4, out=str(tmp_path), progress=False)
    _train(data, **flags)
    shutil.rmtree(tmp_path / "checkpoints")
    config, _ = from_flags(flags, data)
    old = jdfa.init_train_state(jax.random.key(0), config.net, config.rule, config.optimizer.build(8))
    Checkpoints(tmp_path / "checkpoints").save(old, {"loss_sum": 0.0, "accuracy_sum": 0.0,
                                                     "interval_steps": 0, "wall_s": 1.0})
    with pytest.raises(ValueError, match=r"older jdfa.*unstacked.*again with Config\(overwrite=True\)"):
        _train(data, **flags, resume=True)
