"""The benchmark scripts: the step-time benchmark runs end to end on a tiny configuration and
writes well-formed records; rule specs, the optimizer label, the epoch benchmark, PyTorch baselines;
the sweep-throughput benchmark's schedules, conclusion and its refusal to write results on --quick;
the paper runner's one-or-two-runs-at-a-time measurement."""

import importlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "step_time.py")
SWEEP_SCRIPT = os.path.join(ROOT, "benchmarks", "sweep_throughput.py")
MNIST = os.environ.get("JDFA_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data"))

INT_OR_NONE = (int, type(None))
FIELDS = {
    "kind": str, "rule": str, "rule_repr": str,
    "depth": int, "width": int, "batch": int, "in_features": int, "out_features": int,
    "activation": str, "optimizer": (str, type(None)),
    "device_kind": str, "platform": str, "jax_version": str, "cpu_model": str, "cpu_count": int,
    "malloc": str, "xla_flags": (str, type(None)),
    "lower_s": float, "compile_s": float,
    "steps_timed": int, "step_ms_median": float, "step_ms_min": float, "step_ms_max": float,
    "examples_per_s": float,
    "temp_bytes": INT_OR_NONE, "argument_bytes": INT_OR_NONE, "output_bytes": INT_OR_NONE,
    "alias_bytes": INT_OR_NONE, "generated_code_bytes": INT_OR_NONE,
    "other_load_cores": (float, type(None)),
    "jdfa_commit": (str, type(None)), "jdfa_dirty": (bool, type(None)),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "step.jsonl"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--rules", "forward,wgrad,dfa,bdfa1-bp", "--depth", "2", "--width", "16",
         "--batch", "8", "--steps", "3", "--warmup", "1", "--rounds", "2", "--in-features", "12",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, out


def test_every_field_and_type(run):
    proc, out = run
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["rule"] for r in lines] == ["forward", "wgrad", "dfa", "bdfa1-bp"]
    assert "contraction alone" in lines[1]["rule_repr"] and lines[1]["optimizer"] is None
    for rec in lines:
        assert set(FIELDS) <= set(rec), set(FIELDS) - set(rec)
        for field, typ in FIELDS.items():
            assert isinstance(rec[field], typ), (field, rec[field])
        assert rec["kind"] == "step"
        assert (rec["depth"], rec["width"], rec["batch"], rec["in_features"]) == (2, 16, 8, 12)
        assert rec["activation"] == "tanh"
        assert rec["steps_timed"] == 3
        assert 0 < rec["step_ms_min"] <= rec["step_ms_median"] <= rec["step_ms_max"]
        assert rec["examples_per_s"] == pytest.approx(8 / (rec["step_ms_median"] / 1e3))
        assert rec["compile_s"] > 0 and rec["lower_s"] > 0
        assert rec["platform"] == "cpu" and rec["cpu_count"] >= 1
        for field in ("temp_bytes", "argument_bytes", "output_bytes", "generated_code_bytes"):
            assert rec[field] is None or rec[field] >= 0
    fwd, _, dfa, bdfa = lines
    assert fwd["optimizer"] is None and dfa["optimizer"] == "sgd(lr=0.001)"
    assert dfa["rule_repr"] == "dfa"
    assert bdfa["rule_repr"] == "bdfa(block_size=1, boundary='backprop')"
    # --out holds the same lines as stdout; no summary without depth 100 width 200.
    assert [json.loads(line) for line in out.read_text().splitlines()] == lines


def _bench_module(name):
    """Imports a script of benchmarks/ as its sibling scripts do (that folder on ``sys.path``), then
    takes benchmarks/' generic module names (``common``, ``plot``, ...) out of ``sys.modules`` again,
    so that they cannot shadow another folder's ``common`` later in this process, nor another
    folder's ``common`` (experiments/) shadow them now."""
    here = os.path.join(ROOT, "benchmarks")
    others = {m: sys.modules.pop(m) for m in ("common", "plot") if m in sys.modules}
    before = set(sys.modules)
    sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(here)
        for mod in set(sys.modules) - before:
            if os.path.dirname(getattr(sys.modules[mod], "__file__", None) or "") == here:
                del sys.modules[mod]
        sys.modules.update(others)


