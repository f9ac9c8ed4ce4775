"""What `jdfa.train` returns: a run's summary, a dict with a short repr."""

from __future__ import annotations

SHOWN = ("status", "step", "train_accuracy", "test_accuracy", "best_test_accuracy", "best_step", "wall_s",
         "out")


class Summary(dict):
    """A run's summary: ``status`` ("finished", "diverged", "invalid_data", "interrupted",
    "aborted"), ``step``, the last evaluation's ``train_accuracy`` / ``test_accuracy`` /
    ``test_loss``, ``best_test_accuracy`` and ``best_step``, ``wall_s`` (across resumes),
    ``steps_per_s``, ``rollbacks``, ``out``, and ``state`` (the final `jdfa.TrainState`: the last
    state whose steps were all valid), also as the attribute `state`.

    A dict, as before, so ``summary["test_accuracy"]`` and ``json.dumps`` of it without the state
    work; its repr is one line of what a person looks at first, never the state's arrays.
    """

    @property
    def state(self):
        """The final `jdfa.TrainState`."""
        return self["state"]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(self[k])}" for k in SHOWN if k in self)
        return f"Summary({shown})"

    __str__ = __repr__


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = repr(value)
    return text if len(text) <= 80 else "..." + text[-77:]


class Interrupted(KeyboardInterrupt):
    """Raised by `jdfa.train` and `jdfa.sweep` when Ctrl-C (or SIGTERM) stopped them, after the
    checkpoint was saved and the logs closed, so that the caller's script stops too (a loop over
    seeds does not go on to the next one). A `KeyboardInterrupt`: an ``except KeyboardInterrupt``
    catches it. ``result`` is what the call would have returned (its ``status`` "interrupted", or
    "aborted" after a second Ctrl-C)."""

    def __init__(self, result: dict):
        step = result.get("step", max((r["summary"]["step"] for r in result.get("runs", [])), default="?"))
        super().__init__(f"{result['status']} at step {step}; {_resume_hint(result)}")
        self.result = result


def _resume_hint(result: dict) -> str:
    from jdfa.driver.flags import spelled

    if result["status"] == "aborted":
        return "the last good checkpoint and the logs are kept"
    return f"the same run with {spelled('resume')} continues from the checkpoint" if result.get("out") \
        else "checkpoints were off"
