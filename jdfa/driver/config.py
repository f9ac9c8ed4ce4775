"""What defines a run: the net, the rule and the optimizer (each its own frozen object), and the
run's own settings.

`Config` holds a net (any `jdfa.net.Net`: `jdfa.MLP`, a `jdfa.blocks` net, your own), a
`jdfa.rules.Rule` and a `jdfa.optimizers.Optimizer` as they are, so each default lives in one
place. The command line's flat flags map onto it in `jdfa.driver.flags`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jdfa import (
    blocks,  # noqa: F401 -- defines the command line's other nets (`net_for_data`)
    rules,
)
from jdfa import net as nets
from jdfa.data import DATASETS, vocabulary
from jdfa.mlp import MLP
from jdfa.optimizers import Optimizer
from jdfa.options import options_of
from jdfa.validate import check_choice, check_int, check_positive

ON_DIVERGE = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run.

    Attributes:
      net: the net (a `jdfa.net.Net`: `jdfa.MLP`, a `jdfa.blocks` net, your own); its ``in_features`` and
        ``out_features`` must fit the data (`net_for_data`).
      rule: the learning rule, e.g. ``jdfa.bdfa(25)``.
      optimizer: the optimizer, e.g. ``Optimizer("adam", lr=1e-4)``.
      dataset, data_dir: the data, by name (`jdfa.data.load`), unless `jdfa.train` is given arrays.
      steps, batch_size, batch_mode, remat, seed: the training (`jdfa.make_train_step`).
      eval_every: steps between evaluations of train and test accuracy.
      align_every: steps between alignment measurements (`jdfa.align`); 0 never.
      train_eval_size: training accuracy is measured on this many fixed examples.
      out: the run folder (None: nothing written); one that holds a run is never written over.
      tensorboard, progress: extra outputs.
      checkpoint, checkpoint_every, keep_checkpoints: orbax checkpoints in ``out/checkpoints``,
        every N steps (None: at every evaluation; 0: only at the end), the last K kept.
      resume: continue the run in ``out`` from its newest readable checkpoint (the same run:
        only run-length settings may differ, `jdfa.driver.rundir.RESUMABLE`).
      overwrite: replace the run in ``out``, whole.
      divergence_factor: the run has diverged when a loss (the running training loss, checked
        after each chunk, or an evaluated test loss) exceeds this many times the first evaluated
        test loss (0: only non-finite values diverge). The default, 100, sits far above every
        recipe of the README and the experiments: a loss 100x the untrained net's is a blow-up.
      on_diverge, rollback_factor, max_rollbacks: on divergence (a non-finite step, or a loss past
        ``divergence_factor``), ``"stop"`` (the last good checkpoint and the logs stay), or
        ``"rollback"`` to the last good checkpoint with the lr times the factor (at most N times).
      mesh_data, mesh_layers, distributed: devices on the mesh's ``data`` and ``layers`` axes
        (`jdfa.parallel`); ``distributed`` calls `jax.distributed.initialize` first.
    """

    net: nets.Net = MLP(784, 256, 2, 10)
    rule: rules.Rule = rules.DFA()
    optimizer: Optimizer = Optimizer()
    dataset: str = "mnist"
    data_dir: str | None = None
    steps: int = 1000
    batch_size: int = 64
    batch_mode: str = "mean"
    remat: bool = False
    seed: int = 0
    eval_every: int = 500
    align_every: int = 0
    train_eval_size: int = 10000
    out: str | None = None
    tensorboard: bool = False
    progress: bool = True
    checkpoint: bool = True
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    resume: bool = False
    overwrite: bool = False
    divergence_factor: float = 100.0
    on_diverge: str = "stop"
    rollback_factor: float = 0.5
    max_rollbacks: int = 3
    mesh_data: int = 1
    mesh_layers: int = 1
    distributed: bool = False

    def __post_init__(self):
        nets.check_net(self.net)
        if not isinstance(self.rule, rules.Rule):
            raise TypeError(f"rule must be a jdfa rule (e.g. jdfa.dfa()), got {self.rule!r}")
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"optimizer must be a jdfa.optimizers.Optimizer, got {self.optimizer!r}")
        for name in ("steps", "batch_size", "eval_every", "train_eval_size", "keep_checkpoints",
                     "mesh_data", "mesh_layers"):
            check_int(name, getattr(self, name), 1)
        for name in ("align_every", "max_rollbacks", "seed"):
            check_int(name, getattr(self, name), 0)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, 0)
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: continue the run, or replace it")
        # The step's own checks, here too: a run that cannot train is refused before it starts.
        self.net.check_run(self.rule, self.batch_mode, self.remat, self.mesh_data * self.mesh_layers)
        check_choice("on_diverge", self.on_diverge, ON_DIVERGE)
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of {list(DATASETS)} (your own "
                             "arrays go to jdfa.train(config, data=...), whatever the dataset's name)")
        check_positive("rollback_factor", self.rollback_factor)
        if not (self.divergence_factor == 0 or self.divergence_factor > 1):
            raise ValueError(f"divergence_factor must be 0 (off) or above 1 (a multiple of the first "
                             f"evaluated test loss), got {self.divergence_factor}")
        if self.resume and not (self.out and self.checkpoint):
            raise ValueError("resume needs out (--out: the run folder whose checkpoints to continue "
                             "from) and checkpoints (not --no-checkpoint)")

    def to_dict(self) -> dict:
        """A JSON-ready nested dict: ``net``, ``rule`` (`Rule.to_dict`), ``optimizer`` and the
        run's own settings."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("net", "rule", "optimizer")}
        return {"net": self.net.to_dict(), "rule": self.rule.to_dict(),
                "optimizer": dataclasses.asdict(self.optimizer), **own}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """The config of `to_dict`'s dict."""
        d = dict(d)
        return cls(net=nets.from_dict(d.pop("net")), rule=rules.from_dict(d.pop("rule")),
                   optimizer=Optimizer(**d.pop("optimizer")), **d)


