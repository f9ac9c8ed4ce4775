"""Wall time of one MNIST epoch (60,000 examples) through the training driver's engine.

    JDFA_DATA_DIR=../shared/data python benchmarks/epoch_time.py --out benchmarks/results/cpu/epoch_time.jsonl

This is `jdfa.driver.chunks.make_chunk`, the jitted loop of guarded steps that ``jdfa train`` runs
(in chunks of about half a second), with the data on the device and every batch drawn there: here
one epoch is one call. The compile is done and timed first, then the epoch is timed
(``--repeats`` times, the median kept). One JSON object per rule. Default: depth 100, width 200,
batch 64, Adam (lr 1e-3, the driver's default `jdfa.Optimizer`); BP vs DFA vs BDFA. (About 4
minutes on a 2-core CPU.) ``--steps`` times fewer steps than an epoch (a quick check).
"""

from __future__ import annotations

import argparse
import statistics
import time

import common  # this folder is on sys.path when the script runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="bp,dfa,bdfa25",
                   help="comma-separated jdfa.rules.parse specs (bp, fa, dfa, fpK, bdfaK, bdfaK-bp, ...)")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=None,
                   help="steps to time (default: one epoch, 60000 // batch)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    common.add_malloc_flag(p, default="tuned")
    p.add_argument("--out", help="also write the JSON lines to this file")
    args = p.parse_args(argv)
    common.apply_malloc(args.malloc)

    import jax
    import jax.numpy as jnp

    import jdfa
    from jdfa.driver.chunks import Epochs, hyper, init_runs, make_chunk, run_keys

    rules = [jdfa.rules.parse(spec) for spec in common.str_list(args.rules)]  # bad specs fail first
    x_np, y_np = jdfa.data.load("mnist", "train", args.data_dir)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    steps = args.steps or len(x_np) // args.batch
    out = common.Emitter(args.out)
    for rule in rules:
        cfg = jdfa.Config(net=jdfa.MLP(x.shape[1], args.width, args.depth, 10), rule=rule,
                          batch_size=args.batch, steps=steps)
        k_init, k_data, _ = run_keys(cfg.seed)
        state = init_runs([k_init], [rule], cfg.net, cfg.optimizer, cfg.steps)  # a run axis of 1
        zeros = (jnp.zeros(1), jnp.zeros(1))  # the interval's running loss and accuracy sums
        call = (jax.tree.map(lambda a: a[None], hyper(k_data, cfg.optimizer)), x, y, jnp.int32(steps), *zeros)
        epochs = Epochs(len(x_np), cfg.batch_size)  # the loop's epoch orders, drawn outside the chunk
        order = epochs.orders(call[0].data_key, state.step)
        t0 = time.perf_counter()
        chunk = make_chunk(cfg.net, rule, cfg.optimizer, cfg.steps, cfg.batch_size, cfg.batch_mode,
                           cfg.remat, len(x_np)).lower(state, *call, order).compile()
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            order = epochs.orders(call[0].data_key, state.step)  # each repeat is the next epoch
            t0 = time.perf_counter()
            state, metrics = chunk(state, *call, order)
            jax.block_until_ready(state)
            times.append(time.perf_counter() - t0)
        epoch_s = statistics.median(times)
        row = {"rule": str(rule), "depth": cfg.net.depth, "width": cfg.net.width, "batch": cfg.batch_size,
               "steps": steps, "examples": steps * cfg.batch_size, "optimizer": cfg.optimizer.name,
               "device_kind": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
               "jax": jax.__version__, "compile_s": round(compile_s, 3),
               "epoch_s": round(epoch_s, 3), "step_ms": round(1e3 * epoch_s / steps, 3),
               "examples_per_s": round(steps * cfg.batch_size / epoch_s, 1),
               "mean_batch_loss": float(metrics.loss_sum[0] / metrics.steps[0]),
               "malloc": common.malloc_setting(),
               **common.jdfa_revision()}
        out.emit(row)
    out.close()


if __name__ == "__main__":
    main()
