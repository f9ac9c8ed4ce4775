"""Experiment 9, seeded -- 97 % test accuracy at depth 100 as a mean over 5 seeds, with dropout.

`beat_paper.py` searched recipes with one seed and got DFA to 96.5 % at depth 100 (RMSprop 1e-3,
sigmoid output with binary cross-entropy -- Nøkland's recipe -- cosine decay, width 300, 30,000
steps), with 99.8 % train accuracy: it overfits. Nøkland's 1.45 % MNIST error used dropout on the
hidden layers, so this experiment trains that recipe with hidden-unit dropout (`jdfa.MLP(dropout=p)`,
``--dropout``; the mask multiplies ``f'(a_i)``, so a dropped unit gets no DFA delta) against none,
over 5 seeds, and asks whether the mean reaches 97 %. BDFA 25 is trained with the same recipe and
the best dropout for comparison.

Budgets (``--budget``, each in its own results folder):

* ``full``: width 300, 30,000 steps, dropout {0, 0.1, 0.2}, 5 seeds; BDFA 25 with each dropout
  too -- 30 runs, a GPU's work (about 1 h on one H100 at 5 runs at once; ~16 steps/s a run on the
  2-core CPU, i.e. days);
* ``cpu``: width 200, 6000 steps, DFA with dropout {0, 0.1, 0.2}, 5 seeds (about 35 min on the
  2-core CPU with ``--jobs 2``, ~31 steps/s a run): far from 97 % at this budget; it shows the
  seed spread, the train/test gap, and what dropout does to both.

Outputs (experiments/results/deep97/<budget>/): results.json, table.md, accuracy.png, runs/.

    python experiments/deep97.py --budget cpu --jobs 2
    python experiments/deep97.py --budget full --vmap-seeds
    python experiments/deep97.py --quick
"""

import common
import seeds

RECIPE = dict(depth=100, activation="tanh", loss="sigmoid_binary_cross_entropy", weight_init="uniform",
              optimizer="rmsprop", lr=1e-3, schedule="cosine", batch_size=64)
BUDGETS = {"full": dict(width=300, steps=30000, dropouts=[0.0, 0.1, 0.2], rules=["dfa", "bdfa25"], seeds=5),
           "cpu": dict(width=200, steps=6000, dropouts=[0.0, 0.1, 0.2], rules=["dfa"], seeds=5),
           "quick": dict(width=200, steps=40, dropouts=[0.0, 0.2], rules=["dfa"], seeds=2)}
TARGET = 0.97


def main(argv=None):
    args = common.parse_args(__doc__, "deep97", budgets=("cpu", "full"), argv=argv)
    b = BUDGETS["quick" if args.quick else args.budget]
    data = common.load_data(args)
    base = dict(RECIPE, width=b["width"], steps=b["steps"], eval_every=max(b["steps"] // 20, 20),
                train_eval_size=1000 if args.quick else 5000)
    runs = {f"{rule}_dropout{p:g}": dict(base, rule=rule, dropout=p)
            for rule in b["rules"] for p in b["dropouts"]}
    groups = seeds.run_seeds(args, runs, b["seeds"], data=data)

    rows = []
    for tag, results in groups.items():
        test, train = seeds.final_accuracies(results), seeds.stats([common.final(r, "train_accuracy")
                                                                    for r in results])
        rows.append((tag, seeds.text(test, digits=2), f"± {100 * test.ci:.2f}", seeds.text(train, digits=2),
                     f"{sum(common.final(r) >= TARGET for r in results)}/{len(results)}",
                     "yes" if test.mean - test.ci >= TARGET else "no"))
    table = common.markdown_table(["run", "test % mean ± std (n)", "95 % CI", "train % mean ± std (n)",
                                   "seeds >= 97 %", "97 % below the interval"], rows)
    notes = f"""
Budget `{'quick' if args.quick else args.budget}`: {b}. Recipe: {RECIPE} (`beat_paper.py`'s best
for DFA). The claim "97 % at depth 100" holds when the whole 95 % t-interval of the mean over seeds
lies at or above 97 %.
"""
    common.write_results(args, {"recipe": RECIPE, "budget": b,
                                "runs": {t: [common.slim(r) for r in rs] for t, rs in groups.items()}},
                         table, "Depth 100 to 97 % over seeds, with dropout (experiment 9)", notes)
    fig, axes = common.plt.subplots(1, 2, figsize=(12, 4.2))
    seeds.plot_bands(axes[0], groups)
    seeds.plot_bands(axes[1], groups, key="train_accuracy")
    axes[0].axhline(TARGET, color="k", lw=0.8, ls="--")
    axes[0].set_title(f"test accuracy, depth 100, width {b['width']}", fontsize=9)
    axes[1].set_title("train accuracy (the gap dropout should close)", fontsize=9)
    common.savefig(args, fig, "accuracy.png")


if __name__ == "__main__":
    main()
