"""Scale-out on JAX's own machinery: a device `Mesh` with a ``data`` and a ``layers`` axis.

* Data parallel: the batch is split over ``data``; params, feedback and optimizer state are
  replicated, and XLA's SPMD partitioner inserts the all-reduce of the batch sums.
* Layer parallel (DFA's own kind): the stacked hidden layers -- ``params.hidden``, every feedback
  stack, and the optimizer state that mirrors them -- are split over ``layers``, so each device
  forms the deltas and weight updates of its own layers once ``e`` is known everywhere. The forward
  pass is still a sequential scan over layers: each step needs the previous layer's output, so on
  that part of the step the devices take turns (XLA gathers each layer's weights as the scan reaches
  it). That, not the update, bounds the speed-up of layer parallelism.

Sharding never changes what is computed, only where: results match the single-device step to float
tolerance (reductions are re-associated).

A stacked leaf is split over ``layers`` only when its layer count divides evenly by the axis size
(``jax.device_put`` needs even shards); any other leaf is replicated. With 8 layer devices,
``depth = 8k + 1`` splits ``params.hidden`` (``8k`` layers) evenly.

Several hosts (a TPU pod slice, multi-GPU nodes): call `initialize_distributed` first on every
host; `make_mesh` then spans all processes' devices.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "layers")


def make_mesh(data: int = 1, layers: int = 1, devices=None) -> Mesh:
    """A ``(data, layers)`` mesh over ``data * layers`` devices (the first ones of ``devices``,
    default `jax.devices()`)."""
    devices = list(jax.devices() if devices is None else devices)
    if data < 1 or layers < 1:
        raise ValueError(f"mesh axes must be >= 1, got data={data}, layers={layers}")
    if data * layers > len(devices):
        raise ValueError(f"a {data}x{layers} mesh needs {data * layers} devices, only {len(devices)} "
                         "are visible; on CPU, simulate more with "
                         "XLA_FLAGS=--xla_force_host_platform_device_count=N (set before jax starts)")
    return Mesh(np.asarray(devices[:data * layers]).reshape(data, layers), AXES)


def stacked_mask(state, net):
    """A tree of bools shaped like a `jdfa.TrainState` ``state``: True for the leaves on the
    layer axis, as the net says (`jdfa.net.Net.layer_axis_mask`): in the params, in every part of
    the optimizer's state that mirrors the params (Adam's moments), and in the feedback."""
    params_def = jax.tree.structure(state.params)
    params_mask = net.layer_axis_mask(state.params)

    def mirrors(node) -> bool:
        return jax.tree.structure(node) == params_def

    opt_mask = jax.tree.map(lambda n: params_mask if mirrors(n) else False, state.opt_state, is_leaf=mirrors)
    return state._replace(step=False, params=params_mask, opt_state=opt_mask, key=False,
                          feedback=net.feedback_layer_axis_mask(state.feedback))


def state_sharding(mesh: Mesh, state, net):
    """NamedShardings for every leaf of a `jdfa.TrainState` of ``net`` (or its abstract shapes):
    stacked layers over ``layers`` where they divide evenly, everything else replicated."""
    n = mesh.shape["layers"]

    def spec(leaf, stacked):
        shape = np.shape(leaf)
        if n > 1 and stacked and len(shape) >= 2 and shape[0] % n == 0 and shape[0]:
            return NamedSharding(mesh, P("layers"))
        return NamedSharding(mesh, P())

    return jax.tree.map(spec, state, stacked_mask(state, net))


def with_run_axis(shardings):
    """``shardings`` (NamedShardings of one run's leaves) for the same leaves stacked on a leading
    run axis (the driver's state of R runs), that axis not split."""
    return jax.tree.map(lambda s: NamedSharding(s.mesh, P(None, *s.spec)), shardings)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The batch axis of ``x`` and ``y`` split over ``data``."""
    return NamedSharding(mesh, P("data"))


def run_sharding(mesh: Mesh) -> NamedSharding:
    """The leading run axis of a sweep's stacked state (`jdfa.sweep`) split over ``data``: each
    device trains its share of the runs whole."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_state(mesh: Mesh, state, net):
    """Places ``state`` (a `jdfa.TrainState` of ``net``) on the mesh as `state_sharding` says."""
    return jax.device_put(state, state_sharding(mesh, state, net))


def check_batch(mesh: Mesh, batch_size: int) -> None:
    if batch_size % mesh.shape["data"]:
        raise ValueError(f"batch size {batch_size} does not split over {mesh.shape['data']} data "
                         "devices; use a multiple of the data axis")


DISTRIBUTED_ENV = ("JDFA_COORDINATOR_ADDRESS", "JDFA_NUM_PROCESSES", "JDFA_PROCESS_ID")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins this process to a multi-process run (`jax.distributed.initialize`). On Cloud TPU and
    SLURM every argument is detected; elsewhere pass all three, or set ``JDFA_COORDINATOR_ADDRESS``
    (``host:port`` of process 0), ``JDFA_NUM_PROCESSES`` and ``JDFA_PROCESS_ID`` in each process's
    environment (how ``jdfa train --distributed`` is told on a plain machine or cluster). CPU
    devices exchange their collectives through gloo, so several processes on CPUs (one machine or
    many) form one mesh too. A process already joined is left as it is, so the driver may call
    this again after a script did.

    Raises ``ValueError`` naming the variable when one of the environment's values is not a whole
    number.
    """
    if jax.distributed.is_initialized():
        return
    address, count, index = (os.environ.get(name) for name in DISTRIBUTED_ENV)
    try:
        num_processes = int(count) if num_processes is None and count is not None else num_processes
        process_id = int(index) if process_id is None and index is not None else process_id
    except ValueError:
        raise ValueError(f"JDFA_NUM_PROCESSES and JDFA_PROCESS_ID must be whole numbers, got "
                         f"{count!r} and {index!r}") from None
    coordinator_address = coordinator_address or address
    # Only the CPU backend reads this: without it, CPU devices of several processes cannot all-reduce.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
