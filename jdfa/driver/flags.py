"""The run's flat flags: the command line's names for the fields of `Config` and of the net, the
rule and the optimizer it holds. `from_flags` maps them onto a `Config`; the command line
(`jdfa.driver.cli`) and the experiment scripts both use it, so a flag means the same everywhere.

Defaults come from the objects themselves (`Config`, `jdfa.MLP`, the rule classes,
`jdfa.optimizers.Optimizer`); a rule field left unset takes its rule's default (``bdfa``: blocks
of 25, ``fp``: one BP layer). The rules' flags are their options (`jdfa.options`), read from the
registry of rules when asked (`rule_options`, `help_texts`): a rule defined after import, in a
script or a test, brings its flags with it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os

from jdfa import data as datasets
from jdfa import parallel, rules
from jdfa.driver.config import Config, net_flags, net_for_data
from jdfa.net import command_line_nets
from jdfa.optimizers import Optimizer
from jdfa.options import Option, merged, options_of

OPTIMIZER = {"optimizer": "name", "lr": "lr", "schedule": "schedule", "warmup_steps": "warmup_steps",
             "weight_decay": "weight_decay", "clip_norm": "clip_norm", "eps": "eps"}

HELP = {  # the optimizer's and the run's flags; the rule's and the net's come from their options
    "optimizer": "optimizer (adamw = adam; decay only through --weight-decay)",
    "lr": "learning rate (peak, with --schedule cosine)",
    "schedule": "learning-rate schedule over the run's steps",
    "warmup_steps": "the learning rate rises linearly from 0 over this many steps, then follows "
                    "--schedule (0: no warmup)",
    "clip_norm": "clip the update direction to this global L2 norm (0: no clipping)",
    "eps": "epsilon of adam, adamw and rmsprop",
    "weight_decay": "decoupled decay of the weight matrices, never biases (0: none)",
    "dataset": "dataset, read from --data-dir or $JDFA_DATA_DIR",
    "data_dir": "folder holding the dataset's files (default: $JDFA_DATA_DIR)",
    "steps": "training steps",
    "batch_size": "examples per step",
    "batch_mode": "mean of per-example updates, or the PyTorch report's averaged master examples",
    "remat": "DFA only: recompute activations instead of storing them (memory flat in depth)",
    "seed": "seed of init, feedback and data order",
    "eval_every": "steps between evaluations of train and test accuracy",
    "align_every": "steps between alignment angles to the BP gradient (0: never)",
    "train_eval_size": "training accuracy is measured on this many fixed examples",
    "out": "run folder for config, metrics, curves, summary and checkpoints (none: nothing written)",
    "tensorboard": "also write TensorBoard events (needs pip install 'jdfa[tensorboard]')",
    "progress": "show a progress bar",
    "checkpoint": "write checkpoints to OUT/checkpoints",
    "checkpoint_every": "steps between checkpoints (default: at every evaluation; 0: only at the end)",
    "keep_checkpoints": "checkpoints kept",
    "resume": "continue the run in OUT from its newest readable checkpoint (same flags; only "
              "run-length ones such as --steps may change)",
    "overwrite": "replace the run already in OUT (without it, an OUT holding a run is refused)",
    "divergence_factor": "a loss above this many times the first evaluated test loss is divergence "
                         "(0: only non-finite values are)",
    "on_diverge": "on divergence: stop, or roll back to the last good checkpoint",
    "rollback_factor": "learning rate multiplier at each rollback",
    "max_rollbacks": "rollbacks before giving up",
    "mesh_data": "devices on the data axis (the batch is split)",
    "mesh_layers": "devices on the layers axis (the stacked hidden layers are split)",
    "distributed": "join a multi-process run first (jax.distributed.initialize: found by itself on "
                   "TPU pods and SLURM; elsewhere from $JDFA_COORDINATOR_ADDRESS, $JDFA_NUM_PROCESSES, "
                   "$JDFA_PROCESS_ID)",
}


def rule_options() -> dict[str, Option]:
    """The options of every registered rule (`jdfa.rules.RULES`), a rule's own ones first, then
    those most rules share (the feedback options)."""
    classes = list(rules.RULES.values())
    found = merged(classes)
    shared_by = {name: sum(name in options_of(cls) for cls in classes) for name in found}
    return dict(sorted(found.items(), key=lambda item: shared_by[item[0]]))


def models() -> dict[str, type]:
    """The command line's nets (`jdfa.net.command_line_nets`), `Config`'s default net's first."""
    nets = command_line_nets()
    return dict(sorted(nets.items(), key=lambda item: item[0] != Config.net.flag))


