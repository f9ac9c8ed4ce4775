"""Experiment 5 -- PyTorch report (Bechet) sections 4.3, Figures 3-6: DFA vs BP on MNIST 784-80-10,
over 5 seeds.

One hidden layer of 80 sigmoid units (``depth=1, width=80``), sigmoid output with the report's
error ``e = y_hat - y`` (= ``sigmoid_binary_cross_entropy``'s ``e``), plain SGD, learning rate 0.1,
batch 500, 200 epochs (= 24,000 steps: 60,000 / 500 = 120 steps per epoch). Runs: BP, DFA with
feedback ``B ~ N(0, 1)`` (the report's default ``randn``) and DFA with ``B ~ N(0, 1.9^2)`` (the
report's tuned std, Figure 6), each over seeds 0-4 (seed 0 is the earlier single run). The report:
about 97 % training accuracy after 200 epochs, DFA and BP close, and std 1.9 better than BP.

Outputs (experiments/results/mnist_dfa_vs_bp/): results.json, table.md, accuracy.png, runs/.

Time on the 2-core CPU: full (3 rules x 5 seeds x 24,000 steps) about 9 min with ``--jobs 2``;
--quick (4 epochs, 2 seeds) about 30 s.

    python experiments/mnist_dfa_vs_bp.py --jobs 2
    python experiments/mnist_dfa_vs_bp.py --quick
"""

import common
import seeds

# The report gives curves, not numbers; its text says ~97 % training accuracy at 200 epochs.
PAPER = {"BP": "≈97 (text, 200 epochs)", "DFA, B std 1": "≈97 (text, 200 epochs)",
         "DFA, B std 1.9": "better than BP (Fig. 6)"}
VARIANTS = {"BP": dict(rule="bp"),
            "DFA, B std 1": dict(rule="dfa", feedback_init="gaussian", feedback_scale=1.0),
            "DFA, B std 1.9": dict(rule="dfa", feedback_init="gaussian", feedback_scale=1.9)}


def main(argv=None):
    args = common.parse_args(__doc__, "mnist_dfa_vs_bp", argv=argv)
    data = common.load_data(args)
    epochs, n_seeds = (4, 2) if args.quick else (200, 5)
    steps_per_epoch = len(data[0][0]) // 500
    base = dict(depth=1, width=80, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
                weight_init="uniform", optimizer="sgd", lr=0.1, batch_size=500,
                steps=epochs * steps_per_epoch, eval_every=2 * steps_per_epoch)
    tags = {name: name.replace(", ", "_").replace(" ", "") for name in VARIANTS}  # run folders: BP_s0, ...
    done = seeds.run_seeds(args, {tags[name]: dict(base, **v) for name, v in VARIANTS.items()}, n_seeds,
                           data=data)
    groups = {name: done[tags[name]] for name in VARIANTS}

    # The report's claims are about training accuracy (Figs. 3, 6), so that is what "vs BP" compares;
    # test accuracy is compared too, since that is what generalises.
    train = {tag: seeds.stats([common.final(r, "train_accuracy") for r in rs]) for tag, rs in groups.items()}
    test = {tag: seeds.final_accuracies(rs) for tag, rs in groups.items()}
    rows = [(tag, PAPER[tag], seeds.text(train[tag], digits=2), f"± {100 * train[tag].ci:.2f}",
             "—" if tag == "BP" else seeds.separated(train[tag], train["BP"]),
             seeds.text(test[tag], digits=2), f"± {100 * test[tag].ci:.2f}",
             "—" if tag == "BP" else seeds.separated(test[tag], test["BP"]),
             f"{sum(r['steps_per_s'] for r in rs) / len(rs):.0f}") for tag, rs in groups.items()]
    table = common.markdown_table(
        ["rule", "report train acc. %", f"jdfa train % ({epochs} ep.), mean ± std (n)", "95 % CI",
         "train vs BP (95 % CI)", "jdfa test %, mean ± std (n)", "95 % CI", "test vs BP (95 % CI)",
         "steps/s (mean)"], rows)

    def paired(a, b, key):  # the runs of one seed differ only in the rule and B
        diffs = [common.final(x, key) - common.final(y, key) for x, y in zip(groups[a], groups[b])]
        return seeds.paired(diffs, digits=2)

    std1, std19 = "DFA, B std 1", "DFA, B std 1.9"
    table += "\n" + common.markdown_table(
        ["per-seed difference", "train, % points: mean ± std (n), 95 % CI", "test, % points"],
        [(f"{a} − {b}", paired(a, b, "train_accuracy"), paired(a, b, "test_accuracy"))
         for a, b in ((std19, "BP"), (std1, "BP"), (std19, std1))])
    notes = f"""
Setup: 784-80-10, sigmoid hidden, sigmoid output + BCE (`e = y_hat - y`), SGD lr 0.1, batch 500,
{epochs} epochs ({base['steps']} steps), weights U(+-1/sqrt(fan_in)), seeds 0-{n_seeds - 1}. Training
accuracy is measured on a fixed 10,000-example subset of the training set. "vs BP": "higher"/"lower"
when the rule's 95 % t-interval lies wholly above/below BP's, else "overlap". The second table
pairs the runs by seed: "real" when 0 lies outside the 95 % t-interval of the per-seed differences.
steps/s are those of runs sharing the 2 cores (`--jobs`).
The update is the batch *mean* of per-example updates (`jdfa`'s convention, the scale of
`jax.grad`); the report's eq. 13-14 write the bias update as a *sum* over the batch. The report
gives curves, not a table, so the only number to compare is its "about 97 % training accuracy
after 200 epochs"; the ordering (std 1.9 ahead of BP and of std 1, BP ~ DFA std 1) is its Fig. 6's.
"""
    common.write_results(args, {"config": base, "variants": VARIANTS, "seeds": n_seeds,
                                "runs": {tag: [common.slim(r) for r in rs] for tag, rs in groups.items()}},
                         table, "MNIST 784-80-10: DFA vs BP over seeds (PyTorch report, Figs. 3-6)", notes)

    # Figure: training and test accuracy against step (report Figs. 3, 6 plot the training error per epoch).
    fig, axes = common.plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("train_accuracy", "test_accuracy")):
        seeds.plot_bands(ax, groups, key)
        if not args.quick:  # the last few percent, where the rules differ
            ax.set_ylim(0.88, 0.99)
        ax.set_title(f"{key.split('_')[0]} accuracy ({steps_per_epoch} steps = 1 epoch)", fontsize=9)
    common.savefig(args, fig, "accuracy.png")


if __name__ == "__main__":
    main()
