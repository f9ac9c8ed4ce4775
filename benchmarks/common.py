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

# The allocator settings a benchmark can run under (`apply_malloc`); jdfa.allocator says why.
MALLOC_HELP = {
    "tuned": "jdfa.tune_allocator() at run time, as jdfa.train and `jdfa train` do",
    "default": "glibc's defaults: JDFA_MALLOC=default, no MALLOC_*_ variables (re-executes)",
    "env": "glibc's MALLOC_*_ variables of the same thresholds, set before start-up (re-executes)",
    "inherit": "the environment as started, then jdfa.tune_allocator() as jdfa.train calls it",
}
_REEXEC_FLAG = "JDFA_BENCH_REEXECED"


def start_up_malloc() -> dict:
    """The ``MALLOC_*_`` variables that set, at glibc's start-up, the thresholds `jdfa.tune_allocator`
    sets at run time."""
    from jdfa import allocator

    return {f"MALLOC_{name[2:]}_": str(value) for name, _, value in allocator.SETTINGS}


def add_malloc_flag(parser, default: str = "inherit") -> None:
    """The ``--malloc`` option of a benchmark script; pass its value to `apply_malloc`."""
    parser.add_argument("--malloc", choices=tuple(MALLOC_HELP), default=default,
                        help="; ".join(f"'{k}': {v}" for k, v in MALLOC_HELP.items())
                        + f" (default: {default})")


def malloc_setting() -> str:
    """The allocator this process runs with, as `MALLOC_HELP` names it (``"custom"``: some other
    ``MALLOC_*_`` variables). Call after `apply_malloc`."""
    import jdfa

    present = {k: os.environ.get(k) for k in start_up_malloc()}
    if all(v is None for v in present.values()):
        return "tuned" if jdfa.tune_allocator() else "default"
    return "env" if present == start_up_malloc() else "custom"


def apply_malloc(choice: str) -> None:
    """Puts this process under the allocator ``choice`` (a key of `MALLOC_HELP`): `restart_for`,
    then `jdfa.tune_allocator` as `jdfa.train` calls it (a no-op under ``JDFA_MALLOC=default``,
    which "default" and "env" set)."""
    import jdfa

    restart_for(choice)
    jdfa.tune_allocator()


def restart_for(choice: str) -> None:
    """Re-executes this process when its environment is not the one ``choice`` starts with:
    glibc reads the ``MALLOC_*_`` variables once, at start-up. Tunes nothing itself."""
    from jdfa import allocator

    env = dict(os.environ)
    if choice != "inherit":
        for k in (*start_up_malloc(), allocator.ENV_VAR):
            env.pop(k, None)
        if choice != "tuned":
            env[allocator.ENV_VAR] = "default"
        if choice == "env":
            env.update(start_up_malloc())
    if env != dict(os.environ) and not os.environ.get(_REEXEC_FLAG):
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


def time_train(net, rule, optimizer, batch: int, steps: int, data, eval_every: int | None = None) -> dict:
    """Times `jdfa.train` as a user calls it (progress bar, checkpoints and files off) from
    outside: ``train_s`` is the whole call (the chunk's compile and the evaluations at step 0 and
    at the end included), ``train_ms_per_step`` and ``train_steps_per_s`` that over ``steps``,
    ``summary_steps_per_s`` what the summary says, ``train_cpu_s`` the CPU time this process
    spent in the call (all threads; less sensitive than wall time to other processes). ``data``:
    ``((x, y), (x_test, y_test))``; ``eval_every`` defaults to ``steps`` (the evaluations at step
    0 and at the end only)."""
    import jdfa

    config = jdfa.Config(net=net, rule=rule, optimizer=optimizer, dataset="mnist", steps=steps,
                         batch_size=batch, eval_every=eval_every or steps, progress=False,
                         checkpoint=False, train_eval_size=min(10000, len(data[0][0])))
    t0, cpu0 = time.perf_counter(), own_cpu()
    summary = jdfa.train(config, data=data)
    train_s, cpu_s = time.perf_counter() - t0, own_cpu() - cpu0
    if summary["status"] != "finished":
        raise RuntimeError(f"jdfa.train stopped: {summary}")
    return {"train_steps": steps, "train_eval_every": config.eval_every, "train_s": train_s,
            "train_ms_per_step": train_s / steps * 1e3, "train_steps_per_s": steps / train_s,
            "summary_steps_per_s": summary["steps_per_s"], "train_cpu_s": cpu_s}


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


def own_cpu() -> float:
    """This process's CPU time so far (all threads, and its children's), in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class ForeignLoad:
    """Measures how many cores OTHER processes kept busy over an interval: the machine's busy
    time (``/proc/stat``) minus this process's own CPU time, over wall time. A benchmark whose
    ``other_load`` is well above 0 shared the machine and its times are suspect."""

    def __init__(self):
        self.start()

    def start(self):
        self._t, self._busy, self._own = time.perf_counter(), _busy_jiffies(), own_cpu()

    def cores(self) -> float | None:
        busy = _busy_jiffies()
        if busy is None or self._busy is None:
            return None
        wall = time.perf_counter() - self._t
        return max(0.0, (busy - self._busy) - (own_cpu() - self._own)) / max(wall, 1e-9)


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