def net_options() -> dict[str, Option]:
    """The flags of the command line's nets (`jdfa.net.command_line_nets`): each net's options
    under their flag names (`net_flags`). A flag the nets read differently gets a help line that
    names each net's reading, and the choices of all."""
    nets = models()
    found: dict[str, dict[str, Option]] = {}
    for model, cls in nets.items():
        opts = options_of(cls)
        for flag, field in net_flags(cls).items():
            found.setdefault(flag, {})[model] = opts[field]
    out = {}
    for flag, by_net in found.items():
        first = next(iter(by_net.values()))
        readers: dict[str, list[str]] = {}  # one help text -> the nets that read the flag so
        for model, o in by_net.items():
            readers.setdefault(o.help, []).append(model)
        every = len(readers) == 1 and len(by_net) == len(nets)
        text = first.help if every else "; ".join(f"{', '.join(m)}: {h}" for h, m in readers.items())
        choices = tuple(dict.fromkeys(c for o in by_net.values() for c in o.choices))
        out[flag] = dataclasses.replace(first, help=text, choices=choices)
    return out


def help_texts() -> dict[str, str]:
    """Every flag's help line, in the order ``--help`` lists them: the rule and its options, then
    the net and its options, the optimizer and the run."""
    return {"rule": f"learning rule: {' '.join(rules.RULES)}, or a spec such as fp2, bdfa25, bdfa25-bp",
            **{name: opt.help for name, opt in rule_options().items()},
            "model": f"the net: {', '.join(models())} (a text dataset's tokens need a net that reads "
                     "them)",
            **{name: opt.help for name, opt in net_options().items()}, **HELP}


# Who is asking: the command line sets "cli" while it runs, so the driver's errors name its flags
# there and `Config`'s fields to a Python caller.
SPEAKING = contextvars.ContextVar("jdfa_speaking", default="python")


def spelled(field: str, value=True) -> str:
    """A `Config` field as the caller writes it: ``--resume``, ``--steps 5``, ``--out`` on the
    command line; ``Config(resume=True)``, ``Config(steps=5)``, ``Config(out=...)`` from Python
    (``value`` ``...``: any)."""
    if SPEAKING.get() == "cli":
        flag = "--" + field.replace("_", "-")
        return flag if value is True or value is ... else f"{flag} {value}"
    return f"Config({field}={'...' if value is ... else repr(value)})"


def config_flags(config: Config) -> dict:
    """The flat flags of ``config`` (`from_flags` of them gives ``config`` back, the net's in and
    out features being fitted to the data); ``rule`` is the rule object, its fields inside it."""
    own = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
           if f.name not in ("net", "rule", "optimizer")}
    net = config.net
    model = net.flag or net
    return {"rule": config.rule, "model": model,
            **{name: getattr(net, net.flag_fields.get(name, name), None) for name in net_options()},
            **{flag: getattr(config.optimizer, field) for flag, field in OPTIMIZER.items()}, **own}


def defaults() -> dict:
    """Every flag's default; rule fields and the net's fields are None (the rule's own default; the
    net's, which differ between nets: `net_for_data`)."""
    config = Config()
    return {**config_flags(config), "rule": config.rule.spec, **dict.fromkeys(rule_options()),
            **dict.fromkeys(net_options())}


