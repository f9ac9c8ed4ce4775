"""SIGINT and SIGTERM as a flag the loop checks between chunks (each about half a second), so a
Ctrl-C or a preemption saves a checkpoint and ends the run cleanly; a second Ctrl-C aborts at once
without saving (the last good checkpoint stays: `jdfa.driver.checkpoints.Checkpoints.save` holds a Ctrl-C
that lands inside a save until the save is complete). Once the loop has stopped (`closing`), a
further Ctrl-C is answered and ignored, so the logs and the summary are always written whole."""

from __future__ import annotations

import signal
import threading

from jdfa.driver.progress import say


class SignalFlag:
    """A context manager: ``is_set`` and ``name`` tell whether and which signal arrived."""

    def __init__(self, saves: bool):
        self.saves, self.is_set, self.name, self._old = saves, False, None, {}
        self._closing = False

    def closing(self) -> None:
        """The loop has stopped: from here on a signal only says that the run is being closed."""
        self._closing = True

    def _handle(self, signum, frame):
        if self._closing:
            say(f"{signal.Signals(signum).name} received: the run has stopped; writing its logs")
            return
        if self.is_set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.is_set, self.name = True, signal.Signals(signum).name
        then = "saving a checkpoint" if self.saves else "stopping (checkpoints are off: nothing to save)"
        say(f"{self.name} received: {then}; press Ctrl-C again to abort without saving")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
