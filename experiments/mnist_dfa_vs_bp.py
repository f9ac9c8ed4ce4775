"""Experiment 5 -- PyTorch report (Bechet) sections 4.3, Figures 3-6: DFA vs BP on MNIST 784-80-10.

One hidden layer of 80 sigmoid units (``depth=1, width=80``), sigmoid output with the report's
error ``e = y_hat - y`` (= ``sigmoid_binary_cross_entropy``'s ``e``), plain SGD, learning rate 0.1,
batch 500, 200 epochs (= 24,000 steps: 60,000 / 500 = 120 steps per epoch). Runs: BP, DFA with
feedback ``B ~ N(0, 1)`` (the report's default ``randn``) and DFA with ``B ~ N(0, 1.9^2)`` (the
report's tuned std, Figure 6). The report: about 97 % training accuracy after 200 epochs, DFA and
BP close, and std 1.9 better than BP.

Outputs (experiments/results/mnist_dfa_vs_bp/): results.json, table.md, training_error.png.

Time on the 2-core CPU (shared): full (200 epochs x 3 runs) about 6 min, --quick (4 epochs) about 30 s.

    python experiments/mnist_dfa_vs_bp.py
    python experiments/mnist_dfa_vs_bp.py --quick
"""

import common


def main(argv=None):
    args = common.parse_args(__doc__, "mnist_dfa_vs_bp", argv=argv)
    data = common.load_data(args)
    epochs = 4 if args.quick else 200
    steps_per_epoch = len(data[0][0]) // 500
    base = dict(depth=1, width=80, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
                weight_init="uniform", optimizer="sgd", lr=0.1, batch_size=500,
                steps=epochs * steps_per_epoch, eval_every=2 * steps_per_epoch)
    variants = {
        "BP": dict(rule="bp"),
        "DFA, B std 1": dict(rule="dfa", feedback_init="gaussian", feedback_scale=1.0),
        "DFA, B std 1.9": dict(rule="dfa", feedback_init="gaussian", feedback_scale=1.9),
    }

    runs = {name: common.run(args, name.replace(", ", "_").replace(" ", ""), data=data, **base, **v)
            for name, v in variants.items()}

    # Table: the report gives curves, not numbers; its text says ~97 % training accuracy at 200 epochs.
    paper = {"BP": "≈97 (text, 200 epochs)", "DFA, B std 1": "≈97 (text, 200 epochs)",
             "DFA, B std 1.9": "better than BP (Fig. 6)"}
    rows = [(name, paper[name], common.pct(common.final(r, "train_accuracy"), 2),
             common.pct(common.final(r, "test_accuracy"), 2), r["steps_per_s"]) for name, r in runs.items()]
    table = common.markdown_table(
        ["rule", "report train acc. %", f"jdfa train acc. % ({epochs} ep.)", "jdfa test acc. %", "steps/s"],
        rows)
    notes = f"""
Setup: 784-80-10, sigmoid hidden, sigmoid output + BCE (`e = y_hat - y`), SGD lr 0.1, batch 500,
{epochs} epochs ({base['steps']} steps), weights U(+-1/sqrt(fan_in)), seed 0. Training accuracy is
measured on a fixed 10,000-example subset of the training set.
The update is the batch *mean* of per-example updates (`jdfa`'s convention, the scale of
`jax.grad`); the report's eq. 13-14 write the bias update as a *sum* over the batch. The report
gives curves, not a table, so the only number to compare is its "about 97 % training accuracy
after 200 epochs"; the ordering (std 1.9 ahead of BP and of std 1, BP ~ DFA std 1) is its Fig. 6's.
One seed: differences of a few tenths of a percent are within seed noise.
"""
    common.write_results(args, {"config": base, "variants": variants,
                                "runs": {k: common.slim(v) for k, v in runs.items()}},
                         table, "MNIST 784-80-10: DFA vs BP (PyTorch report, Figs. 3-6)", notes)

    # Figure: training error per epoch (report Figs. 3, 6) and test error.
    fig, axes = common.plt.subplots(1, 2, figsize=(11, 4))
    for name, r in runs.items():
        s, acc = common.series(r, "train_accuracy")
        axes[0].plot(s / steps_per_epoch, 1 - acc, label=name)
        s, acc = common.series(r, "test_accuracy")
        axes[1].plot(s / steps_per_epoch, 1 - acc, label=name)
    for ax, title in zip(axes, ("training error", "test error")):
        ax.set(xlabel="epoch", ylabel=title, yscale="log", title=title)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    common.savefig(args, fig, "training_error.png")


if __name__ == "__main__":
    main()