class Loaded(tuple):
    """`load_data`'s ``((x_train, y_train), (x_test, y_test))`` with ``source``, where it was read
    from (`data_source`): a run handed it records that, not "arrays passed"."""

    source: str


def load_data(dataset: str, data_dir: str | None = None, context: int | None = None) -> Loaded:
    """``((x_train, y_train), (x_test, y_test))`` of ``dataset`` as NumPy arrays (`jdfa.data.load`;
    a text dataset's examples are ``context`` tokens, None: `jdfa.data.load`'s default), a
    `Loaded` that knows its source."""
    windows = {} if context is None else {"context": context}
    loaded = Loaded((datasets.load(dataset, "train", data_dir, **windows),
                     datasets.load(dataset, "test", data_dir, **windows)))
    loaded.source = data_source(dataset, data_dir, False)
    return loaded


def source_of(data, dataset: str, data_dir: str | None) -> str:
    """Where a run's ``data`` argument (None: loaded by name; a `Loaded`; arrays) came from, in
    words for its ``config.json`` (`data_source`)."""
    return data.source if isinstance(data, Loaded) else data_source(dataset, data_dir, data is not None)


GIVEN = "arrays passed to jdfa.train(data=...)"  # a run's data that jdfa cannot load again by name


def data_source(dataset: str, data_dir: str | None, given: bool) -> str:
    """Where a run's data came from, in words for its ``config.json``: the arrays a caller passed,
    the ``data_dir`` argument, ``$JDFA_DATA_DIR`` (its value then), or a download."""
    if given:
        return GIVEN
    if dataset == "xor":
        return "jdfa.data.xor(), made in memory"
    if data_dir is not None:
        return f"{dataset} from data_dir {data_dir}"
    if os.environ.get("JDFA_DATA_DIR"):
        return f"{dataset} from $JDFA_DATA_DIR={os.environ['JDFA_DATA_DIR']}"
    return f"{dataset}, downloaded by jdfa.data (no data_dir, $JDFA_DATA_DIR not set)"


def from_flags(flags: dict, data=None) -> tuple[Config, tuple]:
    """``(config, data)`` from flat flags (any subset of `help_texts`' names; the rest default).
    The ``rule`` flag is a spec (`jdfa.rules.parse`) or a rule object; the ``model`` flag a net's
    ``flag`` (`models`) or a net object (a `jdfa.blocks.FlaxNet`, used as it is: the other net flags are
    not read).

    ``data`` (``((x_train, y_train), (x_test, y_test))``) is loaded from the ``dataset`` flag when
    not given; the net's ``in_features`` and ``out_features`` are fitted to it (`net_for_data`).
    Raises ``ValueError`` naming an unknown flag or a rule field that does not fit the rule.
    """
    unknown = sorted(set(flags) - set(help_texts()))
    if unknown:
        raise ValueError(f"unknown flag(s) {unknown}; see `jdfa train --help`")
    flags = {**defaults(), **flags}
    if flags["distributed"]:  # before the net's shapes touch a device: jax.distributed comes first
        parallel.initialize_distributed()
    rule_fields = {k: flags[k] for k in rule_options() if flags[k] is not None}
    rule = flags["rule"]
    if isinstance(rule, rules.Rule):  # a rule object, with any fields changed
        rule = rules.parse(rule.name, **{**dataclasses.asdict(rule), **rule_fields})
    else:
        rule = rules.parse(rule, **rule_fields)
    optimizer = Optimizer(**{field: flags[flag] for flag, field in OPTIMIZER.items()})
    if data is None:
        data = load_data(flags["dataset"], flags["data_dir"], flags["context"])
    model, net_fields = flags["model"], {k: flags[k] for k in net_options()}
    net = (net_for_data(data, model, datasets.vocabulary(flags["dataset"]), **net_fields)
           if isinstance(model, str) else model)
    others = {*net_fields, "model", *rule_options(), *OPTIMIZER, "rule"}
    own = {k: v for k, v in flags.items() if k not in others}
    return Config(net=net, rule=rule, optimizer=optimizer, **own), data
