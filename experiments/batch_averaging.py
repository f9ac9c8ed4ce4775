"""Experiment 7 -- PyTorch report (Bechet) sections 4.5-4.6, Figures 9-11: averaged batches, over 5
seeds.

DFA on MNIST 784-80-10 (sigmoid, sigmoid output with ``e = y_hat - y``, plain SGD, B ~ N(0, 1)),
with the report's two averaging schemes (``batch_mode``, `jdfa.batch_modes`):

* ``batch_average`` (section 4.5, Figure 9): the whole batch becomes one "master" example (inputs,
  ``a``, ``h`` and targets averaged), one update per batch; batch sizes 15, 40, 110, 510 (the
  report's), lr 0.1 (its section 4.3 rate; Figure 9's rate is not stated). The report: 15 learns
  slowly, 40 still decreases, 110 and 510 do not converge (the averaged label tends to uniform).
* ``class_average`` (section 4.6): one master example per class present in the batch, the update
  the mean of theirs. Figure 10: learning-rate sweep at batch 500; Figure 11: batch-size sweep at
  lr 0.001. The figures' exact rates and sizes are not in the text; we sweep lr 1, 0.1, 0.01, 0.001
  and batch sizes 50, 100, 250, 500.

Each setting over seeds 0-4 (seed 0 is the earlier single run); batch 500 at lr 0.001 is in both
per-class sweeps and is trained once.

Outputs (experiments/results/batch_averaging/): results.json, table.md, batch_average.png (Fig. 9),
class_average_lr.png (Fig. 10), class_average_batch.png (Fig. 11), runs/.

Time on the 2-core CPU: full (10 / 30 / 30 epochs, 11 settings x 5 seeds) about 9 min with
``--jobs 2``; --quick (1-2 epochs, 2 seeds) about 1.5 min.

    python experiments/batch_averaging.py --jobs 2
    python experiments/batch_averaging.py --quick
"""

import numpy as np

import common
import seeds

NET = dict(rule="dfa", depth=1, width=80, activation="sigmoid", loss="sigmoid_binary_cross_entropy",
           weight_init="uniform", feedback_init="gaussian", feedback_scale=1.0, optimizer="sgd",
           train_eval_size=5000)


