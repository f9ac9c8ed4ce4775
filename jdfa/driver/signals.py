"""SIGINT and SIGTERM as a flag the loop checks between chunks, so that a Ctrl-C or a preemption
saves a checkpoint and ends the run cleanly; a second Ctrl-C interrupts at once."""

from __future__ import annotations

import signal
import threading


class SignalFlag:
    """A context manager: ``is_set`` and ``name`` tell whether and which signal arrived."""

    def __init__(self):
        self.is_set, self.name, self._old = False, None, {}

    def _handle(self, signum, frame):
        if self.is_set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.is_set, self.name = True, signal.Signals(signum).name
        print(f"{self.name} received: stopping after the current chunk of steps")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
