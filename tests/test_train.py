"""The training driver: a real short run, its out folder, determinism, divergence, the CLI."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdfa
from jdfa.driver import from_flags

MNIST = Path(os.environ.get("JDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    os.environ.setdefault("JDFA_CACHE_DIR", str(path))
    return path


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "steps_per_s")} for r in records]


def test_short_real_run_writes_its_folder_and_repeats_exactly(tmp_path, cache):
    cfg, data = from_flags(dict(dataset="mnist", data_dir=str(MNIST), rule="bdfa", block_size=2,
                                depth=3, width=64, steps=300, batch_size=64, lr=1e-3, eval_every=100,
                                align_every=150, progress=False))
    a = jdfa.train(dataclasses.replace(cfg, out=str(tmp_path / "a")))  # loads cfg.dataset itself
    b = jdfa.train(dataclasses.replace(cfg, out=str(tmp_path / "b")), data=data)
    for run in ("a", "b"):
        for name in ("config.json", "metrics.jsonl", "curves.png", "summary.json"):
            assert (tmp_path / run / name).stat().st_size > 0, name
    assert a["status"] == "finished" and a["step"] == 300
    assert b["test_accuracy"] == a["test_accuracy"] and b["train_accuracy"] == a["train_accuracy"]
    assert a["test_accuracy"] > 0.85
    ra, rb = _lines(tmp_path / "a" / "metrics.jsonl"), _lines(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in ra] == [0, 100, 150, 200, 300]
    assert _strip(ra) == _strip(rb)
    assert [len(r["alignment_angle"]) for r in ra if "alignment_angle" in r] == [4, 4, 4]  # 0, 150, 300
    assert ra[-1]["train_accuracy"] > ra[0]["train_accuracy"] - 0.05
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["config"]["rule"]["block_size"] == 2 and config["rule"].startswith("bdfa")


def test_divergence_stops_and_keeps_the_logs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = rng.integers(0, 3, 256).astype(np.int32)
    config, data = from_flags(dict(rule="dfa", depth=3, width=16, steps=400, batch_size=32,
                                   optimizer="sgd", lr=1e12, loss="mse", activation="relu",
                                   eval_every=100, out=str(tmp_path), progress=False), ((x, y), (x, y)))
    result = jdfa.train(config, data=data)
    assert result["status"] == "diverged"
    records = _lines(tmp_path / "metrics.jsonl")
    assert records[-1]["diverged"] is True
    assert f"at step {records[-1]['step']}" in records[-1]["message"]
    assert "training diverged" in capsys.readouterr().err
    assert (tmp_path / "curves.png").exists() and (tmp_path / "summary.json").exists()
    # the state handed back is the last one whose steps were all finite
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result["state"].params))


def test_cli_xor_and_bad_flags(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "jdfa", "train", "--dataset", "xor", "--rule", "dfa", "--depth", "1",
           "--width", "4", "--activation", "sigmoid", "--loss", "sigmoid_mse", "--batch-size", "1",
           "--optimizer", "sgd", "--lr", "0.5", "--steps", "4000", "--eval-every", "2000",
           "--out", str(tmp_path / "xor"), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["test_accuracy"] == 1.0
    bad = subprocess.run([sys.executable, "-m", "jdfa", "train", "--rule", "bdfa", "--block-size", "0",
                          "--dataset", "xor", "--no-progress"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2
    assert "block_size (--block-size) must be >= 1" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "jdfa", "train", "--dataset", "mnist", "--data-dir",
                              str(tmp_path / "nowhere"), "--no-progress"], capture_output=True,
                             text=True, env={**env, "JDFA_DATA_DIR": str(tmp_path / "nowhere")},
                             timeout=120)
    assert missing.returncode == 2
    assert "nowhere" in missing.stderr


def test_import_jdfa_loads_the_driver_on_first_use():
    """``import jdfa`` loads neither orbax-checkpoint nor matplotlib nor tqdm; `jdfa.Config`,
    `jdfa.train` and `jdfa.sweep` are listed and load the driver when first used, and it trains."""
    code = """
import json, sys
import numpy as np
import jdfa
loaded = [m for m in ("orbax", "matplotlib", "tqdm", "jdfa.driver") if m in sys.modules]
names = {"Config", "sweep", "train"}
listed = names | {"driver"} <= set(dir(jdfa)) and names <= set(jdfa.__all__)
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([0, 1, 1, 0], np.int32)
config = jdfa.Config(net=jdfa.MLP(2, 4, 1, 2), dataset="xor", steps=3, batch_size=4, eval_every=3,
                     progress=False)
summary = jdfa.train(config, data=((x, y), (x, y)))
print(json.dumps(dict(loaded=loaded, listed=listed, status=summary["status"], step=summary["step"],
                      same=jdfa.train is jdfa.driver.train and jdfa.sweep is jdfa.driver.sweep)))
"""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == dict(
        loaded=[], listed=True, status="finished", step=3, same=True)


def test_weight_decay_is_adamw_decay_on_the_weights_only():
    """``weight_decay`` with Adam is optax's AdamW restricted to the weight matrices; with a cosine
    schedule the decay follows the learning rate, and it leaves the biases alone."""
    net = jdfa.MLP(5, 4, 3, 2)
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.dfa())
    grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape), params)
    weights = jdfa.Params(*(jdfa.model.Dense(w=True, b=False) for _ in range(3)))
    ours = jdfa.Optimizer("adam", lr=0.01, weight_decay=0.3).build(steps=1000, weight_mask=net.weight_mask)
    adamw = optax.adamw(0.01, weight_decay=0.3, mask=weights)
    state, ref_state = ours.init(params), adamw.init(params)
    for update in (jax.jit(ours.update), ours.update):
        got, state = update(grads, state, params)
        want, ref_state = adamw.update(grads, ref_state, params)
        chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-7)

    zero = jax.tree.map(jnp.zeros_like, params)
    sgd = jdfa.Optimizer("sgd", lr=0.1, schedule="cosine", weight_decay=0.5).build(steps=4,
                                                                              weight_mask=net.weight_mask)
    state = sgd.init(params)
    for step in range(5):
        rate = 0.1 * 0.5 * (1 + np.cos(np.pi * min(step, 4) / 4))
        got, state = sgd.update(zero, state, params)
        chex.assert_trees_all_close(got.hidden.w, -rate * 0.5 * params.hidden.w, atol=1e-7)
        assert not np.any(got.hidden.b) and not np.any(got.output.b)
    with pytest.raises(ValueError, match="weight_decay"):
        jdfa.Optimizer(weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        from_flags(dict(weight_decay=-1.0), data=((np.zeros((4, 5)), np.arange(4)),) * 2)
