r"""Checks the times the docs promise for the quick commands against this machine.

    JDFA_DATA_DIR=../shared/data python benchmarks/doc_times.py --out benchmarks/results/cpu/doc_times.jsonl

Each entry below names a document, the exact words in it that promise a time, the command those
words are about and the promised seconds. The script first checks that every promise is still
written as listed (a doc that changed its words fails here: update the entry), then runs each
command from the repository root, one at a time (the experiments with ``--fresh``, so that no
earlier quick run is reused), and times it end to end (interpreter start, JAX
import and compiles included, as a user meets it). A promise holds when the measured time lies
within [0.5, 1.5] x the promised one. One JSON object per command, then a ``"kind": "summary"``
line; the exit status is 1 when a promise does not hold. About 5 minutes on 2 cores; run it on a
quiet machine (nothing else training), since the promises are for one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import common  # this folder is on sys.path when the script runs

ROOT = Path(__file__).resolve().parents[1]
PROMISES = [  # (document, the words that promise the time, command, seconds promised)
    ("benchmarks/README.md",
     "python benchmarks/step_time.py --quick                       # ~20 s on 2 cores",
     "python benchmarks/step_time.py --quick", 20),
    ("benchmarks/README.md", "python benchmarks/update_vs_depth.py --quick          # ~10 s on 2 cores",
     "python benchmarks/update_vs_depth.py --quick", 10),
    ("benchmarks/README.md", "python benchmarks/sweep_throughput.py --quick             # ~15 s",
     "python benchmarks/sweep_throughput.py --quick", 15),
    ("experiments/xor.py", "--quick (250 epochs, 2 seeds) about 7 s.",
     "python experiments/xor.py --quick --fresh", 7),
    ("experiments/mnist_dfa_vs_bp.py", "--quick (4 epochs, 2 seeds) about 30 s.",
     "python experiments/mnist_dfa_vs_bp.py --quick --fresh", 30),
    ("experiments/angles.py", "--quick (3 epochs, 2 seeds) about 35 s.",
     "python experiments/angles.py --quick --fresh", 35),
    ("experiments/README.md", "takes about 1.5 min.",
     "python experiments/batch_averaging.py --quick --fresh", 90),
]
BAND = (0.5, 1.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None, help="run only the commands containing this text")
    p.add_argument("--out", default=None, help="also write the JSON lines here")
    args = p.parse_args(argv)
    missing = [(doc, words) for doc, words, _, _ in PROMISES if words not in (ROOT / doc).read_text()]
    if missing:
        for doc, words in missing:
            common.log(f"{doc} no longer says {words!r}: update benchmarks/doc_times.py")
        return 2
    out, env, results = common.Emitter(args.out), common.environment(), []
    for doc, _, command, promised in PROMISES:
        if args.only and args.only not in command:
            continue
        t0 = time.perf_counter()
        argv = [sys.executable if word == "python" else word for word in command.split()]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        seconds = time.perf_counter() - t0
        ratio = seconds / promised
        rec = {"kind": "command", "command": command, "document": doc, "promised_s": promised,
               "measured_s": round(seconds, 1), "ratio": round(ratio, 2), "returncode": done.returncode,
               "holds": done.returncode == 0 and BAND[0] <= ratio <= BAND[1], **env}
        if done.returncode:
            rec["stderr_tail"] = done.stderr[-2000:]
        out.emit(rec)
        results.append(rec)
        common.log(f"  {command:<48} promised {promised:>4} s  measured {seconds:6.1f} s  "
                   f"{'ok' if rec['holds'] else 'DOES NOT HOLD'}")
    summary = {"kind": "summary", "band": BAND, "held": sum(r["holds"] for r in results),
               "of": len(results), "not_held": [r["command"] for r in results if not r["holds"]]}
    out.emit(summary)
    return 0 if not summary["not_held"] else 1


if __name__ == "__main__":
    sys.exit(main())
