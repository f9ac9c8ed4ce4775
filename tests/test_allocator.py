"""`jdfa.tune_allocator`: it takes effect, ``JDFA_MALLOC=default`` turns it off, calling it twice is
safe, and training computes the same numbers, bit for bit, with glibc's malloc tuned or not."""

import ctypes
import json
import os
import subprocess
import sys

import pytest

import jdfa
from jdfa import allocator

GLIBC = hasattr(ctypes.CDLL(None), "gnu_get_libc_version") if sys.platform != "win32" else False

# Trains in a fresh process (glibc's thresholds are per process): `jdfa.train` on a tiny MLP, then a
# hand-written loop; prints what the tuning did, whether a 64 MiB block is mapped from the kernel
# (always so under glibc's defaults: its dynamic threshold stops at 32 MiB) and the numbers.
CODE = r"""
import ctypes, hashlib, json
import jax, numpy as np, optax
import jdfa

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 12)).astype(np.float32)
y = rng.integers(0, 3, 256).astype(np.int32)
net = jdfa.MLP(12, 16, 4, 3, activation="tanh")
config = jdfa.Config(net=net, rule=jdfa.dfa(), dataset="xor", steps=24, batch_size=32, eval_every=8,
                     progress=False, checkpoint=False)
summary = jdfa.train(config, data=((x, y), (x[:64], y[:64])))
tuning = jdfa.tune_allocator()
digest = hashlib.sha256()
for leaf in jax.tree.leaves(summary.state.params):
    digest.update(np.asarray(leaf).tobytes())
losses = []
step = jdfa.make_train_step(net, jdfa.bp(), optax.adam(1e-2))
state = jdfa.init_train_state(jax.random.key(1), net, jdfa.bp(), optax.adam(1e-2))
for i in range(0, 256, 32):
    state, metrics = step(state, x[i:i + 32], y[i:i + 32])
    losses.append(float(metrics["loss"]).hex())
for leaf in jax.tree.leaves(state.params):
    digest.update(np.asarray(leaf).tobytes())
mapped = None
libc = ctypes.CDLL(None)
if hasattr(libc, "mallinfo2"):
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks "
                    "uordblks fordblks keepcost".split()]
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    before = libc.mallinfo2().hblks
    block = libc.malloc(64 << 20)
    mapped = libc.mallinfo2().hblks > before
    libc.free(block)
print(json.dumps({"applied": tuning.applied, "reason": tuning.reason, "mapped": mapped,
                  "params": digest.hexdigest(), "losses": losses,
                  "summary": {k: summary[k] for k in ("step", "test_accuracy", "test_loss",
                                                      "train_accuracy")}}))
"""


def _train(env_var):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop(allocator.ENV_VAR, None)
    env.update({"JAX_PLATFORMS": "cpu", **({allocator.ENV_VAR: env_var} if env_var else {})})
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    return {"tuned": _train(None), "default": _train("default")}


def test_the_allocator_setting_changes_no_number(runs):
    tuned, default = runs["tuned"], runs["default"]
    assert tuned["summary"]["step"] == 24
    for key in ("params", "losses", "summary"):
        assert tuned[key] == default[key], key


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc's malloc only")
def test_training_tunes_glibc_and_the_environment_variable_turns_it_off(runs):
    assert runs["tuned"]["applied"], runs["tuned"]["reason"]
    assert not runs["default"]["applied"] and "JDFA_MALLOC=default" in runs["default"]["reason"]
    if runs["tuned"]["mapped"] is not None:  # mallinfo2: glibc >= 2.33
        assert (runs["tuned"]["mapped"], runs["default"]["mapped"]) == (False, True)


def test_calling_it_again_is_safe_and_gives_the_first_answer():
    first = jdfa.tune_allocator()
    assert jdfa.tune_allocator() is first
    assert bool(first) is first.applied and first.reason
    if GLIBC and not os.environ.get(allocator.ENV_VAR):
        assert first.applied, first.reason