def test_summary_from_records():
    step_time = _bench_module("step_time")
    env = {"malloc": "tuned"}
    recs = [{"kind": "step", "rule": r, "depth": d, "width": w, "batch": 128,
             "step_ms_median": ms, "step_ms_min": ms / 2, "temp_bytes": tb, "compile_s": c}
            for r, d, w, ms, tb, c in [
                ("forward", 100, 200, 10.0, 1, 0.1), ("dfa", 100, 200, 20.0, 50, 1.0),
                ("bp", 100, 200, 45.0, 60, 1.0), ("bdfa25", 100, 200, 22.0, 55, 1.0),
                ("dfa", 10, 200, 5.0, 5, 1.0), ("dfa", 200, 200, 40.0, 99, 1.2)]]
    s = step_time.summarize(recs, env)
    assert s["kind"] == "summary" and (s["depth"], s["width"], s["batch"]) == (100, 200, 128)
    assert s["ratios"]["bp/dfa"] == pytest.approx(2.25)
    assert s["ratios"]["dfa/forward"] == pytest.approx(2.0)
    assert s["ratios"]["bdfa25/dfa"] == pytest.approx(1.1)
    assert s["ratios"]["temp_bytes dfa/bp"] == pytest.approx(50 / 60)
    assert s["ratios_of_min"]["bp/dfa"] == pytest.approx(2.25)
    assert s["compile_ratio_d200_d10"] == {"dfa@width200": pytest.approx(1.2)}
    assert all(t["met"] for t in s["targets"].values())
    assert step_time.summarize(recs[4:], env) is None


def test_quick_step_time_ends_with_a_conclusion():
    """Issue 10, item 16: --quick covers the headline and says what it measured, and a sweep
    without the headline says so instead of ending silently."""
    step_time = _bench_module("step_time")
    assert "100" in step_time.QUICK["depths"].split(",") and "dfa-noguard" in step_time.QUICK["rules"]
    recs = [{"kind": "step", "rule": r, "depth": 100, "width": 200, "batch": 128, "step_ms_median": ms,
             "step_ms_min": ms, "temp_bytes": 1, "compile_s": 1.0}
            for r, ms in [("forward", 10.0), ("dfa", 20.0), ("dfa-noguard", 19.6), ("bp", 45.0)]]
    text = step_time.conclusion(step_time.summarize(recs, {"malloc": "tuned"}), quick=True, steps=10)
    assert "dfa/forward = 2.00" in text and "bp/dfa = 2.25" in text
    assert "guard costs +2.0 %" in text and "--quick" in text
    assert "no headline configuration" in step_time.conclusion(None, quick=True, steps=10)


def test_rule_specs():
    """Real rules go through jdfa.rules.parse, recorded under the canonical names of the committed
    results; forward and dfa-remat are the benchmark's own."""
    import jdfa

    step_time = _bench_module("step_time")
    assert step_time.parse_rule("forward") == ("forward", None)
    assert step_time.parse_rule("wgrad") == ("wgrad", None)
    assert step_time.parse_rule("dfa-remat") == ("dfa-remat", jdfa.dfa())
    assert step_time.parse_rule("fp3") == ("fp3", jdfa.fp(3))
    spec, rule = step_time.parse_rule("bdfa25-backprop")
    assert spec == "bdfa25-bp" and rule == jdfa.bdfa(25, "backprop")
    assert step_time.parse_rule("bdfa10") == ("bdfa10", jdfa.bdfa(10, "direct"))
    assert step_time.parse_rule("bdfa10-direct")[0] == "bdfa10"
    # Every spec of the committed results reads back as itself.
    for name in step_time.DEFAULT_RULES.split(",") + ["shallow", "dfa-remat"]:
        assert step_time.parse_rule(name)[0] == name
    assert step_time.parse_rule(" BDFA25-BP ")[0] == "bdfa25-bp"
    for bad in ("dfa2", "bp-bp", "fp-bp", "bdfa25-x", "bdfa0", "forward2", "sgd", ""):
        with pytest.raises(ValueError):
            step_time.parse_rule(bad)


def test_optimizer_label():
    import jdfa

    step_time = _bench_module("step_time")
    assert step_time.optimizer_label(jdfa.Optimizer("sgd", 0.1)) == "sgd(lr=0.1)"
    assert step_time.optimizer_label(jdfa.Optimizer("adam", 1e-3)) == "adam(lr=0.001)"


def test_scripts_import_without_running():
    """Importing a script runs nothing: each has a main() behind a __main__ guard."""
    for name in ("step_time", "breakdown", "epoch_time", "scaling", "torch_baseline", "plot", "tables",
                 "revisions"):
        assert callable(_bench_module(name).main), name


