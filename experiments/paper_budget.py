"""The Blocked-DFA paper's tables at the paper's own budget (10,000 steps), over seeds, on the CPU:
one runner that survives any stop.

Parts, in this order (each lands when it is done):

1. ``table1``: width 200, depth 100: DFA, BDFA 50 and 25 in the paper's reading, BDFA 25 with the
   backprop boundary, under the shared recipe of the CPU screen (`bdfa_study.py --budget cpu`:
   orthogonal init, Adam 3e-4); DFA and BDFA 25 also under the paper-free recipe of section 1
   (uniform init, Adam 1e-3) as the contrast.
2. ``switching``: `mix(0.5, per="layer")` and `fp(1, source="error")` at depth 100 x 200, shared
   recipe (DFA and BDFA-25-bp come from part 1); equal steps and equal wall time compared by the
   report.
3. ``fig7``: FP on 15 x 720, ``bp_depth`` 0..5 and the error-reading 1, 3, 5 (uniform init, Adam
   1e-4, as section 10.2).
4. ``table2``: as part 1 at width 300.
5. ``bp``: backprop at 100 x 200 under both recipes, the curve the paper's Figure 8 shows failing
   ("makes back-propagation impossible to converge"; not in its tables). Last, as an addition.

Runs train one at a time: two side by side give 0.95-0.97x the runs per hour on the 2-core CPU
(`benchmarks/runs_at_once.py`).

Seeds run round-robin within a part (every setting's seed 0, then every seed 1, ...) so that a
part stopped half-way still compares every setting.

How it survives stops (`runner`): each run trains with checkpoints and resumes from them; a
finished run leaves a record ``<results>/records/<tag>.json`` (with ``--commit``, committed as it
is written) and is never trained again.

Run it from a fixed commit, so that code changed meanwhile never mixes into a result::

    git clone -q ~/jdfa /tmp/paper_code && cd /tmp/paper_code   # ~/jdfa: your checkout, at a landed commit
    nice -n 10 python experiments/paper_budget.py --commit --results ~/jdfa/experiments/results/paper_budget

(``--budget paper`` is the default; started again, it resumes where it stopped; ``--status``
prints the runs done per part and an estimate of the time left.)

``--budget tiny`` is the smoke version the tests kill and restart (two small runs, scratch folder).
"""

from __future__ import annotations

import sys

import common
import runner

SHARED = dict(weight_init="orthogonal", lr=3e-4)  # the CPU screen's best shared recipe
CONTRAST = dict(weight_init="uniform", lr=1e-3)   # section 1's paper-free recipe
DEEP = dict(depth=100, activation="tanh", loss="softmax_cross_entropy", optimizer="adam", batch_size=64,
            feedback_init="uniform", eval_every=500, train_eval_size=2000)
FP15 = dict(depth=15, width=720, activation="tanh", loss="softmax_cross_entropy", weight_init="uniform",
            optimizer="adam", lr=1e-4, batch_size=64, feedback_init="uniform", eval_every=500,
            train_eval_size=2000)


def _table(width: int) -> dict:
    shared = {r: dict(DEEP, width=width, rule=r, **SHARED) for r in ("dfa", "bdfa50", "bdfa25", "bdfa25-bp")}
    contrast = {r: dict(DEEP, width=width, rule=r, **CONTRAST) for r in ("dfa", "bdfa25")}
    return {**{f"w{width}_{r}_shared": c for r, c in shared.items()},
            **{f"w{width}_{r}_contrast": c for r, c in contrast.items()}}


def parts(budget: str) -> dict[str, dict[str, dict]]:
    """``{part: {setting: flat flags}}`` of a budget (steps and seeds are `BUDGETS`')."""
    if budget == "tiny":
        tiny = dict(depth=3, width=32, activation="tanh", optimizer="adam", lr=1e-3, batch_size=32,
                    eval_every=20, train_eval_size=500)
        return {"tiny": {"dfa": dict(tiny, rule="dfa"), "bdfa2": dict(tiny, rule="bdfa2")}}
    switching = {"w200_mix0.5-layer_shared": dict(DEEP, width=200, rule="mix", p_bp=0.5, per="layer",
                                                  **SHARED),
                 "w200_fp1-error_shared": dict(DEEP, width=200, rule="fp1-error", **SHARED)}
    fig7 = {f"fp15_{r}": dict(FP15, rule=r)
            for r in ("fp0", "fp1", "fp2", "fp3", "fp4", "fp5", "fp1-error", "fp3-error", "fp5-error")}
    bp = {f"w200_bp_{name}": dict(DEEP, width=200, rule="bp", **recipe)
          for name, recipe in (("shared", SHARED), ("contrast", CONTRAST))}
    return {"table1": _table(200), "switching": switching, "fig7": fig7, "table2": _table(300), "bp": bp}


BUDGETS = {"paper": dict(steps=10000, seeds=5, checkpoint_every=1000),
           "tiny": dict(steps=200, seeds=1, checkpoint_every=10)}


def plan(budget: str) -> list[tuple[str, str, dict]]:
    """``[(part, tag, flags)]`` in training order: part by part, seeds round-robin."""
    b = BUDGETS[budget]
    return [(part, f"{part}_{setting}_s{seed}", dict(flags, steps=b["steps"], seed=seed))
            for part, settings in parts(budget).items()
            for seed in range(b["seeds"]) for setting, flags in settings.items()]


def main(argv=None) -> int:
    args = runner.parse_args(__doc__, "paper_budget", BUDGETS, argv)
    todo = plan(args.budget)
    if args.status:
        return runner.status("paper_budget", todo, args.results, args.work)
    args.name, args.dataset = "paper_budget", "mnist"
    return runner.run("paper_budget", todo, results=args.results, work=args.work,
                      data=common.load_data(args), checkpoint_every=BUDGETS[args.budget]["checkpoint_every"],
                      commit=args.commit)


if __name__ == "__main__":
    sys.exit(main())
