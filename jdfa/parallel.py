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

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jdfa.feedback import Feedback
from jdfa.model import Params

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


def stacked_mask(state):
    """A tree of bools shaped like ``state``: True for the leaves on the layer axis.

    Chosen by type, not by field name: the ``hidden`` layer of every `jdfa.model.Params` in the
    state (the params, and the optimizer's moments that mirror them) and every leaf of a
    `jdfa.feedback.Feedback`.
    """

    def fill(tree, value):
        return jax.tree.map(lambda _: value, tree)

    def mark(node):
        if isinstance(node, Feedback):
            return fill(node, True)
        if isinstance(node, Params):
            return Params(fill(node.input, False), fill(node.hidden, True), fill(node.output, False))
        return False

    return jax.tree.map(mark, state, is_leaf=lambda n: isinstance(n, (Params, Feedback)))


def state_sharding(mesh: Mesh, state):
    """NamedShardings for every leaf of a `jdfa.TrainState` (or its abstract shapes): stacked
    layers over ``layers`` where they divide evenly, everything else replicated."""
    n = mesh.shape["layers"]

    def spec(leaf, stacked):
        shape = np.shape(leaf)
        if n > 1 and stacked and len(shape) >= 2 and shape[0] % n == 0 and shape[0]:
            return NamedSharding(mesh, P("layers"))
        return NamedSharding(mesh, P())

    return jax.tree.map(spec, state, stacked_mask(state))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The batch axis of ``x`` and ``y`` split over ``data``."""
    return NamedSharding(mesh, P("data"))


def run_sharding(mesh: Mesh) -> NamedSharding:
    """The leading run axis of a sweep's stacked state (`jdfa.sweep`) split over ``data``: each
    device trains its share of the runs whole."""
    return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_state(mesh: Mesh, state):
    """Places ``state`` on the mesh as `state_sharding` says."""
    return jax.device_put(state, state_sharding(mesh, state))


def check_batch(mesh: Mesh, batch_size: int) -> None:
    if batch_size % mesh.shape["data"]:
        raise ValueError(f"batch size {batch_size} does not split over {mesh.shape['data']} data "
                         "devices; use a multiple of the data axis")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins this process to a multi-host run (`jax.distributed.initialize`). On Cloud TPU and
    SLURM every argument is detected; elsewhere pass all three."""
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
