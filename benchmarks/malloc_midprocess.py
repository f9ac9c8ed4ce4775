r"""Does `jdfa.tune_allocator`, called in a running process, give the speed of glibc's ``MALLOC_*_``
variables set before it starts? One process, two phases of the same compiled steps.

``--tune-at middle``: phase 1 under glibc's defaults, then `jdfa.tune_allocator`, then phase 2 --
the effect of the call, measured in one process. ``--tune-at start``: both phases tuned (the
control: how much phase 2 gains from coming second). ``--tune-at env``: both phases under the
``MALLOC_*_`` variables of the same thresholds (re-executes). Each phase times every rule in
interleaved rounds; one record per (phase, rule).

Example::

    for t in middle start env; do python benchmarks/malloc_midprocess.py --tune-at $t \
        --out benchmarks/results/cpu/malloc_midprocess.jsonl --append; done
"""

from __future__ import annotations

import argparse
import sys

import common  # this folder is on sys.path when the script runs

START = {"middle": "tuned", "start": "tuned", "env": "env"}  # the environment each starts with


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tune-at", choices=tuple(START), required=True)
    p.add_argument("--rules", default="forward,dfa,bp")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="timed steps per rule and phase")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("--append", action="store_true")
    args = p.parse_args(argv)
    common.restart_for(START[args.tune_at])
    import jax
    import step_time

    import jdfa

    if args.tune_at == "start":
        jdfa.tune_allocator()
    net = jdfa.MLP(784, args.width, args.depth, 10)
    key = jax.random.key(0)
    x = jax.random.normal(key, (args.batch, 784))
    y = jax.random.randint(key, (args.batch,), 0, 10)
    optimizer = jdfa.Optimizer("sgd", 1e-3).build(1)
    benches = [step_time.Bench(*step_time.parse_rule(s), net, args.batch, optimizer, key, x, y)
               for s in common.str_list(args.rules)]
    emitter = common.Emitter(args.out, append=args.append)
    for phase in (1, 2):
        if phase == 2 and args.tune_at == "middle":
            jdfa.tune_allocator()
        for b in benches:
            b.times = []
        load = common.time_interleaved(benches, lambda b: b.step(), args.warmup, args.steps, args.rounds)
        # Read after the phase: `common.environment` tunes the allocator as apply_malloc does.
        env = common.environment()
        malloc = "default" if args.tune_at == "middle" and phase == 1 else env["malloc"]
        for b in benches:
            rec = {"kind": "malloc_phase", "tune_at": args.tune_at, "phase": phase, "rule": b.spec,
                   "depth": args.depth, "width": args.width, "batch": args.batch,
                   **env, "malloc": malloc,
                   **common.timing_fields(b.times, args.batch), "other_load_cores": load}
            emitter.emit(rec)
            common.log(f"  tune at {args.tune_at}, phase {phase} ({malloc}): {b.spec:<8} "
                       f"{rec['step_ms_median']:7.2f} ms  (other load {load:.2f})")
    emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
