"""The experiment scripts run end to end: XOR's --quick version as a subprocess, into tmp_path."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def run_script(name, out, *flags, timeout=80):
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(out / "cache"))
    env.pop("XLA_FLAGS", None)  # one CPU device is enough; the 8 simulated ones only slow it down
    return subprocess.run([sys.executable, str(EXPERIMENTS / name), "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_xor_quick_writes_results(tmp_path):
    proc = run_script("xor.py", tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.json", "table.md", "xor.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "xor.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick"
    outputs = results["outputs"]
    assert len(outputs) == 2
    for o in outputs.values():
        assert len(o) == 4 and all(0.0 <= v <= 1.0 for v in o)
    for run in results["runs"].values():
        assert run["status"] == "finished" and run["step"] == 1000
    table = (tmp_path / "table.md").read_text()
    assert "0.0057" in table and "--quick" in table  # the report's number beside ours, mode stated


def test_missing_dataset_is_reported(tmp_path):
    """A missing notMNIST archive (not shipped): the script says so and exits 3 instead of crashing
    or downloading."""
    env_dir = tmp_path / "empty"
    env_dir.mkdir()
    env = dict(os.environ, JDFA_DATA_DIR=str(env_dir), JDFA_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(EXPERIMENTS / "fp_depth15.py"), "--quick", "--dataset",
                           "notmnist", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, env=env)
    if proc.returncode == 0:
        pytest.skip("a notMNIST archive is present on this machine")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "MISSING" in proc.stderr


def test_jobs_give_the_numbers_of_serial_runs(tmp_path):
    """``--jobs 2`` trains each run in its own process; every metric but the timings is the
    serial run's, and the runs are read back from their folders."""
    code = f"""
import json, sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common
config = dict(rule="dfa", depth=1, width=4, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
              optimizer="sgd", lr=0.5, batch_size=1, steps=120, eval_every=40)
runs = {{f"seed{{s}}": dict(config, seed=s) for s in (0, 1)}}
for jobs in (2, 1):
    args = common.parse_args("", "t", datasets=("xor",), argv=["--out", {str(tmp_path)!r} + f"/jobs{{jobs}}",
                                                             "--jobs", str(jobs)])
    done = common.run_all(args, runs, data=common.load_data(args))
    print(json.dumps({{tag: [{{k: v for k, v in rec.items() if k not in ("wall_s", "steps_per_s")}}
                            for rec in r["records"]] for tag, r in done.items()}}))
"""
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parallel, serial = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    assert parallel == serial
    assert sorted(parallel) == ["seed0", "seed1"] and len(parallel["seed0"]) == 4  # steps 0, 40, 80, 120
    assert parallel["seed0"] != parallel["seed1"]
    for tag in parallel:  # trained by a child process (its log), not in the parent
        assert (tmp_path / "jobs2" / "runs" / f"{tag}.log").is_file()
        assert not (tmp_path / "jobs1" / "runs" / f"{tag}.log").exists()


def test_a_half_written_run_folder_is_not_reused(tmp_path):
    """A run folder holding a summary but not its config (a run stopped while its folder was being
    replaced) is retrained, not read back or crashed on."""
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "summary.json").write_text('{"status": "interrupted"}')
    code = f"""
import sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common
print(common.load_run({str(tmp_path / "runs" / "r")!r}, {str(tmp_path)!r}))
"""
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "None"


