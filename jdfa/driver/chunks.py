"""The data order of a run and the jitted chunk of training steps that draws its batches.

Epoch ``k`` visits the training set in the order ``permutation(fold_in(data_key, k))``, dropping
the last incomplete batch; step ``s`` takes batch ``s mod steps_per_epoch`` of epoch
``s div steps_per_epoch``. The order is a function of the seed and the step alone, so the same
seed gives the same numbers, also across a resume.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jdfa import parallel
from jdfa.net import Net
from jdfa.optimizers import Optimizer
from jdfa.rules import Rule
from jdfa.step import TrainState, init_train_state, train_step


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init, data, eval)`` keys of a run: params and feedback, the data order (`batch_indices`),
    and the fixed examples of the training-accuracy and alignment measurements."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def epoch_order(data_key, epoch, n_train: int) -> jax.Array:
    """The order (n_train,) in which epoch ``epoch`` visits the training examples."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n_train)


def order_at(data_key, step, n_train: int, batch_size: int) -> jax.Array:
    """The order (n_train,) of the epoch that step counter ``step`` falls in."""
    return epoch_order(data_key, step // (n_train // batch_size), n_train)


def batch_indices(data_key, step, n_train: int, batch_size: int) -> jax.Array:
    """The training examples (batch_size,) of the batch at counter ``step`` (the ``step + 1``-th
    step): a slice of epoch ``step // steps_per_epoch``'s order; the last partial batch is dropped."""
    order = order_at(data_key, step, n_train, batch_size)
    return lax.dynamic_slice_in_dim(order, (step % (n_train // batch_size)) * batch_size, batch_size)


@functools.cache
def _orders_fn(n_train: int, batch_size: int):
    """`order_at` of R runs at once, jitted: compiled once per process and data size, not per run."""
    return jax.jit(jax.vmap(lambda key, step: order_at(key, step, n_train, batch_size)))


class Epochs:
    """How R runs of one program go through ``n_train`` training examples in batches of
    ``batch_size``, for the loop between its chunks: how many steps a chunk may run, and the order
    of each run's epoch, drawn again only when that run's epoch changes (`order_at`'s, bit for
    bit). Drawn in every chunk, the permutation of MNIST's 60,000 examples cost 77 ms of a 0.5 s
    chunk on 2 cores. Kept here rather than carried by a `lax.cond` in the chunk: under a sweep's
    vmap a cond on each run's epoch becomes a select, drawing every run's permutation every time."""

    def __init__(self, n_train: int, batch_size: int):
        self.steps_per_epoch = n_train // batch_size
        self.draw = _orders_fn(n_train, batch_size)
        self.epochs = self.drawn = None

    def chunk_steps(self, step: int, stop: int, wanted: int) -> int:
        """How many steps the chunk starting at ``step`` may run: ``wanted``, but not past ``stop``
        nor past the end of the epoch (one epoch's order serves the chunk)."""
        return max(1, min(wanted, stop - step, self.steps_per_epoch - step % self.steps_per_epoch))

    def orders(self, data_keys, steps) -> jax.Array:
        """The orders (R, n_train) of the runs' epochs at their step counts ``steps`` (R,); their
        data keys ``data_keys`` (R,) are the program's, which do not change."""
        epochs = np.asarray(steps) // self.steps_per_epoch
        if self.epochs is None or not np.array_equal(epochs, self.epochs):
            self.drawn, self.epochs = self.draw(data_keys, steps), epochs
        return self.drawn


class ChunkMetrics(NamedTuple):
    """What a chunk of steps reports: its good steps, the interval's running sums, the last good
    step's update norms, and the first skipped step (`jdfa.train_step`'s guard), after which the
    state stays put. The chunk continues the sums it is given one step at a time, so they do not
    depend on where the driver split the interval into chunks (a resumed run sums like a whole one)."""

    steps: jax.Array  # () int32: good steps taken in this chunk
    loss_sum: jax.Array  # () batch-mean losses of the interval's good steps, summed
    accuracy_sum: jax.Array  # () batch accuracies, summed likewise
    update_norm: jax.Array  # () of the last good step
    layer_update_norms: jax.Array  # (depth + 1,) of the last good step
    layer_update_max: jax.Array  # (depth + 1,) the largest of the chunk's good steps (0: never updated)
    skipped_at: jax.Array  # () int32: the number (1-based) of the first skipped step; 0 for none
    bad_labels: jax.Array  # () bool: the skipped step's labels were out of range
    bad_inputs: jax.Array  # () bool: the skipped step's inputs were not finite
    bad_layer_norms: jax.Array  # (depth + 1,) the skipped step's update norms (inf/NaN: the culprit)

    @classmethod
    def start(cls, n_layers: int, loss_sum, accuracy_sum) -> ChunkMetrics:
        f, i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        false, norms = jnp.zeros((), bool), jnp.zeros((n_layers,), jnp.float32)
        return cls(i, jnp.float32(loss_sum), jnp.float32(accuracy_sum), f, norms, norms, i, false, false,
                   norms)


class Hyper(NamedTuple):
    """A run's array-valued settings: all that may differ between the runs of one vmapped program
    (`jdfa.sweep`). The seed enters as its keys; the feedback scale only at `init_runs`."""

    data_key: jax.Array  # the data order's key (`run_keys`)
    lr: jax.Array  # () float32: the (peak) learning rate, a rollback's scale included
    weight_decay: jax.Array  # () float32


def hyper(data_key, optimizer: Optimizer, lr_scale: float = 1.0) -> Hyper:
    """The `Hyper` of one run with ``optimizer`` and the data order of ``data_key``."""
    return Hyper(data_key, jnp.float32(optimizer.lr * lr_scale), jnp.float32(optimizer.weight_decay))


def chunk_body(net: Net, rule: Rule, optimizer: Optimizer, steps: int, batch_size: int,
               batch_mode: str, remat: bool, n_train: int, mesh=None):
    """The un-jitted ``(state, hyper, x, y, n_steps, loss_sum, accuracy_sum, order) -> (state,
    ChunkMetrics)`` of one run: up to ``n_steps`` (traced: one compilation serves every length)
    guarded training steps in one loop, continuing the interval's float32 sums, taking each batch
    from ``order`` (n_train,), the epoch's order (`Epochs.orders`), as `batch_indices` says. A
    chunk stays within one epoch: ``n_steps`` at most `Epochs.chunk_steps`. From the first skipped
    step on, the state stays the last good one. ``hyper`` (a `Hyper`) holds what a vmapped sweep
    varies per run; ``steps`` is the run's length (the cosine schedule's). With a ``mesh``, each
    batch is split over its ``data`` axis."""
    steps_per_epoch = n_train // batch_size

    def chunk(state, hyper, x, y, n_steps, loss_sum, accuracy_sum, order, acc=None):
        # One epoch's order serves the whole chunk (`Epochs.chunk_steps`), drawn once per epoch
        # outside it: a per-step lax.cond would turn into a select under a sweep's vmap, drawing a
        # permutation every step. `stepwise` also hands in the metrics its last step left.
        opt = optimizer.transform(steps, hyper.lr, hyper.weight_decay, net.weight_mask)

        def step(carry):
            state, acc = carry
            idx = lax.dynamic_slice_in_dim(order, (state.step % steps_per_epoch) * batch_size, batch_size)
            xb, yb = x[idx], y[idx]
            if mesh is not None:
                xb = lax.with_sharding_constraint(xb, parallel.batch_sharding(mesh))
                yb = lax.with_sharding_constraint(yb, parallel.batch_sharding(mesh))
            new, m = train_step(net, rule, opt, state, xb, yb, batch_mode, remat, guard=True)
            bad = m["skipped"]
            acc = ChunkMetrics(
                steps=acc.steps + ~bad, loss_sum=acc.loss_sum + jnp.where(bad, 0.0, m["loss"]),
                accuracy_sum=acc.accuracy_sum + jnp.where(bad, 0.0, m["accuracy"]),
                update_norm=jnp.where(bad, acc.update_norm, m["update_norm"]),
                layer_update_norms=jnp.where(bad, acc.layer_update_norms, m["layer_update_norms"]),
                layer_update_max=jnp.where(bad, acc.layer_update_max,
                                           jnp.maximum(acc.layer_update_max, m["layer_update_norms"])),
                skipped_at=jnp.where(bad, state.step + 1, 0), bad_labels=m["bad_labels"],
                bad_inputs=m["bad_inputs"], bad_layer_norms=m["layer_update_norms"])
            return new, acc

        # A skipped step leaves the state, its step count included, unchanged: every later step of
        # the chunk draws the same batch and is skipped the same way, so nothing needs to stop it.
        if acc is None:
            acc = ChunkMetrics.start(net.depth + 1, loss_sum, accuracy_sum)
        if n_steps is STEP:  # `stepwise`: one step, no loop around it
            state, acc = step((state, acc))
        else:
            state, acc = lax.fori_loop(0, n_steps, lambda _, c: step(c), (state, acc))
        return state, acc

    return chunk


STEP = object()  # `chunk_body`'s n_steps for exactly one step, outside any loop


def stepwise_on_cpu(net) -> bool:
    """Whether ``net``'s chunks run one jitted step per call from Python (`stepwise`): nets that
    say so (`jdfa.net.Net.steps_alone_on_cpu`: jdfa.blocks nets) on the CPU, where XLA runs a
    convolution's weight gradient inside a loop body (or in a program of several steps) 7-20x
    slower than in a program of one step (jax-ml/jax#12868; a ConvNet step: 161 ms in a loop, 19 ms
    alone)."""
    return net.steps_alone_on_cpu and jax.default_backend() == "cpu"


def stepwise(runs, n_layers: int):
    """A chunk with `chunk_body`'s signature over a run axis that runs ``runs`` (`chunk_body` over
    that axis) one jitted step per call, from Python, handing each step's metrics to the next, as
    the loop hands them on: the same steps, sums and norms as one call of the looped chunk."""
    def start(loss_sum, accuracy_sum):
        return ChunkMetrics.start(n_layers, loss_sum, accuracy_sum)

    start = jax.jit(jax.vmap(start))
    one = jax.jit(lambda state, hyper, x, y, acc, order: runs(
        state, hyper, x, y, STEP, None, None, order, acc))

    def run(state, hyper, x, y, n_steps, loss_sum, accuracy_sum, order):
        acc = start(loss_sum, accuracy_sum)
        for _ in range(int(n_steps)):
            state, acc = one(state, hyper, x, y, acc, order)
        return state, acc

    return run


def init_runs(init_keys, run_rules, net: Net, optimizer: Optimizer, steps: int) -> TrainState:
    """The stacked `TrainState` of R runs (every leaf with a leading run axis R): run ``r`` drawn
    with ``init_keys[r]`` and its own rule ``run_rules[r]`` (the runs' rules differ only in options
    read at init, such as the feedback scale: `jdfa.options.Option.at_init`), bit for bit as it is
    drawn alone (one run at a time: XLA:CPU compiles a vmapped draw for seconds)."""
    opt = optimizer.build(steps, weight_mask=net.weight_mask)  # its state depends on neither lr nor decay
    states = [init_train_state(key, net, rule, opt) for key, rule in zip(init_keys, run_rules)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


@jax.jit
def run_state(states, r):
    """Run ``r`` (a traced index: one compilation serves every run) of a stacked state."""
    return jax.tree.map(lambda a: a[r], states)


def make_chunk(net: Net, rule: Rule, optimizer: Optimizer, steps: int, batch_size: int,
               batch_mode: str, remat: bool, n_train: int, n_runs: int = 1, mesh=None):
    """`chunk_body` over a leading run axis of R = ``n_runs`` runs (of the state, the `Hyper` and
    the sums; the data and ``n_steps`` are shared), jitted: the one chunk factory of the loop, for
    a run alone (R = 1) and for a sweep's program. R = 1 runs the un-vmapped body on the one run
    (a batched guard is a select over the whole state, which a run alone does not pay for); R > 1
    vmaps it. With a ``mesh``, one run's batch is split over its ``data`` axis and its layers over
    ``layers`` (`jdfa.parallel.state_sharding`); R > 1 runs are split over ``data`` instead (R a
    multiple of its size), so runs spread over devices."""
    body = chunk_body(net, rule, optimizer, steps, batch_size, batch_mode, remat, n_train,
                      mesh if n_runs == 1 else None)
    runs = _on_the_one_run(body) if n_runs == 1 else _vmapped(body)
    if stepwise_on_cpu(net):
        return stepwise(runs, net.depth + 1)
    if mesh is None:
        return jax.jit(runs)
    rep = parallel.replicated(mesh)
    if n_runs == 1:
        abstract = jax.eval_shape(lambda: init_train_state(
            jax.random.key(0), net, rule, optimizer.build(steps, weight_mask=net.weight_mask)))
        states = parallel.with_run_axis(parallel.state_sharding(mesh, abstract, net))
        return jax.jit(runs, in_shardings=(states, rep, rep, rep, rep, rep, rep, rep),
                       out_shardings=(states, rep))
    split = parallel.run_sharding(mesh)
    return jax.jit(runs, in_shardings=(split, split, rep, rep, rep, split, split, split),
                   out_shardings=(split, split))


def _vmapped(body):
    """``body`` vmapped over a leading run axis of the state, the `Hyper`, the sums, the orders
    and the metrics handed on (`stepwise`)."""
    over_runs = jax.vmap(body, in_axes=(0, 0, None, None, None, 0, 0, 0, 0))

    def runs(state, hyper, x, y, n_steps, loss_sums, accuracy_sums, order, acc=None):
        return over_runs(state, hyper, x, y, n_steps, loss_sums, accuracy_sums, order, acc)

    return runs


def _on_the_one_run(body):
    """``body`` of one run, taking and giving its arguments with a run axis of size 1."""
    def first(tree):
        return jax.tree.map(lambda a: a[0], tree)

    def one(state, hyper, x, y, n_steps, loss_sums, accuracy_sums, order, acc=None):
        out = body(first(state), first(hyper), x, y, n_steps, first(loss_sums), first(accuracy_sums),
                   first(order), first(acc))
        return jax.tree.map(lambda a: a[None], out)

    return one
