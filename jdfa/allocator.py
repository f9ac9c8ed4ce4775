"""glibc's malloc, set up for XLA's CPU temporaries: `tune_allocator`.

With glibc's defaults, every block over the (dynamic) mmap threshold is mapped fresh from the
kernel and unmapped when freed, and a freed heap top over the trim threshold goes back to the
kernel: an XLA step on the CPU, whose temporaries are megabytes, then pays a page fault per 4 KiB
page of them on every step. Raising both thresholds keeps the pages in the process to be reused.
The cost: memory freed stays in the process (its peak stays its size).

`jdfa.train`, `jdfa.sweep` and ``jdfa train`` call `tune_allocator` first; a hand-written loop
calls it itself. ``JDFA_MALLOC=default`` in the environment leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os

ENV_VAR = "JDFA_MALLOC"
# (name, mallopt's parameter number in glibc's <malloc.h>, value). mallopt takes an int, so
# 2**31 - 1 stands for the 4 GiB of the MALLOC_*_ variables the benchmarks once set at start-up:
# either way no temporary of a step is mapped, and no freed heap top is trimmed.
SETTINGS = (("M_MMAP_THRESHOLD", -3, 2**31 - 1),
            ("M_TRIM_THRESHOLD", -1, 2**31 - 1),
            ("M_TOP_PAD", -2, 512 * 2**20))


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What `tune_allocator` did: ``applied``, and ``reason`` in words. True when applied."""

    applied: bool
    reason: str

    def __bool__(self) -> bool:
        return self.applied


@functools.cache
def tune_allocator() -> Tuning:
    """Raises glibc's mmap and trim thresholds (`SETTINGS`) in this process, through ``mallopt``.

    Call it once before the first training step of a loop of your own (`jdfa.train`, `jdfa.sweep`
    and ``jdfa train`` do). It changes no number a step computes, only where its memory comes
    from. Measured on a 2-core CPU at depth 100, width 200, batch 128 (benchmarks/README.md, "What
    a user gets"): the DFA step 36-38 -> 26 ms, BP 47-51 -> 39 ms (issue 32, a quiet machine); in
    one process on a busy one, before and after the call (``benchmarks/malloc_midprocess.py
    --tune-at middle``), DFA 137 -> 88 ms, BP 157 -> 91 ms: the speed of glibc's ``MALLOC_*_``
    variables set before the process starts. Memory a step frees stays in the process.

    Idempotent (the first call's answer is kept). A no-op, never an error, where the C library is
    not glibc (macOS, musl, Windows) or ``JDFA_MALLOC=default`` is set.

    Returns:
      a `Tuning`, true when the thresholds were set; its ``reason`` says why not otherwise.
    """
    if os.environ.get(ENV_VAR, "").strip().lower() == "default":
        return Tuning(False, f"{ENV_VAR}=default: glibc's defaults kept")
    libc = _glibc()
    if isinstance(libc, str):
        return Tuning(False, libc)
    for name, param, value in SETTINGS:
        if libc.mallopt(param, value) != 1:
            return Tuning(False, f"glibc refused mallopt({name}, {value})")
    return Tuning(True, "glibc's mmap and trim thresholds raised: " + ", ".join(
        f"{name}={value}" for name, _, value in SETTINGS))


def _glibc() -> ctypes.CDLL | str:
    """This process's C library when it is glibc, else why not (in words)."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError) as err:  # Windows has no process-wide handle
        return f"no C library to tune ({err})"
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return "the C library is not glibc (macOS, musl, ...): its allocator is left as it is"
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
