"""The Blocked-DFA paper's future work, as seeded experiments: learning without the derivative
(its question 1) and switching between BP and DFA during training (its question 3).

Question 1 -- "can the networks learn without the derivative of the activation function?": DFA and
BDFA with and without ``f'(a_i)`` in their feedback deltas (``use_derivative=False``), at depth 15
(width 240; blocks of 5) and depth 100 (width 200; blocks of 25).

Question 3 -- switching "non-deterministically across layers and/or entire training steps":
`jdfa.mix` draws, inside the jitted step, BP or DFA for the whole step (``per="step"``) or for each
layer (``per="layer"``), BP with probability ``p_bp``; plus the deterministic schedule "BP for the
first 10 % of the steps, then DFA" (``mix(0, bp_steps=N)``); against pure BP and pure DFA. At depth
15 BP trains; at depth 100 (tanh) it does not, so the question there is whether some BP helps or
hurts DFA.

One recipe for every rule (the paper gives none): orthogonal weights (they keep a 100-layer tanh
net's signal), Adam lr 3e-4 (where `beat_paper.py`'s search found DFA, BDFA 25 and BP all learning
at depth 100), batch 64, softmax cross-entropy, U(+-1/sqrt(fan)) feedback; 5 seeds.

Budgets (``--budget``, each in its own results folder): ``cpu`` 2000 steps at depth 15 and 1000 at
depth 100 (about an hour on the 2-core CPU); ``full`` 10,000 steps at both depths (a GPU's work).

Outputs (experiments/results/future_work/<budget>/): results.json, table.md, no_derivative.png,
switching.png, runs/.

    python experiments/future_work.py --budget cpu       # the CPU budget, both depths
    python experiments/future_work.py --budget cpu --depths 15   # what is reported so far
    python experiments/future_work.py --budget full --vmap-seeds
    python experiments/future_work.py --quick            # 30 steps, 2 seeds, depth 15 only
"""

import common
import seeds

BUDGETS = {"full": dict(steps={15: 10000, 100: 10000}, seeds=5),
           "cpu": dict(steps={15: 2000, 100: 1000}, seeds=5),
           "quick": dict(steps={15: 30}, seeds=2)}
NETS = {15: dict(depth=15, width=240), 100: dict(depth=100, width=200)}
BLOCK = {15: 5, 100: 25}
RECIPE = dict(activation="tanh", loss="softmax_cross_entropy", weight_init="orthogonal", optimizer="adam",
              lr=3e-4, batch_size=64, feedback_init="uniform")


def no_derivative_runs(depth: int) -> dict:
    k = BLOCK[depth]
    # With f' the runs are plain DFA and BDFA: the switching part's DFA reference is the same run.
    return {f"d{depth}_{rule}" + ("" if d else "_nofprime"): dict(rule=rule, use_derivative=d)
            for rule in ("dfa", f"bdfa{k}") for d in (True, False)}


def switching_runs(depth: int, steps: int) -> dict:
    warm = steps // 10
    return {f"d{depth}_bp": dict(rule="bp"), f"d{depth}_dfa": dict(rule="dfa"),
            f"d{depth}_mix0.5_step": dict(rule="mix", p_bp=0.5, per="step"),
            f"d{depth}_mix0.5_layer": dict(rule="mix", p_bp=0.5, per="layer"),
            f"d{depth}_bp{warm}_then_dfa": dict(rule="mix", p_bp=0.0, bp_steps=warm)}


def rows_for(groups: dict, steps: int, reference: str) -> list:
    ref = seeds.final_accuracies(groups[reference])
    rows = []
    for tag, results in groups.items():
        s = seeds.final_accuracies(results)
        rows.append((tag, steps, seeds.text(s), f"± {100 * s.ci:.1f}", seeds.reached(results, 0.9),
                     "—" if tag == reference else seeds.separated(s, ref)))
    return rows


def flags(p):
    p.add_argument("--depths", type=int, nargs="+", choices=sorted(NETS), default=sorted(NETS),
                   help="the depths to train and report (default both)")


def main(argv=None):
    args = common.parse_args(__doc__, "future_work", budgets=("cpu", "full"), extra=flags, argv=argv)
    b = BUDGETS["quick" if args.quick else args.budget]
    b = dict(b, steps={d: s for d, s in b["steps"].items() if d in args.depths})
    data = common.load_data(args)
    headers = ["run", "steps", "final test % mean ± std (n)", "95 % CI", "seeds reaching 90 %, at step"]
    text, results, figs = "", {}, {}
    for part, make, reference in (("no_derivative", lambda d, s: no_derivative_runs(d), "dfa"),
                                  ("switching", switching_runs, "dfa")):
        text += f"## {part.replace('_', ' ')}\n\n"
        figs[part] = {}
        for depth, steps in b["steps"].items():
            base = dict(RECIPE, **NETS[depth], steps=steps, eval_every=max(steps // 10, 10),
                        train_eval_size=1000 if args.quick else 2000)
            runs = {tag: common.for_rule({**base, **cfg}) for tag, cfg in make(depth, steps).items()}
            groups = seeds.run_seeds(args, runs, b["seeds"], data=data)
            ref = f"d{depth}_{reference}"
            rows = rows_for(groups, steps, ref)
            text += common.markdown_table(headers + [f"vs {ref} (95 % CI)"], rows) + "\n"
            results[f"{part}_d{depth}"] = {tag: [common.slim(r) for r in rs] for tag, rs in groups.items()}
            figs[part][depth] = groups
    notes = f"""
Budget `{'quick' if args.quick else args.budget}`: {b}. Recipe: {RECIPE}. Nets: {NETS}.
"vs": "higher"/"lower" when the run's 95 % t-interval of final test accuracy lies wholly
above/below the reference's, else "overlap". Steps to 90 % are read at the evaluations (every
10 % of the steps).
"""
    common.write_results(args, {"budget": b, "recipe": RECIPE, "nets": NETS, "runs": results}, text,
                         "Future work of the BDFA paper: no derivative, switching BP/DFA", notes)
    for part, by_depth in figs.items():
        fig, axes = common.plt.subplots(1, len(by_depth), figsize=(6 * len(by_depth), 4.2), squeeze=False)
        for ax, (depth, groups) in zip(axes[0], by_depth.items()):
            seeds.plot_bands(ax, groups)
            ax.set_title(f"{part.replace('_', ' ')}: depth {depth}, width {NETS[depth]['width']}", fontsize=9)
        common.savefig(args, fig, f"{part}.png")


if __name__ == "__main__":
    main()
