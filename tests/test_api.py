"""The shape of the public API: one name per thing, rules as one place, the optimizer factory, the
console script, and the driver giving the metrics it gave before the redesign."""

import dataclasses
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdfa
from jdfa import data, parallel, rules
from jdfa.driver import from_flags
from jdfa.optimizers import Optimizer

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(jdfa.__path__, "jdfa.") if m.name != "jdfa.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_no_attribute_hides_a_submodule(name):
    module = importlib.import_module(name)
    parent, _, child = name.rpartition(".")
    assert getattr(importlib.import_module(parent), child) is module, (
        f"{parent}.{child} is {getattr(importlib.import_module(parent), child)!r}, not the module {name}")


SOURCES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "jdfa").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES)
def test_modules_stay_short(path):
    assert len((ROOT / path).read_text().splitlines()) <= 300


def test_data_is_reachable_after_import_jdfa():
    assert jdfa.data.load is data.load


# --- a rule defined outside jdfa, through the public pieces ------------------------------------


@dataclasses.dataclass(frozen=True)
class SignDFA(rules.FeedbackRule):
    """DFA that sends back only the sign of the output error."""

    name: ClassVar[str] = "sign_dfa"

    def feedback_layout(self, net):
        return rules.FeedbackLayout(output=net.depth, hidden=0)

    def deltas(self, net, params, feedback, trace, e, context=None):
        return rules.direct(feedback.output, jnp.sign(e), self.feedback_fprime(trace.fprime, trace.keep))


NET = jdfa.MLP(in_features=6, width=8, depth=3, out_features=4)


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, NET.in_features)), jnp.float32),
            jnp.asarray(rng.integers(0, NET.out_features, n), jnp.int32))


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "no_jit"])
def test_a_toy_rule_outside_jdfa_trains_one_step(jit):
    rule = SignDFA(feedback_scale=0.5)
    assert rules.parse("sign_dfa", feedback_scale=0.5) == rule
    assert hash(rule) == hash(SignDFA(feedback_scale=0.5)) and rule.spec == "sign_dfa"
    x, y = _batch()
    optimizer = optax.sgd(0.1)
    state = jdfa.init_train_state(jax.random.key(0), NET, rule, optimizer)
    before = jax.tree.map(np.array, state.params)
    step = jdfa.make_train_step(NET, rule, optimizer) if jit else (
        lambda s, x, y: jdfa.train_step(NET, rule, optimizer, s, x, y))
    state, metrics = step(state, x, y)
    assert bool(metrics["finite"]) and float(metrics["update_norm"]) > 0
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params, before)
    assert all(v > 0 for v in jax.tree.leaves(moved))


def test_a_toy_rule_is_dfa_of_the_sign_of_e():
    rule, x_y = SignDFA(), _batch()
    params, feedback = jdfa.init(jax.random.key(1), NET, rule)
    trace = jdfa.forward(NET, params, x_y[0])
    _, e = jdfa.losses.output_error(NET, trace.a_y, x_y[1])
    want = jdfa.dfa().deltas(NET, params, feedback, trace, jnp.sign(e))
    chex.assert_trees_all_close(rule.deltas(NET, params, feedback, trace, e), want, rtol=1e-6)
    assert not np.allclose(want, jdfa.dfa().deltas(NET, params, feedback, trace, e))