def net_flags(cls) -> dict[str, str]:
    """The command line's flags of net class ``cls``: flag -> field, for each of its options
    (`jdfa.options`), a field renamed by the class's ``flag_fields`` (a TransformerLM's ``n_blocks``
    is ``--depth``)."""
    renamed = {field: flag for flag, field in cls.flag_fields.items()}
    return {renamed.get(field, field): field for field in options_of(cls)}


def net_for_data(data, model: str | None = None, vocab: int | None = None, **fields) -> nets.Net:
    """The net whose ``flag`` is ``model`` (`jdfa.net.command_line_nets`; None: `Config`'s default
    net's) fitted to ``data = ((x_train, y_train), (x_test, y_test))`` by its class
    (`jdfa.net.Net.for_data`: in_features and one output per class, a vocabulary and context,
    ...). ``fields`` are flags of the net (`net_flags`); one that is None takes the net's default.
    ``vocab``: the token vocabulary the dataset declares (`jdfa.data.vocabulary`).

    Raises ``ValueError`` for inputs the net does not read (tokens for a net of features, or the
    other way round) and for a flag the net does not have, naming the nets that read them.
    """
    choices = nets.command_line_nets()
    model = model or Config.net.flag
    check_choice("model", model, tuple(choices))
    cls, fields = choices[model], {k: v for k, v in fields.items() if v is not None}
    x = data[0][0]
    tokens = bool(np.issubdtype(x.dtype, np.integer))
    if tokens != cls.reads_tokens:
        readers = " or ".join(repr(f) for f, c in choices.items() if c.reads_tokens == tokens)
        text_sets = ", ".join(f"--dataset {n}" for n in DATASETS if vocabulary(n))
        raise ValueError(f"the data holds integer tokens {x.shape}, a text dataset: train it with model "
                         f"{readers}" if tokens else
                         f"model {model!r} reads text: integer tokens (n, context), as {text_sets} "
                         "gives them")
    own = net_flags(cls)
    foreign = sorted(set(fields) - set(own))
    if foreign:
        owners = " or ".join(repr(f) for f, c in choices.items() if set(foreign) & set(net_flags(c)))
        raise ValueError(f"{foreign} are fields of model {owners}, not of model {model!r}")
    return cls.for_data(data, vocab, **{own[k]: v for k, v in fields.items()})
