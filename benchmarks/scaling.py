r"""Step time and per-device memory of sharded training over 1, 2, 4 and 8 devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/scaling.py \
        --out benchmarks/results/cpu/scaling.jsonl

For each device count n and each layout -- data parallel (n x 1 mesh: the batch split), layer
parallel (1 x n: the stacked hidden layers, their feedback and optimizer state split) -- it
compiles the jitted train step with `jdfa.make_train_step(..., mesh=...)`, times it, and reads the
per-device memory from the compiled executable. One JSON object per configuration on stdout.

On simulated CPU devices every "device" shares the same few cores, so wall time cannot fall with n:
what this measures on a laptop is the partitioning's overhead and how the memory per device falls.
On real accelerators (GPUs, TPU cores) the same script measures the speed-up.
(About 3 minutes on a 2-core CPU with the defaults.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import jdfa
from jdfa import parallel

import common  # this folder is on sys.path when the script runs


def bytes_on_device0(tree) -> int:
    """Bytes of ``tree``'s shards that live on the first device."""
    dev = jax.devices()[0]
    return int(sum(s.data.nbytes for leaf in jax.tree.leaves(tree)
                   for s in leaf.addressable_shards if s.device == dev))


def measure(rule, net, batch, data, layers, steps):
    mesh = parallel.make_mesh(data, layers)
    opt = jdfa.Optimizer("sgd", 1e-3).build(1)
    state = parallel.shard_state(mesh, jdfa.init_train_state(jax.random.key(0), net, rule, opt), net)
    x = jax.device_put(jax.random.normal(jax.random.key(1), (batch, net.in_features)),
                       parallel.batch_sharding(mesh))
    y = jax.device_put(jnp.arange(batch) % net.out_features, parallel.batch_sharding(mesh))
    step = jdfa.make_train_step(net, rule, opt, mesh=mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, x, y).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    state_bytes = bytes_on_device0(state)
    for _ in range(3):
        state, _ = compiled(state, x, y)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, _ = compiled(state, x, y)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    return {
        "rule": str(rule), "depth": net.depth, "width": net.width, "batch": batch,
        "devices": data * layers, "mesh_data": data, "mesh_layers": layers,
        "layout": "data" if layers == 1 and data > 1 else "layers" if data == 1 and layers > 1
        else "single" if data * layers == 1 else "mixed",
        "device_kind": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
        "jax": jax.__version__, "compile_s": round(compile_s, 3),
        "step_ms_median": round(1e3 * statistics.median(times), 3),
        "step_ms_min": round(1e3 * min(times), 3), "step_ms_max": round(1e3 * max(times), 3),
        "state_bytes_per_device": state_bytes,
        "temp_bytes_per_device": getattr(mem, "temp_size_in_bytes", None) if mem else None,
    }


def plot(rows: list[dict], path: str) -> None:
    """Step time and per-device state and temp memory against the device count, one line per
    (rule, layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    series = sorted({(r["rule"], r["layout"]) for r in rows if r["layout"] != "single"})
    for rule, layout in series:
        pts = sorted((r for r in rows if r["rule"] == rule and r["layout"] in (layout, "single")),
                     key=lambda r: r["devices"])
        n = [r["devices"] for r in pts]
        style = "-" if layout == "layers" else "--"
        for ax, key, scale in ((axes[0], "step_ms_median", 1), (axes[1], "state_bytes_per_device", 2**-20),
                               (axes[2], "temp_bytes_per_device", 2**-20)):
            ax.plot(n, [r[key] * scale for r in pts], style, marker="o", label=f"{rule}, {layout}")
    for ax, label in zip(axes, ("step time, median (ms)", "state per device (MiB)",
                                "XLA temp memory per device (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("devices")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    r = rows[0]
    kind = "simulated" if r["platform"] == "cpu" else "real"
    fig.suptitle(f"sharded train step, depth {r['depth']}, width {r['width']}, batch {r['batch']} on "
                 f"{r['platform']} ({kind} devices)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", default="dfa,bp",
                   help="comma-separated jdfa.rules.parse specs (dfa, bp, bdfa25, fp1, ...)")
    p.add_argument("--depth", type=int, default=65, help="65: 64 hidden-to-hidden layers, divisible by 8")
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--devices", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=10)
    common.add_malloc_flag(p, default="tuned")
    p.add_argument("--out", help="also write the JSON lines to this file")
    p.add_argument("--png", help="plot the results to this file")
    p.add_argument("--from-jsonl", help="plot these earlier results instead of measuring")
    args = p.parse_args(argv)
    if args.from_jsonl:
        with open(args.from_jsonl) as f:
            plot([json.loads(line) for line in f], args.png)
        return
    common.apply_malloc(args.malloc)
    counts = [int(n) for n in args.devices.split(",")]
    if max(counts) > jax.device_count():
        sys.exit(f"needs {max(counts)} devices, {jax.device_count()} visible: set "
                 "XLA_FLAGS=--xla_force_host_platform_device_count=8 before starting")
    rules = [jdfa.rules.parse(spec) for spec in common.str_list(args.rules)]
    net = jdfa.MLP(784, args.width, args.depth, 10)
    out, rows = common.Emitter(args.out), []
    for rule in rules:
        for n in counts:
            for data, layers in sorted({(n, 1), (1, n)}):
                row = measure(rule, net, args.batch, data, layers, args.steps)
                rows.append({**row, "malloc": common.malloc_setting(), **common.jdfa_revision()})
                out.emit(rows[-1])
    out.close()
    if args.png:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
