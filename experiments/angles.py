"""Experiment 6 -- PyTorch report (Bechet) section 4.4, Figure 7: angles between DFA and BP updates,
over 5 seeds.

For each layer, the angle between the DFA update and the BP gradient over training. The report
cloned the model every batch, stepped one copy with DFA and one with BP, and compared the two
copies' gradients, averaged over an epoch. jdfa compares the two *updates* on the same parameters
and the same batch (`jdfa.align`, 256 fixed training examples), which is the quantity alignment
theory is about; the report's finding to check is that the angles settle and oscillate around a
stable value below 90 degrees instead of going to 0 (DFA does not follow BP's path).

Nets: the report's 784-80-10 (sigmoid, SGD lr 0.1, batch 500, B ~ N(0, 1), as in experiment 5) and,
to see more than one hidden layer, a 784-4x100-10 tanh net with the same recipe; each over seeds
0-4 (seed 0 is the earlier single run).

Outputs (experiments/results/angles/): results.json, table.md, angles.png, runs/.

Time on the 2-core CPU: full (50 epochs, 2 nets x 5 seeds) about 3.5 min with ``--jobs 2``;
--quick (3 epochs, 2 seeds) about 35 s.

    python experiments/angles.py --jobs 2
    python experiments/angles.py --quick
"""

import numpy as np

import common
import seeds

NETS = {"784-80-10": dict(depth=1, width=80, activation="sigmoid"),
        "784-4x100-10": dict(depth=4, width=100, activation="tanh")}


def main(argv=None):
    args = common.parse_args(__doc__, "angles", argv=argv)
    data = common.load_data(args)
    epoch = len(data[0][0]) // 500
    epochs, n_seeds = (3, 2) if args.quick else (50, 5)
    base = dict(rule="dfa", loss="sigmoid_binary_cross_entropy", weight_init="uniform", optimizer="sgd",
                lr=0.1, batch_size=500, feedback_init="gaussian", feedback_scale=1.0,
                steps=epochs * epoch, eval_every=epoch * (1 if args.quick else 5), align_every=epoch // 4)
    groups = seeds.run_seeds(args, {net: dict(base, **cfg) for net, cfg in NETS.items()}, n_seeds, data=data)

    fig, axes = common.plt.subplots(1, len(groups), figsize=(6 * len(groups), 4))
    rows, angles = [], {}
    for ax, (net, results) in zip(axes, groups.items()):
        curves = [common.series(r, "alignment_angle") for r in results]  # angles: (records, layers)
        n = min(len(s) for s, _ in curves)
        steps, a = curves[0][0][:n], np.stack([x[:n] for _, x in curves])  # a: (seeds, records, layers)
        angles[net], first = a, int(steps[0])  # the first record is at step 0: before any training
        hidden = a.shape[2] - 1  # the last entry is the output layer, which gets e itself (angle 0)
        # Per seed: the settled value (mean over the second half of training) and its oscillation (sd).
        settled, wobble = a[:, n // 2:, :].mean(axis=1), a[:, n // 2:, :].std(axis=1)
        test = seeds.final_accuracies(results)
        cmap = common.plt.get_cmap("viridis")
        for i in range(hidden):
            color = cmap(i / max(hidden - 1, 1))
            seeds.band(ax, steps / epoch, a[:, :, i], f"hidden layer {i + 1}", color=color)
            s = seeds.stats(settled[:, i])
            vs_top = seeds.paired(settled[:, i] - settled[:, hidden - 1], percent=False)  # layers of one run
            rows.append((f"{net}, {NETS[net]['activation']}", i + 1,
                         seeds.text(seeds.stats(a[:, 0, i]), percent=False),
                         seeds.text(s, percent=False), f"± {s.ci:.1f}", f"{wobble[:, i].mean():.1f}",
                         "—" if i == hidden - 1 else vs_top, seeds.text(test, digits=2)))
        ax.set(title=f"{net}, {NETS[net]['activation']}: DFA vs BP update, per layer (mean ± std over seeds)",
               xlabel="epoch", ylabel="angle (degrees)", ylim=(0, 120))
        ax.title.set_fontsize(9)
        ax.axhline(90, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    common.savefig(args, fig, "angles.png")

    table = common.markdown_table(
        ["net", "hidden layer", f"angle at step {first} (°), mean ± std (n)",
         "settled angle: 2nd half of training (°), mean ± std (n)", "95 % CI",
         "oscillation (sd within a run, °)",
         "settled − top hidden layer's, per run (°): mean ± std, 95 % CI",
         "test acc. %, mean ± std (n)"], rows)
    notes = f"""
Budget: {epochs} epochs (batch 500), seeds 0-{n_seeds - 1}, angle measured every {base['align_every']}
steps. The settled angle of a run is its mean over the second half of training; the table gives
its mean ± std over seeds, and the oscillation is the sd over that half within a run (averaged over
seeds). "− top hidden layer's": the layer's settled angle minus the last hidden layer's in the same
run, over the seeds; "real" when 0 lies outside its 95 % t-interval. The first record is taken
before training (random feedback: about 90°). The report gives only the figure (angles
oscillating around a stable value, no convergence to 0); it prints no numbers, so the table lists
ours. The output layer's angle is 0 by construction (it gets the true `e` under both rules) and is
omitted. Difference in method: the report compares two models trained apart; jdfa compares the two
updates on the same parameters and batch.
"""
    common.write_results(args, {"config": base, "nets": NETS, "seeds": n_seeds, "angles": angles,
                                "runs": {k: [common.slim(r) for r in rs] for k, rs in groups.items()}},
                         table, "Angles between DFA and BP updates over seeds (PyTorch report, Fig. 7)",
                         notes)


if __name__ == "__main__":
    main()