def by_epochs(n, batch, epochs, evals_per_epoch):
    """The steps and eval_every of ``epochs`` epochs over ``n`` examples at ``batch``."""
    per_epoch = n // batch
    return dict(batch_size=batch, steps=epochs * per_epoch, eval_every=max(per_epoch // evals_per_epoch, 1))


def error_bands(ax, groups: dict, batch: dict, n: int) -> None:
    """Training error against epoch (the report's axes; the settings' batch sizes differ, so steps
    would not line up), mean ± one std over seeds; ``batch``: each setting's batch size."""
    for name, results in groups.items():
        curves = [common.series(r, "train_accuracy") for r in results]
        k = min(len(s) for s, _ in curves)
        epochs = curves[0][0][:k] * batch[name] / n
        seeds.band(ax, epochs, 1 - np.stack([acc[:k] for _, acc in curves]), name, marker=".")


def main(argv=None):
    args = common.parse_args(__doc__, "batch_averaging", argv=argv)
    data = common.load_data(args)
    n, net = len(data[0][0]), NET
    ep_avg, ep_cls = (1, 2) if args.quick else (10, 30)
    n_seeds = 2 if args.quick else 5

    def sized(batch, epochs):
        return by_epochs(n, batch, epochs, evals_per_epoch=4 if args.quick else 2)

    sweeps = {
        "batch_average": {f"batch {b}": dict(batch_mode="batch_average", lr=0.1, **sized(b, ep_avg))
                          for b in (15, 40, 110, 510)},
        "class_average_lr": {f"lr {lr:g}": dict(batch_mode="class_average", lr=lr, **sized(500, ep_cls))
                             for lr in (1.0, 0.1, 0.01, 0.001)},
        "class_average_batch": {f"batch {b}": dict(batch_mode="class_average", lr=0.001, **sized(b, ep_cls))
                                for b in (50, 100, 250, 500)},
    }
    tags = {(sweep, name): f"{sweep}_{name.replace(' ', '')}" for sweep, vs in sweeps.items() for name in vs}
    # Batch 500 at lr 0.001 is in both per-class sweeps (the same config): trained once.
    tags["class_average_batch", "batch 500"] = tags["class_average_lr", "lr 0.001"]
    done = seeds.run_seeds(args, {tags[s, name]: dict(net, **cfg) for s, vs in sweeps.items()
                                  for name, cfg in vs.items()}, n_seeds, data=data)
    groups = {s: {name: done[tags[s, name]] for name in vs} for s, vs in sweeps.items()}

    titles = {"batch_average": "averaging on the whole batch, lr 0.1 (report Fig. 9)",
              "class_average_lr": "per-class averaging, batch 500: learning rate (report Fig. 10)",
              "class_average_batch": "per-class averaging, lr 0.001: batch size (report Fig. 11)"}
    for sweep, gs in groups.items():
        fig, ax = common.plt.subplots(figsize=(7, 4))
        error_bands(ax, gs, {k: cfg["batch_size"] for k, cfg in sweeps[sweep].items()}, n)
        ax.set(xlabel="epoch", ylabel="training error (mean ± std over seeds)", title=titles[sweep],
               ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend()
        common.savefig(args, fig, f"{sweep}.png")

    report = {"batch_average": {"batch 15": "converges, slowly", "batch 40": "decreasing",
                                "batch 110": "no convergence", "batch 510": "no convergence"},
              "class_average_lr": {"lr 1": "too high: no convergence (Fig. 10, values not in text)",
                                   "lr 0.1": "—", "lr 0.01": "—", "lr 0.001": "slow (plateau)"},
              "class_average_batch": {k: "converges; larger batch slower per epoch"
                                      for k in sweeps["class_average_batch"]}}
    # Each sweep's claims are orderings of neighbouring settings, so each row is compared with the row above.
    rows = []
    for sweep, gs in groups.items():
        above = None
        for name, results in gs.items():
            err = seeds.stats([1 - common.final(r, "train_accuracy") for r in results])
            rows.append((sweep, name, report[sweep].get(name, "—"), sweeps[sweep][name]["steps"],
                         seeds.text(err), f"± {100 * err.ci:.1f}",
                         "—" if above is None else seeds.separated(err, above),
                         seeds.text(seeds.final_accuracies(results))))
            above = err
    table = common.markdown_table(["scheme", "setting", "report (qualitative)", "steps",
                                   "jdfa final train error %, mean ± std (n)", "95 % CI",
                                   "train error vs the row above (95 % CI)",
                                   "jdfa test acc. %, mean ± std (n)"], rows)
    notes = f"""
Budget: batch averaging {ep_avg} epochs per batch size, per-class averaging {ep_cls} epochs per
setting (the report's epoch counts for Figs. 9-11 are not stated), seeds 0-{n_seeds - 1}. "vs the
row above": "higher"/"lower" when the setting's 95 % t-interval of final training error lies wholly
above/below that of the previous setting of its sweep, else "overlap" (within seed noise). Batch
500 at lr 0.001 is one set of runs, listed in both per-class sweeps. The report prints no numbers
for these figures, so its column is the qualitative statement of its text. The learning rates of
Fig. 10 and the batch sizes of Fig. 11 are not in the text; ours are listed in the table.
"""
    common.write_results(args, {"net": net, "sweeps": sweeps, "seeds": n_seeds,
                                "runs": {s: {k: [common.slim(r) for r in rs] for k, rs in gs.items()}
                                         for s, gs in groups.items()}},
                         table, "Batch and per-class averaging with DFA over seeds (PyTorch report, "
                                "Figs. 9-11)", notes)


if __name__ == "__main__":
    main()