def test_a_toy_rule_trains_through_the_driver(tmp_path):
    x, y = _batch(64)
    config = jdfa.Config(net=NET, rule=SignDFA(), steps=4, batch_size=16, eval_every=2,
                         progress=False, out=str(tmp_path / "run"))
    summary = jdfa.train(config, data=((np.asarray(x), np.asarray(y)),) * 2)
    assert summary["status"] == "finished" and summary["step"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert rules.from_dict(saved["rule"]) == SignDFA()
    assert jdfa.Config.from_dict(saved) == dataclasses.replace(config)


# --- the one rule-spec parser ----------------------------------------------------------------


@pytest.mark.parametrize("spec, rule", [
    ("bp", jdfa.bp()), ("fa", jdfa.fa()), ("dfa", jdfa.dfa()), ("shallow", jdfa.shallow()),
    ("fp0", jdfa.fp(0)), ("fp3", jdfa.fp(3)), ("bdfa25", jdfa.bdfa(25)),
    ("bdfa10-bp", jdfa.bdfa(10, "backprop")), ("mix50", jdfa.mix()), ("mix10-layer", jdfa.mix(0.1, "layer")),
    ("mix0", jdfa.mix(0.0)), ("mix100-layer", jdfa.mix(1.0, "layer")),
])
def test_spec_round_trip(spec, rule):
    assert rules.parse(spec) == rule and rule.spec == spec and rules.parse(rule.spec) == rule


@pytest.mark.parametrize("spec, fields, match", [
    ("sgd", {}, "unknown rule 'sgd'"),
    ("dfa2", {}, "takes no number"),
    ("bdfa25-up", {}, "suffix"),
    ("dfa", {"block_size": 3}, "rule 'dfa' has no option 'block_size'"),
    ("bp", {"feedback_scale": 2.0}, "rule 'bp' has no option 'feedback_scale'"),
    ("bdfa25", {"block_size": 10}, "says block_size=25 but block_size=10"),
    ("mix50-epoch", {}, "suffix -step or -layer"),
    ("mix150", {}, "p_bp is a probability"),
    ("mix50-layer", {"per": "step"}, "says per='layer' but per='step'"),
])
def test_bad_specs_are_named(spec, fields, match):
    with pytest.raises(ValueError, match=match):
        rules.parse(spec, **fields)


def test_the_spec_defaults_are_the_rules_defaults():
    assert rules.parse("bdfa") == jdfa.bdfa(25) and rules.parse("fp") == jdfa.fp(1)
    assert rules.parse("fp", bp_depth=4) == jdfa.fp(4)
    assert rules.parse("mix") == jdfa.mix() and rules.parse("mix-layer") == jdfa.mix(per="layer")


def test_a_mix_no_spec_can_name_keeps_the_bare_name():
    """bp_steps and a p_bp between whole percents have no spec: the name says "mix", the dict all."""
    for rule in (jdfa.mix(0.0, bp_steps=100), jdfa.mix(1 / 3)):
        assert rule.spec == "mix" and rules.from_dict(rule.to_dict()) == rule


# --- the net says which leaves are stacked and which are weights ---------------------------------


def test_stacked_leaves_are_the_nets_and_the_optimizer_state_mirrors_them():
    state = jdfa.init_train_state(jax.random.key(0), NET, jdfa.fa(), optax.adam(1e-3))
    state_mask = parallel.stacked_mask(state, NET)
    assert jax.tree.leaves(state_mask.params.hidden) == [True, True]
    assert not any(jax.tree.leaves(state_mask.params.input) + jax.tree.leaves(state_mask.params.output))
    assert all(jax.tree.leaves(state_mask.feedback))
    adam = state_mask.opt_state[0]
    assert jax.tree.leaves(adam.mu.hidden) == [True, True] and not any(jax.tree.leaves(adam.mu.output))
    assert adam.count is False and state_mask.step is False
    conv = jdfa.blocks.ConvNet(input_shape=(12, 12, 1), channels=(2, 3), width=8, kernel=3)
    conv_state = jdfa.init_train_state(jax.random.key(0), conv, jdfa.dfa(), optax.adam(1e-3))
    assert not any(jax.tree.leaves(parallel.stacked_mask(conv_state, conv)))


def test_weight_mask_marks_every_weight_and_no_bias():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    mask = NET.weight_mask(params)
    assert mask.input == jdfa.Dense(True, False) and mask.hidden == jdfa.Dense(True, False)
    assert jax.tree.structure(mask) == jax.tree.structure(params)


# --- one optimizer factory; adamw decays weights only, once --------------------------------------


def _run(optimizer, params, grads):
    state = optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _grads(params, n=5):
    keys = jax.random.split(jax.random.key(7), n)
    return [jax.tree.map(lambda p, k=k: jax.random.normal(k, p.shape), params) for k in keys]


def test_adamw_is_optax_adamw_on_the_weights_only():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    ours = Optimizer("adamw", lr=0.01, weight_decay=0.3).build(steps=5, weight_mask=NET.weight_mask)
    want = optax.adamw(0.01, weight_decay=0.3, mask=NET.weight_mask)
    chex.assert_trees_all_close(_run(ours, params, _grads(params)), _run(want, params, _grads(params)),
                                rtol=1e-5, atol=1e-6)


def test_adamw_without_weight_decay_is_adam():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    ours = Optimizer("adamw", lr=0.01).build(steps=5)
    chex.assert_trees_all_close(_run(ours, params, _grads(params)),
                                _run(optax.adam(0.01), params, _grads(params)), rtol=1e-6)


def test_decay_touches_no_bias_and_applies_once():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    params = jax.tree.map(lambda p: p + 1.0, params)  # non-zero biases, so a decay would show
    zero = [jax.tree.map(jnp.zeros_like, params)]
    for name in ("adamw", "adam", "sgd", "momentum", "rmsprop"):
        after = _run(Optimizer(name, lr=0.1, weight_decay=0.5).build(steps=1, weight_mask=NET.weight_mask),
                     params, zero)
        chex.assert_trees_all_close(after.output.b, params.output.b)
        chex.assert_trees_all_close(after.hidden.b, params.hidden.b)
        chex.assert_trees_all_close(after.output.w, params.output.w * (1 - 0.1 * 0.5), rtol=1e-6)


def test_cosine_weight_decay_follows_the_schedule():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    zero = [jax.tree.map(jnp.zeros_like, params)] * 2
    after = _run(Optimizer("sgd", lr=0.1, schedule="cosine", weight_decay=0.5).build(
        steps=4, weight_mask=NET.weight_mask), params, zero)
    rate = optax.cosine_decay_schedule(0.1, 4)
    factor = (1 - float(rate(0)) * 0.5) * (1 - float(rate(1)) * 0.5)
    chex.assert_trees_all_close(after.input.w, params.input.w * factor, rtol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_clipping_and_warmup_are_optax_own_transforms(schedule):
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    grads = [jax.tree.map(lambda g: 10.0 * g, g) for g in _grads(params, 8)]  # long: clipped
    ours = Optimizer("adam", lr=0.01, schedule=schedule, warmup_steps=3, clip_norm=0.5, eps=1e-9).build(8)
    rate = (optax.warmup_cosine_decay_schedule(0.0, 0.01, 3, 8) if schedule == "cosine" else
            optax.join_schedules([optax.linear_schedule(0.0, 0.01, 3), optax.constant_schedule(0.01)], [3]))
    want = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(rate, eps=1e-9))
    chex.assert_trees_all_close(_run(ours, params, grads), _run(want, params, grads), rtol=1e-6)
    # and neither is a no-op: clipping and warmup change where the run goes
    plain = Optimizer("adam", lr=0.01, schedule=schedule).build(8)
    assert not np.allclose(_run(ours, params, grads).output.w, _run(plain, params, grads).output.w)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_takes_a_traced_learning_rate(schedule):
    # a sweep's runs and every chunk of the loop trace lr; the schedule must not branch on it
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    grads = _grads(params, 6)
    opt = Optimizer("adam", lr=0.01, schedule=schedule, warmup_steps=2)
    traced = jax.jit(lambda lr: _run(opt.transform(6, lr, 0.0), params, grads))(jnp.float32(0.01))
    chex.assert_trees_all_close(traced, _run(opt.build(6), params, grads), rtol=1e-6)


def test_a_run_with_warmup_and_cosine_trains_through_the_driver():
    x, y = _batch(64)
    opt = Optimizer("adam", lr=0.01, schedule="cosine", warmup_steps=2, clip_norm=0.5)
    config = jdfa.Config(net=NET, rule=jdfa.dfa(), steps=6, batch_size=16, eval_every=6, progress=False,
                         optimizer=opt)
    summary = jdfa.train(config, data=((np.asarray(x), np.asarray(y)),) * 2)
    assert summary["status"] == "finished" and np.isfinite(summary["test_loss"])


def test_clipping_bounds_every_step_and_warmup_starts_at_zero():
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    big = jax.tree.map(lambda p: jnp.full(p.shape, 100.0), params)
    sgd = Optimizer("sgd", lr=1.0, clip_norm=0.5).build(4)
    updates, _ = sgd.update(big, sgd.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(0.5, rel=1e-5)
    warm = Optimizer("sgd", lr=1.0, warmup_steps=2).build(4)
    updates, _ = warm.update(big, warm.init(params), params)
    assert float(optax.tree.norm(updates)) == 0.0  # the first step's lr is 0


def test_optimizer_options_are_checked_and_the_state_keeps_its_shape_without_them():
    with pytest.raises(ValueError, match="warmup_steps 10 must be fewer than the run's 10 steps"):
        Optimizer(warmup_steps=10).build(10)
    for bad in (dict(clip_norm=-1.0), dict(warmup_steps=-1), dict(eps=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Optimizer(**bad)
    params, _ = jdfa.init(jax.random.key(0), NET, jdfa.bp())
    # an older checkpoint's optimizer state still fits: no clipping adds no chain around it
    assert (jax.tree.structure(Optimizer().build(5).init(params))
            == jax.tree.structure(optax.adam(1e-3).init(params)))


def test_the_command_line_takes_the_recipe_flags():
    config, _ = from_flags({"dataset": "xor", "clip_norm": 0.5, "warmup_steps": 5, "eps": 1e-9,
                            "schedule": "cosine"})
    assert config.optimizer == Optimizer("adam", schedule="cosine", warmup_steps=5, clip_norm=0.5, eps=1e-9)


# --- the console script ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[str(Path(sys.executable).parent / "jdfa")],
                                     [sys.executable, "-m", "jdfa"]], ids=["console_script", "module"])
def test_command_line_entry_points(command, tmp_path):
    assert Path(command[0]).exists(), "the jdfa console script is not installed: pip install -e ."
    helped = subprocess.run([*command, "train", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--block-size" in helped.stdout
    ran = subprocess.run([*command, "train", "--dataset", "xor", "--rule", "bdfa1-bp", "--depth", "2",
                          "--width", "8", "--steps", "20", "--batch-size", "4", "--eval-every", "10",
                          "--no-progress", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert summary["status"] == "finished" and summary["rule"] == "bdfa1-bp"


def test_a_rule_field_for_another_rule_is_refused():
    bad = subprocess.run([sys.executable, "-m", "jdfa", "train", "--dataset", "xor", "--rule", "dfa",
                          "--block-size", "5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "rule 'dfa' has no option 'block_size'" in bad.stderr


# --- same flags, same metrics as before the redesign ---------------------------------------------

GOLDEN = json.loads((ROOT / "tests" / "data" / "golden_metrics.json").read_text())


@pytest.fixture(scope="module")
def mnist_subset():
    mnist = ROOT.parent / "shared" / "data" / "mnist"  # data.load also looks in $JDFA_DATA_DIR
    (x, y), (xt, yt) = data.load("mnist", "train", mnist), data.load("mnist", "test", mnist)
    return (x[:4096], y[:4096]), (xt[:1000], yt[:1000])


@pytest.mark.parametrize("tag", sorted(GOLDEN))
def test_same_flags_give_the_metrics_recorded_before_the_redesign(tag, mnist_subset, tmp_path):
    """tests/data/golden_metrics.json was written by the driver at commit c31a068 (before the
    redesign) from the same flags on the same MNIST subset."""
    golden = GOLDEN[tag]
    config, _ = from_flags({**golden["flags"], "progress": False, "checkpoint": False,
                            "out": str(tmp_path)}, mnist_subset)
    jdfa.train(config, data=mnist_subset)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if r["step"] > 0]  # step 0 (the untrained net) is recorded since
    assert len(records) == len(golden["records"])
    for got, want in zip(records, golden["records"]):
        assert set(want) <= set(got)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=f"{tag} {key}")
