r"""Runs per hour of the paper-budget runner with one run at a time or two side by side.

    python benchmarks/runs_at_once.py --out benchmarks/results/cpu/runs_at_once.jsonl   # ~5 min

For each setting (``--settings``, ``part/setting`` of `experiments/paper_budget.py`, default its
two costliest kinds still to run: Table 2's DFA at 100 x 300 and Figure 7's FP on 15 x 720) it
trains the setting as the runner does (`jdfa.train` through `jdfa.driver.from_flags`, MNIST,
evaluation off) for ``--steps`` steps: first one process alone, then two processes at once (seeds
0 and 1). Each child reports its run-steps/s over its whole run (compilation and data loading
included, as a runner pays them); ``gain`` is the two processes' summed run-steps/s over the lone
one's. One line per setting and schedule, and a ``conclusion`` line. The paper runner must be
paused meanwhile (``pkill -STOP -f experiments/paper_budget.py``; ``-CONT`` after).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import common  # this folder is on sys.path when the script runs

EXPERIMENTS = Path(common.REPO_ROOT) / "experiments"
DEFAULT_SETTINGS = "table2/w300_dfa_shared,fig7/fp15_fp4"


def _runner_flags() -> dict[str, dict]:
    """``{"part/setting": flags}`` of `experiments/paper_budget.py` (paper and tiny budgets)."""
    # paper_budget imports experiments/common.py by the name this folder's common.py holds; this
    # module keeps its own `common` bound, so the name can go to the experiments' one
    sys.modules.pop("common", None)
    sys.path.insert(0, str(EXPERIMENTS))
    import paper_budget

    return {f"{part}/{name}": flags for budget in ("paper", "tiny")
            for part, settings in paper_budget.parts(budget).items() for name, flags in settings.items()}


def _child(setting: str, steps: int, seed: int, out: str) -> None:
    """Trains one run of ``setting`` and prints its summary's timing as one JSON line."""
    flags = dict(_runner_flags()[setting], steps=steps, seed=seed, eval_every=10 * steps)
    import jdfa

    import common as experiments_common

    config, data = jdfa.driver.from_flags(
        {**experiments_common.for_rule(flags), "out": out, "progress": False, "checkpoint": False,
         "overwrite": True, "dataset": "mnist"})
    summary = jdfa.train(config, data=data)
    print(json.dumps({"steps_per_s": summary["steps_per_s"], "wall_s": summary["wall_s"]}), flush=True)


def _together(setting: str, steps: int, n: int, scratch: str) -> list[dict]:
    """Starts ``n`` children at once; their summaries."""
    procs = [subprocess.Popen([sys.executable, __file__, "--child", setting, str(steps), str(seed),
                               f"{scratch}/{setting.replace('/', '_')}_{n}_{seed}"],
                              stdout=subprocess.PIPE, text=True) for seed in range(n)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a child run of {setting} failed (exit codes {[p.returncode for p in procs]})")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help="part/setting of paper_budget, comma-separated")
    p.add_argument("--steps", type=int, default=1000, help="steps of each run")
    p.add_argument("--out", type=Path, default=None, help="append the JSON lines here too")
    p.add_argument("--child", nargs=4, metavar=("SETTING", "STEPS", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        setting, steps, seed, out = args.child
        _child(setting, int(steps), int(seed), out)
        return 0
    known = _runner_flags()
    unknown = [s for s in args.settings.split(",") if s not in known]
    if unknown:
        p.error(f"unknown setting(s) {unknown}; the runner's are {sorted(known)}")
    env = {"cpu_model": common.cpu_model(), "cpu_count": common.cpu_count(), **common.jdfa_revision()}
    lines, gains = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for setting in args.settings.split(","):
            alone = _together(setting, args.steps, 1, scratch)
            pair = _together(setting, args.steps, 2, scratch)
            rate1 = alone[0]["steps_per_s"]
            rate2 = sum(r["steps_per_s"] for r in pair)
            gains[setting] = rate2 / rate1
            lines += [{"kind": "runs_at_once", "setting": setting, "at_once": 1, "steps": args.steps,
                       "run_steps_per_s": rate1, "children": alone, **env},
                      {"kind": "runs_at_once", "setting": setting, "at_once": 2, "steps": args.steps,
                       "run_steps_per_s": rate2, "children": pair, "gain": gains[setting], **env}]
    text = "; ".join(f"{s}: two at once give {g:.2f}x the run-steps/s of one" for s, g in gains.items())
    lines.append({"kind": "conclusion", "gain": gains, "text": text})
    for line in lines:
        print(json.dumps(line), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