def run_code(code, tmp_path, timeout=120):
    env = dict(os.environ)
    env.setdefault("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=tmp_path)


def test_importing_the_scripts_runs_nothing(tmp_path):
    """Every script only defines ``main`` on import: no flags parsed, no data loaded, nothing
    trained or written, and neither the environment nor ``sys.path`` changed."""
    names = sorted(p.stem for p in EXPERIMENTS.glob("*.py"))
    code = f"""
import importlib, os, sys
import jdfa  # what jax itself sets on import is not the scripts' doing
env, path = dict(os.environ), list(sys.path)
sys.argv = ["x", "--no-such-flag"]  # a script that parsed its flags on import would exit 2
sys.path.insert(0, {str(EXPERIMENTS)!r})
for name in {names!r}:
    module = importlib.import_module(name)
    assert name in ("common", "runner", "seeds") or callable(module.main), name
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
assert sys.path[1:] == path
print("ok")
"""
    proc = run_code(code, tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "ok\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert "xor" in names and "beat_paper" in names


def _experiments_common():
    """experiments/common.py as a module of its own name, so that it never shadows another folder's
    ``common`` (benchmarks/ has one) in this process."""
    spec = importlib.util.spec_from_file_location("experiments_common", EXPERIMENTS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_for_rule_drops_only_the_fields_the_rule_lacks():
    common = _experiments_common()
    recipe = dict(depth=3, lr=0.1, feedback_init="gaussian", block_size=5, bp_depth=2, keep_state=True)
    assert common.for_rule(dict(recipe, rule="bp")) == dict(rule="bp", depth=3, lr=0.1)
    assert common.for_rule(dict(recipe, rule="dfa")) == dict(rule="dfa", depth=3, lr=0.1,
                                                             feedback_init="gaussian")
    assert common.for_rule(dict(recipe, rule="bdfa")) == dict(rule="bdfa", depth=3, lr=0.1,
                                                              feedback_init="gaussian", block_size=5)
    assert common.for_rule(dict(recipe, rule="fp3")) == dict(rule="fp3", depth=3, lr=0.1,
                                                             feedback_init="gaussian", bp_depth=2)
    assert common.for_rule(dict(depth=3)) == dict(depth=3)  # the default rule, dfa, has no block_size


def test_a_finished_run_is_reused_only_for_the_same_config(tmp_path):
    """`common.run` builds the run with `jdfa.driver.from_flags`; a second call with the same flat
    config reads the finished run back (its config.json holds the nested `Config.to_dict`), a
    changed one retrains. A common recipe's feedback fields are dropped for BP."""
    code = f"""
import json, sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common
args = common.parse_args("", "t", datasets=("xor",), argv=["--out", {str(tmp_path / "out")!r}])
data = common.load_data(args)
config = dict(rule="bp", depth=1, width=4, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
              feedback_init="gaussian", optimizer="sgd", lr=0.5, batch_size=1, steps=20, eval_every=10)
first = common.run(args, "r", data=data, **config)
again = common.run(args, "r", data=data, **config)
changed = common.run(args, "r", data=data, **dict(config, lr=0.25))
saved = json.loads((args.out / "runs" / "r" / "config.json").read_text())["config"]
print(json.dumps(dict(steps=[first["step"], again["step"], changed["step"]], saved=saved,
                      same=first["records"] == again["records"],
                      outs=[first["config"]["out"], again["config"]["out"]])))
"""
    proc = run_code(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("reusing the finished run") == 1
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["steps"] == [20, 20, 20] and result["same"]
    assert result["outs"] == ["runs/r", "runs/r"]  # relative to the results folder, trained or reused
    saved = result["saved"]
    assert saved["rule"] == {"name": "bp"}
    assert saved["optimizer"]["lr"] == 0.25 and saved["net"]["in_features"] == 2
    assert saved["net"]["out_features"] == 1 and saved["dataset"] == "xor"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXPERIMENTS))
    return module


def test_quick_runs_never_write_to_the_committed_results():
    """Issue 10, item 4: --quick without --out goes to the git-ignored scratch folder."""
    common = _load("common")
    quick = common.parse_args("", "xor_probe", argv=["--quick"])
    assert quick.out == EXPERIMENTS / "scratch" / "xor_probe"
    quick.out.rmdir()
    assert "experiments/scratch/" in (EXPERIMENTS.parent / ".gitignore").read_text().split()


def test_xor_text_agrees_with_the_solved_count():
    import numpy as np

    xor = _load("xor")
    y = np.array([0, 1, 1, 0])
    outputs = {0: np.array([0.6, 0.4, 0.4, 0.6]), 1: np.array([0.1, 0.9, 0.8, 0.2])}
    none = xor._gap({0: outputs[0]}, y, {0: False}, quick=True)
    assert none.startswith("No seed solved XOR") and "solved seeds are" not in none
    some = xor._gap(outputs, y, {0: False, 1: True}, quick=False)
    assert "seed 1: 0.200" in some and "seed 0" not in some


def test_seeded_runs_and_their_statistics(tmp_path):
    """`seeds.run_seeds` trains a recipe per seed into ``<label>_s<seed>`` and reuses finished seeds
    when the seed count grows; `seeds.stats` gives the mean, the sample std and the 95 % t-interval
    (t_{0.975, 2} = 4.303 for three values); `separated` compares intervals."""
    code = f"""
import json, math, sys
sys.path.insert(0, {str(EXPERIMENTS)!r})
import common, seeds
args = common.parse_args("", "t", datasets=("xor",), argv=["--out", {str(tmp_path / "out")!r}])
data = common.load_data(args)
recipe = dict(rule="dfa", depth=1, width=4, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
              optimizer="sgd", lr=0.5, batch_size=1, steps=20, eval_every=10)
two = seeds.run_seeds(args, {{"a": recipe}}, 2, data=data)
three = seeds.run_seeds(args, {{"a": recipe}}, [0, 1, 2], data=data)
s = seeds.stats([0.90, 0.92, 0.94, float("nan")])
lo, hi = seeds.stats([0.5, 0.52, 0.54]), seeds.stats([0.9, 0.92, 0.94])
vargs = common.parse_args("", "t", datasets=("xor",),
                          argv=["--out", {str(tmp_path / "vmap")!r}, "--vmap-seeds"])
vmapped = seeds.run_seeds(vargs, {{"a": recipe}}, [0, 1, 2], data=data)
again = seeds.run_seeds(vargs, {{"a": recipe}}, [0, 1, 2], data=data)
losses = lambda rs: [[r["loss"] for r in run["records"] if "loss" in r] for run in rs]
print(json.dumps(dict(folders=sorted(p.name for p in (args.out / "runs").iterdir() if p.is_dir()),
                      same=[two["a"][i]["records"] == three["a"][i]["records"] for i in (0, 1)],
                      differ=three["a"][0]["records"] != three["a"][2]["records"],
                      vmapped=[losses(three["a"]), losses(vmapped["a"]), losses(again["a"])],
                      outs=[three["a"][0]["config"]["out"], again["a"][0]["config"]["out"]],
                      stats=list(s), text=seeds.text(s),
                      order=[seeds.separated(hi, lo), seeds.separated(lo, hi), seeds.separated(s, hi),
                             seeds.separated(seeds.stats([1]), lo)])))
"""
    proc = run_code(code, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["folders"] == ["a_s0", "a_s1", "a_s2"]
    assert out["same"] == [True, True] and out["differ"]
    serial, vmapped, again = out["vmapped"]
    np.testing.assert_allclose(vmapped, serial, rtol=1e-5)  # one vmapped program = the seeds one by one
    assert again == vmapped and "reusing the finished seeds [0, 1, 2]" in proc.stdout
    assert out["outs"] == ["runs/a_s0", "runs/a/seed=0"]
    mean, std, n, ci = out["stats"]
    assert n == 3 and abs(mean - 0.92) < 1e-12 and abs(std - 0.02) < 1e-12
    assert abs(ci - 4.303 * 0.02 / 3 ** 0.5) < 1e-4
    assert out["text"] == "92.0 ± 2.0 (3)"
    assert out["order"] == ["higher", "lower", "overlap", "overlap"]
    assert "reusing the finished run" in proc.stdout


# The roots of the machines' home and work folders: a committed result that names one was written
# with the absolute path of the checkout it ran in.
MACHINE_ROOTS = ("/work/", "/root/", "/home/", "/Users/", "/tmp/", "/mnt/")


def test_no_committed_result_names_a_machine_folder():
    """Every tracked file of the experiments' and benchmarks' results records its run folders
    relative to where it lies (``runs/<tag>``), so it reads the same in any checkout."""
    root = EXPERIMENTS.parent
    listed = subprocess.run(["git", "ls-files", "-z", "experiments/results", "benchmarks/results"],
                            cwd=root, capture_output=True, text=True)
    if listed.returncode:
        pytest.skip("not a git checkout")
    files = [name for name in listed.stdout.split("\0") if name]
    assert any(name.endswith("results.json") for name in files)
    named = {}
    for name in files:
        data = (root / name).read_bytes()
        if b"\0" in data:  # images: their bytes are not paths
            continue
        text = data.decode("utf-8", errors="replace")
        found = [r for r in MACHINE_ROOTS if r in text]
        if found:
            named[name] = found
    assert not named, named


def test_the_transformer_screen_plans_every_setting_and_reports_r(tmp_path):
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import transformer_screen as screen
    finally:
        sys.path.remove(str(EXPERIMENTS))
    plan = screen.plan("screen")
    tags = [tag for _, tag, _ in plan]
    assert len(tags) == len(set(tags)) == 2 * sum(len(s) for s in screen.parts("screen").values())
    assert tags.index("dfa_lr0.001_s0") < tags.index("bp_lr0.001_s1")  # every seed 0 first
    flags = {tag: f for _, tag, f in plan}
    assert flags["dfa_lr0.001_clip0.5_warm_s0"]["clip_norm"] == 0.5
    assert flags["dfa_lr0.001_clip0.5_warm_s0"]["warmup_steps"] == 40
    records = tmp_path / "records"
    records.mkdir()
    for part, tag, loss in (("lr", "shallow_lr0.001_s0", 2.4), ("lr", "bp_lr0.001_s0", 2.0),
                            ("lr", "dfa_lr0.001_s0", 2.3), ("lr", "dfa_lr0.001_s1", 2.1)):
        (records / f"{tag}.json").write_text(json.dumps(
            {"part": part, "tag": tag, "commit": "abc", "summary": {"test_loss": loss}}))
    table = screen.report(tmp_path)
    # DFA's mean 2.2 closes half of the shallow control's 0.4 to BP: R = +0.50
    assert "| lr | `dfa_lr0.001` | 2.200 ± 0.141 (2) | +0.50 |" in table
    assert "4 of 58 runs have records" in table
