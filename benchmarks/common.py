"""Shared helpers of the benchmark scripts: the machine record, the allocator setting, timing
statistics and JSON-lines output. Imported by the scripts beside it (they run as files, so this
directory is on ``sys.path``); they import jdfa as installed (``pip install -e .``)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# glibc's malloc, tuned so that large temporaries are recycled instead of mmap'ed and unmapped on
# every step: with the default, any block over the (dynamic) mmap threshold gets fresh pages from
# the kernel each step and pays a page fault per 4 KiB page on first touch.
TUNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
    "MALLOC_TOP_PAD_": "536870912",
}
_REEXEC_FLAG = "JDFA_BENCH_REEXECED"


def malloc_setting() -> str:
    """``"tuned"`` when all of `TUNED_MALLOC` is in the environment as given, ``"default"`` when
    none of it is, ``"custom"`` otherwise."""
    present = {k: os.environ.get(k) for k in TUNED_MALLOC}
    if present == TUNED_MALLOC:
        return "tuned"
    if all(v is None for v in present.values()):
        return "default"
    return "custom"


def apply_malloc(choice: str) -> None:
    """Re-executes this process with the allocator environment ``choice`` asks for.

    glibc reads the ``MALLOC_*_`` variables once, at start-up, so setting them from Python is too
    late: the process has to start again. ``"inherit"`` keeps the environment as it is.
    """
    if choice == "inherit" or os.environ.get(_REEXEC_FLAG):
        return
    want = "tuned" if choice == "tuned" else "default"
    if malloc_setting() == want:
        return
    env = dict(os.environ)
    for k in TUNED_MALLOC:
        env.pop(k, None)
    if want == "tuned":
        env.update(TUNED_MALLOC)
    env[_REEXEC_FLAG] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def jdfa_revision() -> dict:
    """The commit of the checkout the benchmark imports jdfa from, and whether ``jdfa/`` had
    uncommitted changes (None outside a git checkout)."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", "-C", REPO_ROOT, *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return {"jdfa_commit": None, "jdfa_dirty": None}
    return {"jdfa_commit": commit, "jdfa_dirty": bool(git("status", "--porcelain", "--", "jdfa"))}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timing_fields(times_s: list[float], batch: int) -> dict:
    """Median, min and max step time in ms and the examples per second at the median."""
    med = statistics.median(times_s)
    return {
        "steps_timed": len(times_s),
        "step_ms_median": med * 1e3,
        "step_ms_min": min(times_s) * 1e3,
        "step_ms_max": max(times_s) * 1e3,
        "examples_per_s": batch / med,
    }


def interleaved_rounds(steps: int, rounds: int) -> list[int]:
    """Splits ``steps`` timed steps into ``rounds`` chunks (sizes differ by at most one)."""
    rounds = max(1, min(rounds, steps))
    base, extra = divmod(steps, rounds)
    return [base + (i < extra) for i in range(rounds)]


def environment() -> dict:
    """The device, software and machine fields every record carries. Call after `apply_malloc`
    (it imports jax)."""
    import jax

    dev = jax.devices()[0]
    return {"device_kind": dev.device_kind, "platform": dev.platform, "jax_version": jax.__version__,
            "cpu_model": cpu_model(), "cpu_count": cpu_count(), **jdfa_revision(),
            "malloc": malloc_setting(), "xla_flags": os.environ.get("XLA_FLAGS")}


def time_interleaved(programs: list, call, warmup: int, steps: int, rounds: int) -> float | None:
    """Times ``programs`` alike: ``warmup`` calls each, then ``steps`` timed calls each split into
    ``rounds`` chunks taken in turn (the order rotating each round), so that machine noise falls
    on all of them. ``call(program)`` makes one call and returns its seconds; they are appended
    to ``program.times``. Returns the cores other processes used meanwhile (`ForeignLoad`)."""
    load = ForeignLoad()
    for prog in programs:
        for _ in range(warmup):
            call(prog)
    for i, chunk in enumerate(interleaved_rounds(steps, rounds)):
        for prog in programs[i % len(programs):] + programs[:i % len(programs)]:
            prog.times.extend(call(prog) for _ in range(chunk))
    return load.cores()


def save_figure(fig, path: str, dpi: int = 110) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def time_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Emitter:
    """Prints JSON objects one a line to stdout and, with a path, appends them to a file."""

    def __init__(self, path: str | None, append: bool = False):
        self._file = None
        if path:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self._file = open(path, "a" if append else "w")

    def emit(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=False)
        print(line, flush=True)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def str_list(text: str) -> list[str]:
    return [v for v in text.replace(" ", "").split(",") if v]


def _busy_jiffies() -> float | None:
    """Non-idle CPU time of the whole machine so far, in seconds (Linux ``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class ForeignLoad:
    """Measures how many cores OTHER processes kept busy over an interval: the machine's busy
    time (``/proc/stat``) minus this process's own CPU time, over wall time. A benchmark whose
    ``other_load`` is well above 0 shared the machine and its times are suspect."""

    def __init__(self):
        self.start()

    def start(self):
        self._t, self._busy, self._own = time.perf_counter(), _busy_jiffies(), _own_cpu()

    def cores(self) -> float | None:
        busy = _busy_jiffies()
        if busy is None or self._busy is None:
            return None
        wall = time.perf_counter() - self._t
        return max(0.0, (busy - self._busy) - (_own_cpu() - self._own)) / max(wall, 1e-9)


def wait_for_quiet(max_wait_s: float, threshold: float = 0.25, sample_s: float = 2.0) -> float | None:
    """Waits (at most ``max_wait_s``) until other processes use under ``threshold`` cores over
    ``sample_s``; returns the last reading. For shared machines: start timing when it is quiet."""
    start = time.perf_counter()
    last_log = -1e9
    while True:
        probe = ForeignLoad()
        time.sleep(sample_s)
        load = probe.cores()
        waited = time.perf_counter() - start
        if load is None or load < threshold:
            if waited > sample_s * 1.5:
                log(f"  machine quiet after {waited:.0f} s")
            return load
        if waited >= max_wait_s:
            log(f"  machine still busy after {waited:.0f} s ({load:.2f} cores used by other "
                "processes); timing anyway")
            return load
        if waited - last_log >= 60:
            log(f"  machine busy ({load:.2f} cores used by other processes); waiting")
            last_log = waited
