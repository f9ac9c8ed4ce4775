"""How many runs of one structure a sweep trains as one vmapped program.

On an accelerator a depth-100 step is latency-bound, so as many runs as fit share each program.
On the CPU a vmapped step does the runs' arithmetic on the same few cores, so it gains only where
one run leaves them idle (small layers); elsewhere runs go one after another
(``benchmarks/sweep_throughput.py`` measured where the line lies, `CPU_VMAP_MAX_WIDTH`). Memory
bounds both: the compiled program's memory analysis says what one run needs.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from jdfa.driver.batches import Hyper, init_runs, make_sweep_chunk
from jdfa.driver.config import Config

CPU_VMAP_MAX_WIDTH = 128  # on the CPU, runs of wider layers go one after another
CPU_MAX_PARALLEL = 4
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


def bytes_per_run(config: Config, n_train: int) -> int:
    """What one run of ``config`` needs: the compiled one-run program's memory (arguments,
    outputs, temporaries) less the training data, which every run of a program shares."""
    state = jax.eval_shape(lambda: init_runs([jax.random.key(0)], [1.0], config.net, config.rule,
                                             config.optimizer, config.steps))
    hyper = Hyper(jax.random.split(jax.random.key(0), 1), jnp.ones(1), jnp.zeros(1))
    x = jax.ShapeDtypeStruct((n_train, config.net.in_features), jnp.float32)
    y = jax.ShapeDtypeStruct((n_train,), jnp.int32)
    chunk = make_sweep_chunk(config.net, config.rule, config.optimizer, config.steps, config.batch_size,
                             config.batch_mode, config.remat, n_train)
    sums = jnp.zeros(1)
    memory = chunk.lower(state, hyper, x, y, jnp.int32(1), sums, sums).compile().memory_analysis()
    data = n_train * (config.net.in_features + 1) * 4
    if memory is None:  # a backend without the analysis: the state, its update and the optimizer's
        return 3 * sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
    total = memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
    return max(total - data, 1)


def runs_per_program(config: Config, n_train: int, n_runs: int, max_parallel: int | None,
                     mesh_size: int = 1) -> int:
    """How many of ``n_runs`` runs of ``config``'s structure to train at a time: ``max_parallel``
    when given; else what fits in memory, and on the CPU at most `CPU_MAX_PARALLEL` for narrow
    nets and one for wide ones. With a mesh of ``mesh_size`` devices on the run axis, a multiple
    of it. Raises ``MemoryError`` naming the sizes when one run does not fit."""
    cap = n_runs if max_parallel is None else min(max_parallel, n_runs)
    if max_parallel is None:
        if mesh_size == 1 and jax.default_backend() == "cpu":
            cap = min(cap, CPU_MAX_PARALLEL if config.net.width <= CPU_VMAP_MAX_WIDTH else 1)
        free = free_bytes() * MEMORY_FRACTION
        state = jax.eval_shape(lambda: init_runs([jax.random.key(0)], [1.0], config.net, config.rule,
                                                 config.optimizer, config.steps))
        if cap * ROOM * sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state)) > free:
            need = bytes_per_run(config, n_train)  # close to the limit: ask the compiler
            if need > free:
                raise MemoryError(f"one run of this sweep needs about {need / 2**30:.2f} GiB and "
                                  f"{free / 2**30:.2f} GiB are free: lower --width, --depth or "
                                  "--batch-size, or pass --remat (DFA)")
            cap = min(cap, int(free // need))
    if cap % mesh_size:
        cap = max(mesh_size, cap // mesh_size * mesh_size)
    return cap
