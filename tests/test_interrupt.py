"""Ctrl-C stops the caller's script: `jdfa.train` and `jdfa.sweep` save, then raise
`KeyboardInterrupt` (`jdfa.driver.Interrupted`), so a loop over seeds does not go on."""

import os
import signal
import subprocess
import sys
import time

import pytest

import jdfa
from jdfa.driver.checkpoints import Checkpoints

FLAGS = dict(dataset="mnist", rule="dfa", depth=3, width=64, steps=20000, eval_every=100,
             checkpoint_every=100, train_eval_size=500, progress=False)
SCRIPTS = {
    "train": """
import sys, jdfa
from jdfa.driver import from_flags
for seed in range(3):
    config, data = from_flags({**FLAGS, "seed": seed, "out": f"{sys.argv[1]}/seed{seed}"})
    print("starting", seed, flush=True)
    jdfa.train(config, data=data)
print("the loop went on to its end")
""",
    "sweep": """
import sys, jdfa
from jdfa.driver import from_flags
for name in ("first", "second"):
    config, data = from_flags({**FLAGS, "out": f"{sys.argv[1]}/{name}"})
    print("starting", name, flush=True)
    jdfa.sweep(config, data=data, seeds=2)
print("the loop went on to its end")
""",
}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_sigint_stops_a_script_looping_over_runs(kind, tmp_path):
    code = f"FLAGS = {FLAGS!r}\n" + SCRIPTS[kind]
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    first = tmp_path / ("seed0" if kind == "train" else "first")
    log = first / ("metrics.jsonl" if kind == "train" else "seed=0/metrics.jsonl")
    end = time.time() + 300
    while not (log.exists() and log.read_text().count("\n") >= 2):  # training, past step 0
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "the first run did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "Interrupted: interrupted at step" in err, (out, err)
    assert "went on" not in out and not (tmp_path / ("seed1" if kind == "train" else "second")).exists()
    folder = first / "checkpoints" if kind == "train" else first / "checkpoints" / "0"
    checkpoints = Checkpoints(folder)
    steps = checkpoints.steps()
    checkpoints.close()
    assert steps and steps[-1] > 0 and not any("tmp" in p.name for p in folder.iterdir())  # saves complete


def test_interrupted_is_a_keyboard_interrupt_that_carries_the_result():
    stopped = jdfa.driver.Interrupted({"status": "interrupted", "step": 7, "out": "runs/x"})
    assert isinstance(stopped, KeyboardInterrupt) and stopped.result["step"] == 7
    assert "interrupted at step 7" in str(stopped) and "Config(resume=True)" in str(stopped)


def test_a_ctrl_c_after_the_loop_stopped_is_answered_not_raised(capsys):
    """A second Ctrl-C that lands once the loop has saved and stopped must not cut the logs short
    (the CLI would print no summary): it is answered and ignored."""
    from jdfa.driver.signals import SignalFlag

    with SignalFlag(saves=True) as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.is_set and signals.name == "SIGINT"
        signals.closing()
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt before `closing`
    assert "the run has stopped; writing its logs" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt), SignalFlag(saves=True):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
