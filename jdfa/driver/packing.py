"""How many runs of one structure a sweep trains as one vmapped program.

On an accelerator a depth-100 step is latency-bound, so as many runs as fit share each program.
On the CPU a vmapped step does the runs' arithmetic on the same cores (XLA:CPU does not spread the
run axis over them), and vmapping costs memory traffic of its own: the guard's branch becomes a
select over the whole state. Measured on 2 cores (``benchmarks/results/cpu/sweep_findings.md``),
only runs whose state is under about 1 MiB gain (1.0-1.2x in programs of 4-8 runs); larger ones
lose (0.4-0.9x), so there the CPU trains them one after another, each with the un-vmapped chunk:
a sweep on the CPU is never slower than its runs in turn. Memory bounds both: the state's size,
and the compiled program's memory analysis when that comes close to the free memory.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from jdfa.driver.chunks import Hyper, init_runs, make_chunk, stepwise_on_cpu
from jdfa.driver.config import Config

CPU_VMAP_MAX_STATE = 2**20  # bytes of state per run up to which the CPU vmaps runs
CPU_MAX_PARALLEL = 8
MEMORY_FRACTION = 0.8  # of the free memory a sweep's program may plan to use
ROOM = 16  # runs whose states take less than 1/ROOM of the free memory fit without asking


def free_bytes(device=None) -> int:
    """Memory the device can still give (an accelerator's allocator limit less what it holds;
    the CPU's available physical memory)."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _one_run(config: Config):
    """The shapes of a one-run stacked state."""
    return jax.eval_shape(lambda: init_runs([jax.random.key(0)], [config.rule], config.net,
                                            config.optimizer, config.steps))


def state_bytes(config: Config) -> int:
    """The bytes of one run's state: params, feedback and the optimizer's state."""
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(_one_run(config)))


def bytes_per_run(config: Config, n_train: int) -> int:
    """What one run of ``config`` needs: the compiled one-run program's memory (arguments,
    outputs, temporaries) less the training data, which every run of a program shares."""
    state = _one_run(config)
    hyper = Hyper(jax.random.split(jax.random.key(0), 1), jnp.ones(1), jnp.zeros(1))
    x, y = config.net.batch_struct(n_train)
    chunk = make_chunk(config.net, config.rule, config.optimizer, config.steps, config.batch_size,
                       config.batch_mode, config.remat, n_train)
    sums = jnp.zeros(1)
    order = jax.ShapeDtypeStruct((1, n_train), jnp.int32)  # the epoch's order, as the loop passes it
    memory = (None if stepwise_on_cpu(config.net) else  # a Python loop of steps: nothing to lower
              chunk.lower(state, hyper, x, y, jnp.int32(1), sums, sums, order).compile().memory_analysis())
    data = sum(s.size * s.dtype.itemsize for s in (x, y))
    if memory is None:  # a backend without the analysis: the state, read and written, and the update
        return 3 * state_bytes(config)
    total = memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
    return max(total - data, 1)


def runs_per_program(config: Config, n_train: int, n_runs: int, max_parallel: int | None,
                     mesh_size: int = 1) -> int:
    """How many of ``n_runs`` runs of ``config``'s structure to train at a time: ``max_parallel``
    when given; else what fits in memory, and on the CPU at most `CPU_MAX_PARALLEL` for runs with
    a small state (`CPU_VMAP_MAX_STATE`) and one for the others. With a mesh of ``mesh_size``
    devices on the run axis, a multiple of it. Raises ``MemoryError`` naming the sizes when one run
    does not fit."""
    cap = n_runs if max_parallel is None else min(max_parallel, n_runs)
    if max_parallel is None:
        state = state_bytes(config)
        if mesh_size == 1 and jax.default_backend() == "cpu":
            cap = min(cap, CPU_MAX_PARALLEL if state <= CPU_VMAP_MAX_STATE else 1)
        free = free_bytes() * MEMORY_FRACTION
        if cap * ROOM * state > free:
            need = bytes_per_run(config, n_train)  # close to the limit: ask the compiler
            if need > free:
                raise MemoryError(f"one run of this sweep needs about {need / 2**30:.2f} GiB and "
                                  f"{free / 2**30:.2f} GiB are free: lower --width, --depth or "
                                  "--batch-size, or pass --remat (DFA)")
            cap = min(cap, int(free // need))
    if cap % mesh_size:
        cap = max(mesh_size, cap // mesh_size * mesh_size)
    return cap
