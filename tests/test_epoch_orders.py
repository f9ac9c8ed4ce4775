"""The loop draws each epoch's order once (`jdfa.driver.chunks.Epochs`) instead of in every chunk:
the same orders, batches and numbers as chunks given `order_at`'s order afresh each time, across
epoch boundaries, for a run alone and for a sweep's runs (whose step counts may differ: a skipped
run stays put)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdfa
from jdfa.driver.chunks import Epochs, hyper, init_runs, make_chunk, order_at, run_keys

N_TRAIN, BATCH = 96, 16  # 6 steps an epoch


def test_the_orders_are_order_at_and_drawn_again_only_at_a_new_epoch():
    keys = jnp.stack([run_keys(seed)[1] for seed in (0, 1, 2)])
    epochs = Epochs(N_TRAIN, BATCH)
    last = None
    # the runs' epochs: (0,0,0), the same, (1,1,0), the same, (2,1,0)
    for steps, new in (([0, 0, 0], True), ([5, 5, 0], False), ([6, 6, 0], True), ([11, 6, 0], False),
                       ([12, 7, 3], True)):
        steps = jnp.asarray(steps, jnp.int32)
        got = epochs.orders(keys, steps)
        for r in range(3):
            np.testing.assert_array_equal(got[r], order_at(keys[r], steps[r], N_TRAIN, BATCH))
        assert (got is not last) == new
        last = got
    alone = Epochs(N_TRAIN, BATCH)
    for step in (0, 5, 6, 13):
        np.testing.assert_array_equal(alone.orders(keys[:1], jnp.asarray([step], jnp.int32))[0],
                                      order_at(keys[0], jnp.int32(step), N_TRAIN, BATCH))


def test_chunk_steps_stay_within_the_epoch_and_the_stop():
    epochs = Epochs(N_TRAIN, BATCH)
    assert [epochs.chunk_steps(step, 20, 4) for step in (0, 4, 5, 6, 18)] == [4, 2, 1, 4, 2]


@pytest.mark.parametrize("runs", [1, 3], ids=["one_run", "sweep"])
def test_chunks_given_the_epochs_orders_equal_chunks_given_orders_drawn_afresh(runs):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N_TRAIN, 8)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, N_TRAIN), jnp.int32)
    net, rule, opt = jdfa.MLP(8, 16, 3, 3), jdfa.rules.dfa(), jdfa.Optimizer("adam", 1e-2)
    keys = [run_keys(seed) for seed in range(runs)]
    chunk = make_chunk(net, rule, opt, 40, BATCH, "mean", False, N_TRAIN, n_runs=runs)
    start = init_runs([k[0] for k in keys], [rule] * runs, net, opt, 40)
    hypers = jax.tree.map(lambda *a: jnp.stack(a), *(hyper(k[1], opt) for k in keys))
    epochs, sums = Epochs(N_TRAIN, BATCH), (jnp.zeros(runs), jnp.zeros(runs))
    drawn = given = start
    step = 0
    for wanted in (4, 4, 5, 6, 3, 6):  # chunks ending at, and starting after, epoch boundaries
        n = epochs.chunk_steps(step, 40, wanted)
        fresh = jax.vmap(lambda k, s: order_at(k, s, N_TRAIN, BATCH))(hypers.data_key, drawn.step)
        drawn, want = chunk(drawn, hypers, x, y, jnp.int32(n), *sums, fresh)
        order = epochs.orders(hypers.data_key, given.step)
        given, got = chunk(given, hypers, x, y, jnp.int32(n), *sums, order)
        chex.assert_trees_all_equal((given, got), (drawn, want))  # bit for bit
        step += n
    assert step > 2 * N_TRAIN // BATCH and int(given.step[0]) == step
