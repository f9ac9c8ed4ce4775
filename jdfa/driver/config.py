"""What defines a run: the net, the rule and the optimizer (each its own frozen object), and the
run's own settings.

`Config` holds a net (any `jdfa.net.Net`: `jdfa.MLP`, a `jdfa.blocks` net, your own), a
`jdfa.rules.Rule` and a `jdfa.optimizers.Optimizer` as they are, so each default lives in one
place. The command line's flat flags map onto it in `jdfa.driver.flags`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jdfa import net as nets
from jdfa import rules
from jdfa.blocks import ConvNet, TransformerLM
from jdfa.data import DATASETS
from jdfa.mlp import MLP
from jdfa.optimizers import Optimizer
from jdfa.validate import check_choice, check_int, check_positive

ON_DIVERGE = ("stop", "rollback")
# the command line's nets: jdfa.MLP, jdfa.blocks.ConvNet, jdfa.blocks.TransformerLM
MODELS = ("mlp", "conv", "transformer")


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


def net_for_data(data, model: str = "mlp", vocab: int | None = None, **fields) -> nets.Net:
    """The net ``model`` names (`MODELS`) fitted to ``data = ((x_train, y_train), (x_test,
    y_test))``: ``in_features`` and one output per class, or a single output unit for two classes
    under a sigmoid or squared-error loss (as for XOR).

    ``"mlp"``: a `jdfa.MLP` (``fields``: width, depth, activation, loss, weight_init, dropout).
    ``"conv"``: a `jdfa.blocks.ConvNet` (LeNet) on square one-channel images, its Dense layer of
    ``width`` units (``depth`` is the ConvNet's own, 3, and not read).
    ``"transformer"``: a `jdfa.blocks.TransformerLM` on integer tokens (n, context), its vocabulary
    ``vocab``, the one the dataset declares (`jdfa.data.vocabulary`; None: the largest token + 1)
    (``depth``: decoder blocks; ``heads``; ``context``, which must be the data's).
    A field that is None takes the net's default (the MLP's width and depth: `Config`'s net's).
    """
    check_choice("model", model, MODELS)
    fields = {k: v for k, v in fields.items() if v is not None}
    (x, y), (x_test, y_test) = data
    text = np.issubdtype(x.dtype, np.integer)
    if text != (model == "transformer"):
        raise ValueError("model 'transformer' reads text: integer tokens (n, context), as --dataset "
                         "sotu gives them" if not text else
                         f"the data holds integer tokens {x.shape}, a text dataset: train it with "
                         "model 'transformer'")
    if model == "transformer":
        used = int(max(x.max(), y.max(), x_test.max(), y_test.max())) + 1
        if vocab is not None and used > vocab:
            raise ValueError(f"the data holds token {used - 1}, outside its declared vocabulary of {vocab}")
        vocab = vocab or used
        if fields.setdefault("context", x.shape[1]) != x.shape[1]:
            raise ValueError(f"context {fields['context']} differs from the data's {x.shape[1]} "
                             f"tokens per example; load the data with the same context")
        fields.pop("weight_init", None)
        if "depth" in fields:
            fields["n_blocks"] = fields.pop("depth")
        return TransformerLM(vocab=vocab, **fields)
    given = sorted(set(fields) & {"heads", "context"})
    if given:
        raise ValueError(f"{given} are fields of model 'transformer', not of model {model!r}")
    n_classes = int(max(y.max(), y_test.max())) + 1
    single = n_classes == 2 and fields.get("loss", MLP.loss) != "softmax_cross_entropy"
    out_features = 1 if single else n_classes
    if model == "mlp":
        sizes = {"width": Config.net.width, "depth": Config.net.depth}
        return MLP(in_features=x.shape[1], out_features=out_features, **{**sizes, **fields})
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"model 'conv' needs square one-channel images, but the data has "
                         f"{x.shape[1]} features per example; use model 'mlp'")
    fields.pop("depth", None)
    return ConvNet(input_shape=(side, side, 1), classes=out_features, **fields)
