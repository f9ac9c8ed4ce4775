"""Experiment 1 -- Blocked-DFA paper, Tables 1-2 and Figures 8-9: BDFA on 100-layer MLPs.

MNIST, 100 tanh hidden layers of width 200 (Table 1, Figure 8) and 300 (Table 2, Figure 9), softmax
cross-entropy. Rules: BP, DFA (= block size 100), BDFA with blocks of 50 and 25 (the paper's) and
10 and 5 (ours), each with both readings of how a block gets its signal (`boundary`, see
`jdfa.rules`):

* ``direct``   -- the paper's text: a block's layers take their delta through their own random
  ``B_i`` from the delta of the lowest layer of the block above;
* ``backprop`` -- a reading of its Figure 5: the top layer of a block gets the true BP delta through
  ``W^T`` of the layer above, the rest of the block DFA from it.

The paper gives neither optimizer, learning rate, batch size nor number of steps. We use Adam,
lr 1e-3, batch 64, U(+-1/sqrt(fan_in)) weights and feedback (Nøkland's recipe), seed 0, and
10,000 steps (``--steps``; 10.7 epochs). The paper's budget is unknown, so our accuracies are those
of this recipe at this budget, not a reproduction of its end points (experiment 9 searches
recipes). Every 100 steps the run also records per-layer update norms and the angle of each
layer's update to BP's (``align_every``), which experiment 3 (`vanishing_gradient.py`) reuses.

Outputs (experiments/results/bdfa_deep/): results.json, table.md, accuracy_w200.png (Figure 8),
accuracy_w300.png (Figure 9), runs/w<width>_<rule>/ (metrics.jsonl per run).

Time: the default (2 widths x 11 rules x 10,000 steps) took 12 min on one H100 with ``--jobs 6``
(``experiments/run_gpu.sh``, what was run; about 50 steps/s a run with 20 runs sharing the GPU);
on the 2-core CPU (25-35 steps/s at width 200) about 3 h -- ``--widths 200 --blocks 25`` is a
40-min subset. Finished runs with the same config are reused, so widths and blocks can be added
later. --quick (width 200, 100 steps, BP / DFA / BDFA-25 both readings): about 2 min.

    python experiments/bdfa_deep.py --jobs 6      # what was run (GPU): Tables 1-2, Figures 8-9
    python experiments/bdfa_deep.py --widths 200 --blocks 25   # a CPU-sized subset
    python experiments/bdfa_deep.py --quick
    python experiments/bdfa_deep.py --dataset notmnist       # when the notMNIST archive is present
"""

import common


def flags(p):
    p.add_argument("--widths", type=int, nargs="+", default=[200, 300])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--blocks", type=int, nargs="+", default=[50, 25, 10, 5])


PAPER = {200: {"BP": "does not converge", "DFA (block 100)": 89.2, "BDFA 50": 90.8, "BDFA 25": 93.2},
         300: {"BP": "—", "DFA (block 100)": 89.0, "BDFA 50": 90.0, "BDFA 25": 93.1}}


def tag(width, name):
    """The run folder's name: ``w200_bdfa25_bp``."""
    return f"w{width}_" + name.lower().replace(" (block 100)", "").replace(" (backprop boundary)", "_bp") \
        .replace(" ", "")


def main(argv=None):
    args = common.parse_args(__doc__, "bdfa_deep", extra=flags, argv=argv)
    data = common.load_data(args)
    if args.quick:
        widths, steps, blocks, boundaries = [200], 100, [25], ["direct", "backprop"]
    else:
        widths, steps, blocks, boundaries = args.widths, args.steps, args.blocks, ["direct", "backprop"]
    base = dict(depth=100, activation="tanh", loss="softmax_cross_entropy", weight_init="uniform",
                optimizer="adam", lr=1e-3, batch_size=64, steps=steps, seed=0,
                eval_every=max(steps // 20, 50), align_every=100 if steps >= 200 else 50,
                train_eval_size=2000 if args.quick else 10000)

    # The rules: name -> config overrides.
    rules = {"BP": dict(rule="bp"), "DFA (block 100)": dict(rule="dfa")}
    for k in blocks:
        for boundary in boundaries:
            rules[f"BDFA {k}" + ("" if boundary == "direct" else " (backprop boundary)")] = dict(
                rule="bdfa", block_size=k, boundary=boundary)

    done = common.run_all(args, {tag(w, name): dict(width=w, **base, **cfg) for w in widths
                                 for name, cfg in rules.items()}, data=data)
    runs = {w: {name: done[tag(w, name)] for name in rules} for w in widths}

    # Tables 1-2: paper vs jdfa (final and best test accuracy over the evaluations).
    rows = []
    for w in widths:
        for name, r in runs[w].items():
            paper = "—" if "backprop" in name else PAPER.get(w, {}).get(name, "—")
            rows.append((w, name, paper if isinstance(paper, str) else f"{paper:.1f}",
                         common.pct(common.final(r)), common.pct(common.best(r)),
                         common.pct(common.final(r, "train_accuracy")), r["status"], r["steps_per_s"]))
    table = common.markdown_table(["width", "rule", "paper test %", "jdfa test % (final)",
                                   "jdfa test % (best)", "jdfa train %", "status", "steps/s"], rows)
    notes = f"""
Budget: {steps} steps of batch 64 ({steps * 64 / 60000:.1f} epochs) per run, Adam lr 1e-3, seed 0,
weights and feedback U(+-1/sqrt(fan)). The paper states none of optimizer, learning rate, batch
size, steps or initialisation; its budget is unknown and very likely larger (its figures run far
longer), so the gap to its numbers is first of all a budget gap. "paper" is given for the paper's
own reading (its text: `boundary="direct"`); the `backprop`-boundary rows and blocks 10 and 5 are
ours. BDFA 100 = DFA at depth 100 (the blocks cover the whole net).
"""
    missing = [k for k in (50, 25, 10, 5) if k not in blocks]
    if missing:
        notes += (f"\nNot run in this invocation (time): BDFA blocks {missing}, both readings "
                  "(`--blocks ...`).\n")
    missing_widths = [w for w in (200, 300) if w not in widths]
    if missing_widths:
        notes += f"Not run in this invocation (time): width(s) {missing_widths} (`--widths ...`).\n"
    common.write_results(args, {"config": base, "rules": rules, "paper": PAPER,
                                "runs": {str(w): {k: common.slim(v) for k, v in rs.items()}
                                         for w, rs in runs.items()}},
                         table, "Blocked DFA on 100-layer nets (BDFA paper, Tables 1-2, Figures 8-9)", notes)

    # Figures 8-9: test accuracy against step, one figure per width.
    for w in widths:
        fig, axes = common.plt.subplots(1, 2, figsize=(12, 4.2))
        direct = {k: v for k, v in runs[w].items() if "backprop" not in k}
        other = {k: v for k, v in runs[w].items() if "backprop" in k or k in ("BP", "DFA (block 100)")}
        common.plot_metric(axes[0], direct, "test_accuracy", marker=".")
        common.plot_metric(axes[1], other, "test_accuracy", marker=".")
        axes[0].set_title(f"depth 100, width {w}: BP, DFA, BDFA (paper's reading)")
        axes[1].set_title(f"depth 100, width {w}: BDFA, backprop boundary")
        common.savefig(args, fig, f"accuracy_w{w}.png")


if __name__ == "__main__":
    main()