@pytest.mark.skipif(subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"],
                                   capture_output=True).returncode != 0, reason="not a git checkout")
def test_revisions_times_two_revisions_in_one_process(tmp_path):
    out = tmp_path / "revisions.jsonl"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "revisions.py"), "--old", "HEAD", "--new", "HEAD",
         "--rules", "dfa,bp", "--depth", "2", "--width", "8", "--batch", "4", "--steps", "2", "--rounds", "2",
         "--warmup", "1", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["rule"], r["revision"]) for r in rows] == [
        ("dfa", "old"), ("dfa", "new"), ("bp", "old"), ("bp", "new")]
    assert all(r["steps"] == 4 and r["wall_ms_median"] > 0 and r["commit"] == rows[0]["commit"] for r in rows)
    assert [r["wall_ratio"] for r in rows[::2]] == [1.0, 1.0]
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "revisions.py"),
                          "--old", "no-such-rev"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode != 0 and "'no-such-rev' is not a revision" in bad.stderr


@pytest.mark.skipif(not os.path.exists(os.path.join(MNIST, "mnist", "train-images-idx3-ubyte.gz")),
                    reason="the real MNIST is not on this machine")
def test_epoch_time_runs(tmp_path):
    out = tmp_path / "epoch.jsonl"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "epoch_time.py"), "--rules", "dfa,bdfa1-bp",
         "--depth", "2", "--width", "8", "--batch", "32", "--steps", "3", "--data-dir", MNIST,
         "--malloc", "inherit", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, JDFA_CACHE_DIR=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rule"] for r in rows] == ["dfa", "bdfa(block_size=1, boundary='backprop')"]
    for r in rows:
        assert (r["depth"], r["width"], r["batch"], r["steps"], r["examples"]) == (2, 8, 32, 3, 96)
        assert r["optimizer"] == "adam" and r["epoch_s"] > 0 and r["mean_batch_loss"] > 0


def _torch_baseline():
    pytest.importorskip("torch")
    return _bench_module("torch_baseline")


def _tiny():
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jdfa

    net = jdfa.MLP(6, 5, 4, 3)
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (7, 6))
    y = jax.random.randint(ky, (7,), 0, 3)
    return net, np.asarray(x), np.asarray(y), jdfa, jnp, np


def test_torch_dfa_matches_jdfa():
    """The explicit PyTorch DFA computes jdfa's DFA update (same weights and feedback)."""
    tb = _torch_baseline()
    import torch

    net, x, y, jdfa, jnp, np = _tiny()
    params, fb = jdfa.init(__import__("jax").random.key(0), net, jdfa.dfa())
    want = jdfa.update_direction(net, jdfa.dfa(), params, fb, jnp.asarray(x), jnp.asarray(y))
    t = tb.TorchDFA(torch, 6, 5, 4, 3, 1e-3, 7)
    for name, value in (("w_in", params.input.w), ("b_in", params.input.b),
                        ("w_h", params.hidden.w), ("b_h", params.hidden.b),
                        ("w_out", params.output.w), ("b_out", params.output.b),
                        ("bt", jnp.swapaxes(fb.output, 1, 2))):
        setattr(t, name, torch.tensor(np.asarray(value)))
    _, got = t.grads(torch.tensor(x), torch.tensor(y, dtype=torch.int64))
    for g, w in zip(got, (want.input.w, want.input.b, want.hidden.w, want.hidden.b,
                          want.output.w, want.output.b)):
        np.testing.assert_allclose(g.numpy(), np.asarray(w), rtol=1e-4, atol=1e-6)


