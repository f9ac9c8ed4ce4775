"""Sweeps: many runs as one vmapped program (`jdfa.sweep`), each the same run as alone."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jdfa
from jdfa.driver import cli, from_flags, grid, net_for_data, packing
from jdfa.driver.sweeps import train_runs

MNIST = Path(os.environ.get("JDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
SMALL = dict(steps=300, eval_every=100, batch_size=64, train_eval_size=1000, progress=False)


@pytest.fixture(scope="module")
def mnist():
    return jdfa.data.load("mnist", "train", MNIST), jdfa.data.load("mnist", "test", MNIST)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _close(a: list[dict], b: list[dict], rtol: float) -> None:
    """Same steps, every number within ``rtol`` (wall time and speed aside)."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "test_loss", "train_accuracy", "test_accuracy", "update_norm"):
            if key in rb:
                np.testing.assert_allclose(ra[key], rb[key], rtol=rtol, err_msg=f"{key} at {rb['step']}")


def test_cli_sweep_trains_six_runs_as_one_program_and_writes_the_report(tmp_path, capsys):
    code = cli.main(["train", "--data-dir", str(MNIST), "--depth", "2", "--width", "32", "--steps", "200",
                     "--eval-every", "100", "--train-eval-size", "1000", "--no-progress",
                     "--seeds", "0,1,2", "--lr", "1e-3,3e-4", "--out", str(tmp_path)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    names = [f"lr={lr}_seed={s}" for lr in (0.001, 0.0003) for s in (0, 1, 2)]
    assert [r["name"] for r in printed["runs"]] == names
    assert json.loads((tmp_path / "sweep_config.json").read_text())["programs"] == [list(range(6))]
    for name in names:
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "config.json", "curves.png", "metrics.jsonl", "summary.json"]
        assert json.loads((tmp_path / name / "summary.json").read_text())["status"] == "finished"
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert [g["settings"] for g in report["groups"]] == [{"lr": 0.001}, {"lr": 0.0003}]
    assert all(g["n"] == 3 for g in report["groups"])
    group = report["groups"][0]["final_test_accuracy"]
    finals = [r["final_test_accuracy"] for r in report["runs"][:3]]
    assert group["mean"] == pytest.approx(np.mean(finals))
    assert group["std"] == pytest.approx(np.std(finals, ddof=1))
    assert "| lr=0.001 | 3 |" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_in_a_sweep_is_the_run_alone(tmp_path, mnist):
    net = net_for_data(mnist, width=64, depth=3)
    base = jdfa.Config(net=net, rule=jdfa.dfa(), seed=3, optimizer=jdfa.Optimizer("adam", weight_decay=1e-4),
                       out=str(tmp_path / "sweep"), **SMALL)
    result = jdfa.sweep(base, data=mnist, lr=[1e-3, 3e-4], feedback_scale=[1.0, 2.0])
    assert sorted(r["name"] for r in result["runs"]) == [
        "feedback_scale=1.0_lr=0.0003", "feedback_scale=1.0_lr=0.001",
        "feedback_scale=2.0_lr=0.0003", "feedback_scale=2.0_lr=0.001"]
    alone = jdfa.Config(net=net, rule=jdfa.dfa(feedback_scale=2.0), seed=3, out=str(tmp_path / "alone"),
                        optimizer=jdfa.Optimizer("adam", lr=3e-4, weight_decay=1e-4), **SMALL)
    jdfa.train(alone, data=mnist)
    swept = _records(tmp_path / "sweep" / "feedback_scale=2.0_lr=0.0003")
    single = _records(tmp_path / "alone")
    _close(swept[:2], single[:2], rtol=1e-5)  # step 0 and the first evaluation
    assert abs(swept[-1]["test_accuracy"] - single[-1]["test_accuracy"]) <= 0.003


def test_a_diverging_run_is_frozen_and_the_others_go_on(tmp_path, mnist, capsys):
    net = net_for_data(mnist, width=32, depth=2, loss="mse")
    configs = [jdfa.Config(net=net, optimizer=jdfa.Optimizer("sgd", lr=lr), out=str(tmp_path / "sweep"),
                           **SMALL) for lr in (0.05, 1e4)]
    result = train_runs(configs, data=mnist, max_parallel=2)
    good, bad = result["runs"]
    assert result["status"] == "finished" and (good["status"], bad["status"]) == ("finished", "diverged")
    assert "run lr=10000.0:\ntraining diverged" in capsys.readouterr().err
    stopped = _records(tmp_path / "sweep" / bad["name"])[-1]
    assert stopped["diverged"] and stopped["step"] < 300
    alone = jdfa.train(dataclasses.replace(configs[0], out=str(tmp_path / "alone")), data=mnist)
    assert alone["status"] == "finished"
    _close(_records(tmp_path / "sweep" / good["name"]), _records(tmp_path / "alone"), rtol=1e-5)
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [g["diverged"] for g in report["groups"]] == [0, 1]


@pytest.mark.skipif(len(jax.devices()) < 8, reason="needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
def test_runs_sharded_over_eight_devices_match_one_device(mnist):
    (x, y), (x_test, y_test) = mnist
    data = ((x[:2048], y[:2048]), (x_test[:500], y_test[:500]))
    net = net_for_data(data, width=32, depth=2)
    results = {}
    for devices in (1, 8):
        config = jdfa.Config(net=net, rule=jdfa.bdfa(1), mesh_data=devices, steps=60, eval_every=20,
                             train_eval_size=500, progress=False)
        results[devices] = jdfa.sweep(config, data=data, seeds=8, max_parallel=8)
    for one, eight in zip(results[1]["runs"], results[8]["runs"]):
        _close(eight["records"], one["records"], rtol=1e-5)


def _cli(args, env):
    return subprocess.Popen([sys.executable, "-m", "jdfa", "train", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_and_resumed_sweep_ends_where_a_whole_one_does(tmp_path):
    run = ["--data-dir", str(MNIST), "--depth", "2", "--width", "128", "--steps", "600",
           "--eval-every", "100", "--train-eval-size", "1000", "--no-progress", "--seeds", "3",
           "--max-parallel", "3"]
    env = {**os.environ}
    whole = _cli(run + ["--out", str(tmp_path / "whole")], env)
    killed = _cli(run + ["--out", str(tmp_path / "killed")], env)
    mark, end = tmp_path / "killed" / "checkpoints" / "0" / "200", time.time() + 300
    while not mark.exists():
        assert killed.poll() is None, killed.communicate()
        assert time.time() < end
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "checkpoints" / "0" / "600").exists()
    resumed = _cli(run + ["--out", str(tmp_path / "killed"), "--resume"], env)
    assert resumed.wait(timeout=600) == 0, resumed.communicate()
    assert whole.wait(timeout=600) == 0, whole.communicate()
    for name in ("seed=0", "seed=1", "seed=2"):
        a, b = _records(tmp_path / "killed" / name), _records(tmp_path / "whole" / name)
        assert [r["step"] for r in a] == list(range(0, 601, 100))
        _close(a, b, rtol=0)
    report = [json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("killed", "whole")]
    assert report[0]["groups"] == report[1]["groups"]


def test_structures_are_separate_programs_and_rule_fields_apply_where_they_fit():
    flags = {"rule": "dfa", "block_size": None, "seed": 0}
    combos = grid.combinations(flags, {"rule": ["dfa", "bdfa"], "block_size": [1, 3]})
    assert [(c["rule"], c["block_size"]) for c in combos] == [("dfa", None), ("bdfa", 1), ("bdfa", 3)]
    x, y = np.zeros((64, 4), np.float32), np.arange(64) % 3
    configs = grid.expand(jdfa.Config(net=jdfa.MLP(4, 8, 3, 3)), ((x, y), (x, y)), seeds=2,
                          lr=[1e-3, 1e-2], rule=["dfa", "bdfa1"])
    assert len(configs) == 8 and len({grid.structure(c) for c in configs}) == 2
    assert grid.run_name(grid.varying(configs)[0]) == "rule=dfa_lr=0.001_seed=0"


def test_bad_sweeps_are_refused_with_the_fix(tmp_path, mnist, monkeypatch):
    net = net_for_data(mnist, width=16, depth=2)
    with pytest.raises(ValueError, match="share every run setting.*steps"):
        train_runs([jdfa.Config(net=net, steps=10), jdfa.Config(net=net, steps=20)], data=mnist)
    with pytest.raises(ValueError, match="cannot sweep"):
        jdfa.sweep(jdfa.Config(net=net), data=mnist, eval_every=[1, 2])
    monkeypatch.setattr(packing, "free_bytes", lambda: 1000)
    with pytest.raises(MemoryError, match="one run of this sweep needs"):
        jdfa.sweep(jdfa.Config(net=net, **SMALL), data=mnist, seeds=2)
    assert cli.main(["train", "--data-dir", str(MNIST), "--seeds", "2", "--steps", "5", "--no-progress",
                     "--out", str(tmp_path), "--resume"]) == 2


def test_runs_one_after_another_match_the_vmapped_program(mnist):
    (x, y), (x_test, y_test) = mnist
    data = ((x[:2048], y[:2048]), (x_test[:500], y_test[:500]))
    config = jdfa.Config(net=net_for_data(data, width=32, depth=2), steps=40, eval_every=20,
                         train_eval_size=500, progress=False)
    vmapped = jdfa.sweep(config, data=data, seeds=2, lr=[1e-3, 1e-2], max_parallel=4)
    in_turn = jdfa.sweep(config, data=data, seeds=2, lr=[1e-3, 1e-2], max_parallel=1)
    for a, b in zip(vmapped["runs"], in_turn["runs"]):
        _close(a["records"], b["records"], rtol=1e-5)


def test_a_sweep_rolls_back_a_diverging_run_while_the_others_equal_their_runs_alone(tmp_path):
    """One loop for a run and a sweep: lr 1e4 diverges, the program returns to its checkpoint
    with that run's lr times 1e-5 (0.1) and it recovers, as the same run alone does; the lr 0.01
    run redoes the undone steps and ends equal to its run alone."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = rng.integers(0, 3, 256).astype(np.int32)
    data = ((x, y), (x, y))
    flags = dict(rule="dfa", depth=3, width=16, steps=60, batch_size=32, optimizer="sgd", loss="mse",
                 activation="relu", eval_every=20, checkpoint_every=20, on_diverge="rollback",
                 rollback_factor=1e-5, progress=False)
    config, _ = from_flags({**flags, "out": str(tmp_path / "sweep")}, data)
    swept = jdfa.sweep(config, data=data, lr=[1e4, 1e-2], max_parallel=2)
    assert json.loads((tmp_path / "sweep" / "sweep_config.json").read_text())["programs"] == [[0, 1]]
    for lr, run in zip((1e4, 1e-2), swept["runs"]):
        alone, _ = from_flags({**flags, "lr": lr, "out": str(tmp_path / f"alone_{lr:g}")}, data)
        summary = jdfa.train(alone, data=data)
        assert run["status"] == summary["status"] == "finished"
        assert run["summary"]["rollbacks"] == summary["rollbacks"] == (1 if lr > 1 else 0)
        got, want = _records(tmp_path / "sweep" / run["name"]), _records(tmp_path / f"alone_{lr:g}")
        assert [r["step"] for r in got] == [r["step"] for r in want]
        assert [sorted(r) for r in got] == [sorted(r) for r in want]  # the notes and the rollback too
        _close([r for r in got if "loss" in r], [r for r in want if "loss" in r], rtol=1e-5)
    rolled = _records(tmp_path / "sweep" / swept["runs"][0]["name"])
    assert any(r.get("diverged") for r in rolled)
    assert any(r.get("rollback") == 1 and r["lr"] == pytest.approx(0.1) for r in rolled)
