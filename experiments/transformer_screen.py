r"""Experiment 12's screen: the recipe of each rule on the transformer language model, at a short
budget, before the 5-seed comparison (issue 31).

The model and data of `transformer_lm.py`'s CPU budget (`jdfa.blocks.TransformerLM`, 4 blocks x
128, 4 heads, context 64; State of the Union bytes, batch 32), trained for 400 steps (the probe
that found DFA below the shallow control) with Adam and cosine decay. Parts, each a question:

1. ``lr``: each rule at its own learning rate (BP, DFA and the shallow control).
2. ``clip``: global-norm clipping of the update direction (0.5, LightOn's, and 1.0), with and
   without a linear warmup, for DFA and BP.
3. ``feedback``: DFA's feedback scale (``B`` uniform in ``±scale/sqrt(vocab)``: 0.1 to 3) and one
   ``B`` shared by every block (Launay et al. 2020) against one per block.

Seed 0 of every setting trains first, then seed 1, so a screen stopped half-way still compares
every setting. The measure is the validation loss (nats/byte) at the last evaluation and the
recovery ``R = (L_shallow - L_DFA) / (L_shallow - L_BP)`` against the best shallow and BP of part
1. What this screen cannot ask yet (post-LN blocks, feedback points inside a block, the top
delta as the signal) waits for the stacked chain of issue 30.

Runs survive stops (`runner`); run it from a fixed commit::

    git clone -q ~/jdfa /tmp/screen_code && cd /tmp/screen_code
    PYTHONPATH=$PWD nice -n 10 python experiments/transformer_screen.py --commit \
        --results ~/jdfa/experiments/results/transformer_screen
    python experiments/transformer_screen.py --report     # table.md from the committed records

``--budget tiny`` is a smoke version (two settings, 20 steps, scratch folder).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jdfa

import common
import runner
import seeds

MODEL = dict(model="transformer", depth=4, width=128, heads=4, context=64, batch_size=32,
             optimizer="adam", schedule="cosine", train_eval_size=512, dataset="sotu")
BUDGETS = {"screen": dict(steps=400, seeds=2, eval_every=100, checkpoint_every=100),
           "tiny": dict(steps=20, seeds=1, eval_every=10, checkpoint_every=10)}
LRS = {"bp": (3e-4, 1e-3, 3e-3), "dfa": (1e-4, 3e-4, 1e-3, 3e-3), "shallow": (1e-3, 3e-3, 1e-2)}


def parts(budget: str) -> dict[str, dict[str, dict]]:
    """``{part: {setting: flat flags}}`` (steps and seeds are `BUDGETS`')."""
    if budget == "tiny":
        tiny = dict(MODEL, depth=1, width=32, heads=2, context=16, batch_size=8, train_eval_size=64)
        return {"tiny": {"dfa": dict(tiny, rule="dfa"), "dfa_clip0.5": dict(tiny, rule="dfa", clip_norm=0.5)}}
    lr = {f"{rule}_lr{v:g}": dict(MODEL, rule=rule, lr=v) for rule, values in LRS.items() for v in values}
    clip = {f"{rule}_lr{v:g}_clip{c:g}{'_warm' if w else ''}":
            dict(MODEL, rule=rule, lr=v, clip_norm=c, warmup_steps=w)
            for rule, v in (("dfa", 1e-3), ("dfa", 3e-3), ("bp", 3e-3))
            for c in (0.5, 1.0) for w in (0, 40)}
    feedback = {f"dfa_lr0.001_scale{s:g}{'_shared' if shared else ''}":
                dict(MODEL, rule="dfa", lr=1e-3, feedback_scale=s, shared_feedback=shared)
                for s in (0.1, 0.3, 1.0, 3.0) for shared in (False, True) if (s, shared) != (1.0, False)}
    return {"lr": lr, "clip": clip, "feedback": feedback}


def plan(budget: str) -> list[tuple[str, str, dict]]:
    """``[(part, tag, flags)]``: every setting's seed 0, part by part, then every seed 1."""
    b = BUDGETS[budget]
    return [(part, f"{setting}_s{seed}", dict(flags, steps=b["steps"], seed=seed, eval_every=b["eval_every"]))
            for seed in range(b["seeds"]) for part, settings in parts(budget).items()
            for setting, flags in settings.items()]


def report(results: Path) -> str:
    """``table.md`` of the records in ``results``: each setting's validation loss over its seeds and
    its R against the best shallow and BP settings of part ``lr``."""
    records = [json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))]
    if not records:
        raise SystemExit(f"no records in {results / 'records'}: run the screen first (see --help)")
    losses: dict[tuple[str, str], list[float]] = {}
    for r in records:
        setting = r["tag"].rsplit("_s", 1)[0]
        losses.setdefault((r["part"], setting), []).append(r["summary"].get("test_loss", float("nan")))
    stats = {k: seeds.stats(v) for k, v in losses.items()}

    def best(rule: str) -> float:
        found = [s.mean for (part, setting), s in stats.items()
                 if part == "lr" and setting.startswith(rule + "_")]
        return min(found, default=float("nan"))

    shallow, bp = best("shallow"), best("bp")

    def recovery(setting: str, loss: float) -> str:
        r = (shallow - loss) / (shallow - bp)
        return f"{r:+.2f}" if setting.startswith("dfa") and r == r else "—"  # NaN: no shallow or BP yet

    rows = [(part, f"`{setting}`", seeds.text(s, percent=False, digits=3), recovery(setting, s.mean))
            for (part, setting), s in sorted(stats.items(), key=lambda kv: (kv[0][0], kv[1].mean))]
    table = common.markdown_table(["part", "setting", "validation loss (nats/byte), mean ± std (n)",
                                   "R (vs best shallow, BP)"], rows)
    commits = sorted({r["commit"][:12] for r in records})
    return (f"# Experiment 12's screen: recipes of BP, DFA and the shallow control\n\n"
            f"{len(records)} of {len(plan('screen'))} runs have records (commits {', '.join(commits)}); "
            f"best shallow {shallow:.3f}, best BP {bp:.3f} nats/byte (part `lr`; nan: none trained yet). "
            f"`R = (L_shallow - L_DFA) / (L_shallow - L_BP)`; R > 0: DFA beats freezing the blocks.\n\n"
            f"Made by `python experiments/transformer_screen.py --report` from the records of "
            f"`experiments/transformer_screen.py --commit`.\n\n" + table)


def main(argv=None) -> int:
    args = runner.parse_args(__doc__, "transformer_screen", BUDGETS, argv, extra=lambda p: p.add_argument(
        "--report", action="store_true", help="write table.md from the records; train nothing"))
    todo = plan(args.budget)
    if args.report:
        (args.results / "table.md").write_text(report(args.results))
        print(f"[transformer_screen] wrote {args.results / 'table.md'}")
        return 0
    if args.status:
        return runner.status("transformer_screen", todo, args.results, args.work)
    context = todo[0][2]["context"]
    common.data_defaults()
    data = (jdfa.data.load("sotu", "train", context=context),
            jdfa.data.load("sotu", "test", context=context))
    return runner.run("transformer_screen", todo, results=args.results, work=args.work, data=data,
                      checkpoint_every=BUDGETS[args.budget]["checkpoint_every"], commit=args.commit)


if __name__ == "__main__":
    sys.exit(main())
