"""Experiment 4 -- PyTorch report (Bechet) section 4.2, Table 2: XOR with DFA.

A 2-4-1 net, sigmoid hidden and output units, trained with DFA, batch 1, learning rate 0.1 (plain
SGD), 1000 epochs (4 examples per epoch = 4000 steps); feedback B ~ N(0, 1) (the report's
``torch.randn``), weights U(+-1/sqrt(fan_in)) (PyTorch's ``nn.Linear`` default).

The loss: the report's DFA error is ``e = y_hat - y`` on the sigmoid output. That is exactly the
``e = dL/da_y`` of ``sigmoid_binary_cross_entropy`` (sigmoid output, binary cross-entropy), so that
is the loss used; ``sigmoid_mse`` would give ``e = (y_hat - y) y_hat (1 - y_hat)`` instead.
The report shows one run; we train 5 seeds and print the report's table for seed 0 plus how many
seeds solve XOR (all four outputs on the right side of 0.5).

Outputs (experiments/results/xor/): results.json, table.md, xor.png (loss and training error).

Time on the 2-core CPU: full about 30 s, --quick (250 epochs, 2 seeds) about 7 s.

    python experiments/xor.py            # full
    python experiments/xor.py --quick    # smoke version
"""

import jax.numpy as jnp
import numpy as np

import jdfa

import common

PAPER = {(0, 0): 0.0057, (0, 1): 0.9882, (1, 0): 0.9894, (1, 1): 0.0103}  # report, Table 2


def _gap(outputs, y, solved, quick: bool) -> str:
    """The paragraph on the gap to the report, true to how many seeds solved XOR."""
    if not any(solved.values()):
        return ("No seed solved XOR at this budget" + (" (--quick is a smoke test of a few epochs)."
                                                        if quick else "."))
    distance = ", ".join(f"seed {s}: {np.max(np.abs(o - y)):.3f}" for s, o in outputs.items() if solved[s])
    return ("Gap: the report shows a single run with outputs within 0.012 of the targets; its seed, "
            "initial weights and exact update scaling are not given. Here the solved seeds are "
            "correct but less saturated (largest distance to the target over the four inputs: "
            f"{distance}); the nets are still moving towards 0/1 at the end (see xor.png), so a "
            "longer run or a larger learning rate closes the gap.")


def main(argv=None):
    args = common.parse_args(__doc__, "xor", datasets=("xor",), argv=argv)
    data = common.load_data(args)
    (x, y), _ = data
    epochs = 250 if args.quick else 1000
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    config = dict(rule="dfa", depth=1, width=4, activation="sigmoid",
                  loss="sigmoid_binary_cross_entropy", weight_init="uniform", feedback_init="gaussian",
                  feedback_scale=1.0, optimizer="sgd", lr=0.1, batch_size=1, steps=4 * epochs,
                  eval_every=40)

    # Train one net per seed and read its outputs on the four inputs.
    runs, outputs = {}, {}
    for seed in seeds:
        r = common.run(args, f"seed{seed}", data=data, seed=seed, keep_state=True, **config)
        net = jdfa.MLP(2, 4, 1, 1, "sigmoid", "sigmoid_binary_cross_entropy", "uniform")
        outputs[seed] = np.asarray(jdfa.predict(net, r.pop("state").params, jnp.asarray(x)))[:, 0]
        runs[f"seed {seed}"] = r
    solved = {s: bool(np.all((o > 0.5) == (y == 1))) for s, o in outputs.items()}

    # The report's Table 2 beside ours.
    # The seeds are one sweep: each output as mean ± std over them.
    stacked = np.stack(list(outputs.values()))
    rows = [(f"({int(a)}, {int(b)})", int(t), PAPER[(int(a), int(b))],
             f"{stacked[:, i].mean():.4f} ± {stacked[:, i].std(ddof=1):.4f} ({len(seeds)})")
            for i, ((a, b), t) in enumerate(zip(x, y))]
    table = common.markdown_table(["input", "expected", "report (DFA)",
                                   "jdfa DFA, mean ± std over seeds (n)"], rows)
    table += "\n" + common.markdown_table(
        ["seed", "outputs (00, 01, 10, 11)", "solved"],
        [(s, ", ".join(f"{v:.4f}" for v in o), "yes" if solved[s] else "no") for s, o in outputs.items()])
    notes = f"""
Setup: 2-4-1, sigmoid/sigmoid, DFA, SGD lr 0.1, batch 1, {epochs} epochs ({4 * epochs} steps),
B ~ N(0, 1), loss `sigmoid_binary_cross_entropy` (its `e` is the report's `y_hat - y`).
{sum(solved.values())} of {len(seeds)} seeds solve XOR (all four outputs on the right side of 0.5).
{_gap(outputs, y, solved, quick=args.quick)}
"""
    common.write_results(args, {"config": config, "paper": {str(k): v for k, v in PAPER.items()},
                                "outputs": {str(s): o.tolist() for s, o in outputs.items()},
                                "solved": solved, "runs": {k: common.slim(v) for k, v in runs.items()}},
                         table, "XOR with DFA (PyTorch report, Table 2)", notes)

    # Figure: loss and training error per epoch, as the report's Figures 1-2.
    fig, axes = common.plt.subplots(1, 2, figsize=(10, 3.5))
    for tag, r in runs.items():
        s, loss = common.series(r, "loss")
        axes[0].plot(s / 4, loss, label=tag)
        s, acc = common.series(r, "train_accuracy")
        axes[1].plot(s / 4, 1 - acc, label=tag)
    axes[0].set(xlabel="epoch", ylabel="training loss (BCE)", yscale="log", title="loss")
    axes[1].set(xlabel="epoch", ylabel="training error", title="training error")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    common.savefig(args, fig, "xor.png")


if __name__ == "__main__":
    main()