def test_torch_bp_matches_jax_grad():
    tb = _torch_baseline()
    import jax
    import torch

    net, x, y, jdfa, jnp, np = _tiny()
    params, _ = jdfa.init(jax.random.key(0), net, jdfa.bp())
    want = jax.grad(lambda p: jdfa.loss(net, p, jnp.asarray(x), jnp.asarray(y)))(params)
    t = tb.TorchBP(torch, 6, 5, 4, 3, 1e-3)
    linears = [m for m in t.model if isinstance(m, torch.nn.Linear)]
    ws = [params.input.w] + list(params.hidden.w) + [params.output.w]
    bs = [params.input.b] + list(params.hidden.b) + [params.output.b]
    with torch.no_grad():
        for lin, w, b in zip(linears, ws, bs):
            lin.weight.copy_(torch.tensor(np.asarray(w).T))
            lin.bias.copy_(torch.tensor(np.asarray(b)))
    torch.nn.functional.cross_entropy(t.model(torch.tensor(x)),
                                      torch.tensor(y, dtype=torch.int64)).backward()
    np.testing.assert_allclose(linears[1].weight.grad.numpy().T, np.asarray(want.hidden.w[0]),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(linears[0].weight.grad.numpy().T, np.asarray(want.input.w),
                               rtol=1e-4, atol=1e-6)


def test_torch_baseline_without_torch_says_how_to_install():
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['torch_baseline.py']; "
            f"sys.path.insert(0, {os.path.join(ROOT, 'benchmarks')!r}); "  # as `python FILE` does
            f"runpy.run_path({os.path.join(ROOT, 'benchmarks', 'torch_baseline.py')!r}, "
            "run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "pip install torch" in proc.stderr


# --- sweep_throughput.py: one record per (configuration, rule, N, schedule) ------------------

SWEEP_FIELDS = (
    "kind", "config", "depth", "width", "batch", "rule", "optimizer", "runs", "schedule", "group_size",
    "steps_per_chunk", "repeats", "time_s_median", "time_s_min", "run_steps_per_s", "ms_per_run_step",
    "speedup_vs_sequential", "vs_one_run", "compile_s", "temp_mib", "state_mib_per_run", "n_train",
    "other_load_cores", "device_kind", "platform", "jax_version", "malloc", "jdfa_commit")


def test_tiny_run_writes_every_schedule(tmp_path):
    out, png = tmp_path / "sweep.jsonl", tmp_path / "sweep.png"
    proc = subprocess.run(
        [sys.executable, SWEEP_SCRIPT, "--quick", "--configs", "2x8", "--rules", "dfa", "--runs", "1,2",
         "--group", "2", "--steps", "2", "--repeats", "1", "--malloc", "inherit", "--out", str(out),
         "--plot", str(png)],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    rows, last = lines[:-1], lines[-1]
    assert [(r["runs"], r["schedule"]) for r in rows] == [
        (n, s) for n in (1, 2) for s in ("vmapped", "grouped", "sequential")]
    for r in rows:
        assert set(SWEEP_FIELDS) <= set(r), set(SWEEP_FIELDS) - set(r)
        assert (r["kind"], r["config"], r["depth"], r["width"]) == ("throughput", "2x8", 2, 8)
        assert r["rule"] == "dfa"
        assert r["run_steps_per_s"] == pytest.approx(r["runs"] * 2 / r["time_s_median"])
        assert r["group_size"] == {"vmapped": r["runs"], "grouped": min(2, r["runs"]), "sequential": 1}[
            r["schedule"]]
        assert r["compile_s"] > 0 and r["n_train"] >= 64 * 3
        if r["schedule"] == "sequential":
            assert r["speedup_vs_sequential"] == pytest.approx(1.0)
    assert last["kind"] == "conclusion" and set(last["fastest"]["2x8"]) == {"1", "2"}
    assert set(last["fastest"]["2x8"].values()) <= {"vmapped", "grouped", "sequential"}
    assert "--quick" in last["text"] and png.stat().st_size > 0


def test_quick_refuses_the_committed_results():
    target = os.path.join(ROOT, "benchmarks", "results", "cpu", "never_written.jsonl")
    proc = subprocess.run([sys.executable, SWEEP_SCRIPT, "--quick", "--out", target], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0 and "never to benchmarks/results" in proc.stderr
    assert not os.path.exists(target)


def test_configs_and_conclusion():
    sweep = _bench_module("sweep_throughput")
    assert sweep.parse_configs("100x200, 10X256") == [(100, 200), (10, 256)]
    with pytest.raises(SystemExit):
        sweep.parse_configs("100-200")
    recs = [{"config": "100x200", "depth": 100, "rule": rule, "runs": n, "schedule": s,
             "speedup_vs_sequential": v, "run_steps_per_s": v, "vs_one_run": v * 0.9}
            for rule in ("dfa", "bp") for n, s, v in
            [(32, "vmapped", 0.7), (32, "grouped", 0.9), (32, "sequential", 1.0), (1, "vmapped", 1.1),
             (1, "sequential", 1.0)]]
    c = sweep.conclusion(recs, quick=False)
    assert c["fastest"] == {"100x200": {"32": "sequential", "1": "vmapped"}}
    assert c["target"]["value"] == pytest.approx(0.63) and c["target"]["met"] is False
    assert "--quick" not in c["text"] and "not met" in c["text"]


# --- update_vs_depth.py: update phase = median step - median forward, per (depth, rule) -------------

def test_update_vs_depth_quick_records_and_plot(tmp_path):
    """--quick at depths 4 and 5 with a rule that does not fit depth 4: one record per fitting (depth,
    rule), update_ms the difference of the medians, the same lines on stdout and in --out, a PNG from
    the run and one from --from; --quick refuses benchmarks/results/."""
    script = os.path.join(ROOT, "benchmarks", "update_vs_depth.py")
    out, png, png2 = tmp_path / "u.jsonl", tmp_path / "u.png", tmp_path / "from.png"
    proc = subprocess.run([sys.executable, script, "--quick", "--depths", "4,5", "--rules", "dfa,fp5",
                           "--out", str(out), "--plot", str(png)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["depth"], r["rule"]) for r in rows] == [(4, "dfa"), (5, "dfa"), (5, "fp5")]
    assert "skip fp5 at depth 4" in proc.stderr
    for r in rows:
        assert (r["kind"], r["width"], r["batch"], r["mode"]) == ("update_vs_depth", 32, 16, "quick")
        assert (r["in_features"], r["out_features"], r["optimizer"]) == (784, 10, "sgd(lr=0.001)")
        for field in ("platform", "device_kind", "jax_version", "jdfa_commit", "malloc", "cpu_count",
                      "other_load_cores", "compile_s", "forward_compile_s"):
            assert field in r, field
        assert r["steps_timed"] == 6
        assert 0 < r["forward_ms_min"] <= r["forward_ms_median"] <= r["forward_ms_max"]
        assert 0 < r["step_ms_min"] <= r["step_ms_median"] <= r["step_ms_max"]
        assert r["update_ms"] == pytest.approx(r["step_ms_median"] - r["forward_ms_median"], rel=1e-12)
        assert r["update_ms_of_min"] == pytest.approx(r["step_ms_min"] - r["forward_ms_min"], rel=1e-12)
        assert r["step_over_forward"] == pytest.approx(r["step_ms_median"] / r["forward_ms_median"])
    # The forward is timed once per depth, beside every rule of that depth.
    assert len({(r["depth"], r["forward_ms_median"]) for r in rows}) == 2
    assert png.stat().st_size > 0
    proc = subprocess.run([sys.executable, script, "--from", str(out), "--plot", str(png2)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert png2.stat().st_size > 0 and "slope" in proc.stderr
    target = os.path.join(ROOT, "benchmarks", "results", "cpu", "never_written_update.jsonl")
    proc = subprocess.run([sys.executable, script, "--quick", "--out", target], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0 and "never to benchmarks/results" in proc.stderr
    assert not os.path.exists(target)


def test_runs_at_once_times_the_runners_settings_alone_and_in_pairs(tmp_path):
    """The paper runner's one-or-two-at-a-time measurement: each setting alone, then two children
    with seeds 0 and 1, the gain the pair's summed rate over the lone one's."""
    out = tmp_path / "at_once.jsonl"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "runs_at_once.py"), "--settings", "tiny/dfa",
         "--steps", "10", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "JDFA_DATA_DIR": MNIST})
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [json.loads(line) for line in proc.stdout.splitlines()]
    alone, pair, last = lines
    assert (alone["at_once"], len(alone["children"]), pair["at_once"], len(pair["children"])) == (1, 1, 2, 2)
    assert pair["run_steps_per_s"] == pytest.approx(sum(c["steps_per_s"] for c in pair["children"]))
    assert pair["gain"] == pytest.approx(pair["run_steps_per_s"] / alone["run_steps_per_s"])
    assert last["kind"] == "conclusion" and last["gain"] == {"tiny/dfa": pair["gain"]}


def test_runs_at_once_names_an_unknown_setting_with_the_runners_list():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "runs_at_once.py"),
         "--settings", "tiny/dfa,table2/w999"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "JDFA_DATA_DIR": MNIST})
    assert proc.returncode == 2
    assert "unknown setting(s) ['table2/w999']" in proc.stderr and "'table2/w300_dfa_shared'" in proc.stderr
