"""The training driver: ``jdfa.train(...)`` from a script, ``python -m jdfa.train ...`` from a shell.

Read top to bottom: a `Config` names the run; `train` loads the data onto the device, builds the
net, the rule and the optimizer, then alternates between a jitted `lax.scan` of many training steps
(batches drawn on the device, so Python is not in the inner loop) and an evaluation that appends one
line to ``metrics.jsonl``. The run's folder gets ``config.json``, ``metrics.jsonl``, ``curves.png``
and, with ``tensorboard=True``, TensorBoard event files.

Batches: epoch ``k`` visits the training set in the order ``permutation(fold_in(data_key, k))``,
dropping the last incomplete batch; step ``s`` takes batch ``s mod steps_per_epoch`` of epoch
``s div steps_per_epoch``. The data order is a function of the seed and the step alone, so the
same seed gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jdfa import model, parallel, rules
from jdfa.alignment import alignment
from jdfa.checkpoint import Checkpoints
from jdfa.model import MLP
from jdfa.step import init_train_state, train_step

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine")
ON_DIVERGE = ("stop", "rollback")


@dataclasses.dataclass
class Config:
    """Everything that defines a run; every field is a command-line flag (``--block-size`` for
    ``block_size``)."""

    dataset: str = "mnist"
    rule: str = "dfa"
    bp_depth: int = 1
    block_size: int = 25
    boundary: str = "direct"
    use_derivative: bool = True
    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    shared_feedback: bool = False
    depth: int = 2
    width: int = 256
    activation: str = "tanh"
    loss: str = "softmax_cross_entropy"
    weight_init: str = "uniform"
    steps: int = 1000
    batch_size: int = 64
    batch_mode: str = "mean"
    remat: bool = False  # DFA only: recompute activations instead of storing them
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    weight_decay: float = 0.0  # decoupled decay of the weight matrices (not biases), see make_optimizer
    seed: int = 0
    eval_every: int = 500
    align_every: int = 0  # 0: never; else every N steps (a multiple of eval_every reads best)
    train_eval_size: int = 10000  # training accuracy is measured on this many fixed examples
    data_dir: str | None = None
    out: str | None = None
    tensorboard: bool = False
    progress: bool = True
    checkpoint: bool = True  # with out: write orbax checkpoints to out/checkpoints
    checkpoint_every: int = 0  # 0: only at the end; else every N steps too
    keep_checkpoints: int = 3
    resume: bool = False  # continue from the newest readable checkpoint in out/checkpoints
    on_diverge: str = "stop"  # or "rollback": back to the last good checkpoint, lr * rollback_factor
    rollback_factor: float = 0.5
    max_rollbacks: int = 3
    mesh_data: int = 1  # devices on the data axis (batch split)
    mesh_layers: int = 1  # devices on the layers axis (stacked hidden layers split)
    distributed: bool = False  # jax.distributed.initialize() first (TPU pods, multi-host GPU)

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "train_eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("align_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.on_diverge not in ON_DIVERGE:
            raise ValueError(f"unknown on_diverge {self.on_diverge!r}; expected one of {list(ON_DIVERGE)}")
        if self.resume and not (self.out and self.checkpoint):
            raise ValueError("resume needs out (the run folder whose checkpoints to continue from) "
                             "and checkpoint=True")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {list(SCHEDULES)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


def make_rule(cfg: Config) -> rules.Rule:
    if cfg.rule in ("bp", "shallow"):
        return rules.Rule(cfg.rule)
    return rules.Rule(cfg.rule,
                      bp_depth=cfg.bp_depth if cfg.rule == "fp" else 0,
                      block_size=cfg.block_size if cfg.rule == "bdfa" else 1,
                      boundary=cfg.boundary if cfg.rule == "bdfa" else "direct",
                      use_derivative=cfg.use_derivative, feedback_init=cfg.feedback_init,
                      feedback_scale=float(cfg.feedback_scale), shared_feedback=cfg.shared_feedback)


def make_optimizer(cfg: Config, lr_scale: float = 1.0) -> optax.GradientTransformation:
    """The optimizer of ``cfg`` at ``lr_scale`` times its learning rate, with the lr schedule and,
    if ``cfg.weight_decay > 0``, `decoupled_weight_decay` after the optimizer's own step."""
    lr = cfg.lr * lr_scale
    lr = optax.cosine_decay_schedule(lr, cfg.steps) if cfg.schedule == "cosine" else lr
    optimizer = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=0.9),
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr),
        "rmsprop": lambda: optax.rmsprop(lr),
    }[cfg.optimizer]()
    if cfg.weight_decay == 0:
        return optimizer
    return optax.chain(optimizer, decoupled_weight_decay(cfg.weight_decay, lr))


def decoupled_weight_decay(weight_decay: float, lr) -> optax.GradientTransformation:
    """Adds ``-lr_t * weight_decay * W`` to the update of every weight matrix ``W`` (the ``w`` of
    each `Dense`; biases are left alone), ``lr_t`` following the schedule ``lr`` (a float or an
    optax schedule). This is Loshchilov & Hutter's decoupled decay: unlike an L2 term in the loss,
    Adam's and RMSprop's per-parameter scaling does not shrink it."""

    def is_weight(path, _):
        return getattr(path[-1], "name", None) == "w"

    def init(params):
        del params
        return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params):
        rate = lr(state.count) if callable(lr) else lr
        mask = jax.tree_util.tree_map_with_path(is_weight, params)
        updates = jax.tree.map(lambda u, p, m: u - rate * weight_decay * p if m else u, updates, params, mask)
        return updates, optax.ScaleByScheduleState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def load_data(cfg: Config):
    """``((x_train, y_train), (x_test, y_test))`` as NumPy arrays, via `jdfa.data.load`."""
    from jdfa import data

    return data.load(cfg.dataset, "train", cfg.data_dir), data.load(cfg.dataset, "test", cfg.data_dir)


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init, data, eval)`` keys of a run: params and feedback, the data order (`batch_indices`),
    and the fixed examples of the training-accuracy and alignment measurements."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def epoch_order(data_key, epoch, n_train: int) -> jax.Array:
    """The order (n_train,) in which epoch ``epoch`` visits the training examples."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n_train)


def batch_indices(data_key, step, n_train: int, batch_size: int) -> jax.Array:
    """The training examples (batch_size,) of the batch at counter ``step`` (the ``step + 1``-th
    step): a slice of epoch ``step // steps_per_epoch``'s order; the last partial batch is dropped."""
    steps_per_epoch = n_train // batch_size
    order = epoch_order(data_key, step // steps_per_epoch, n_train)
    return lax.dynamic_slice_in_dim(order, (step % steps_per_epoch) * batch_size, batch_size)


def make_chunk(net: MLP, rule: rules.Rule, optimizer, cfg: Config, n_train: int, data_key,
               mesh=None):
    """Returns the jitted ``(state, x, y, n_steps) -> (state, metrics)`` that runs ``n_steps``
    training steps in one `lax.scan`, drawing each batch on the device (as `batch_indices` says;
    the epoch's permutation is drawn once per epoch and carried). Metrics are stacked per step.
    With a ``mesh``, each batch is split over its ``data`` axis and the state laid out as
    `jdfa.parallel.state_sharding` says."""
    batch = cfg.batch_size
    steps_per_epoch = n_train // batch

    def permutation(epoch):
        return epoch_order(data_key, epoch, n_train)

    def chunk(state, x, y, n_steps):
        def body(carry, _):
            state, order = carry
            epoch, i = state.step // steps_per_epoch, state.step % steps_per_epoch
            order = lax.cond(i == 0, lambda: permutation(epoch), lambda: order)
            idx = lax.dynamic_slice_in_dim(order, i * batch, batch)
            xb, yb = x[idx], y[idx]
            if mesh is not None:
                xb = lax.with_sharding_constraint(xb, parallel.batch_sharding(mesh))
                yb = lax.with_sharding_constraint(yb, parallel.batch_sharding(mesh))
            state, metrics = train_step(net, rule, optimizer, state, xb, yb, cfg.batch_mode,
                                        cfg.remat)
            return (state, order), metrics

        order = permutation(state.step // steps_per_epoch)
        (state, _), metrics = lax.scan(body, (state, order), None, length=n_steps)
        return state, metrics

    if mesh is None:
        return jax.jit(chunk, static_argnums=3)
    abstract = jax.eval_shape(lambda: init_train_state(jax.random.key(0), net, rule, optimizer))
    states, rep = parallel.state_sharding(mesh, abstract), parallel.replicated(mesh)
    return jax.jit(chunk, static_argnums=3, in_shardings=(states, rep, rep),
                   out_shardings=(states, rep))


def evaluate(net: MLP, params, x, y, batch: int = 2000) -> dict[str, float]:
    """Mean loss and accuracy of ``params`` on ``(x, y)`` (device arrays), in batches."""
    fn = _eval_fn(net)
    totals = np.zeros(2)
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        totals += np.asarray(fn(params, xb, yb)) * xb.shape[0]
    loss, acc = totals / x.shape[0]
    return {"loss": float(loss), "accuracy": float(acc)}


@functools.lru_cache(maxsize=None)
def _eval_fn(net: MLP):
    """The jitted ``(params, x, y) -> [loss, accuracy]`` of ``net``, compiled once per net."""

    def fn(params, x, y):
        a_y = model.apply(net, params, x)
        return jnp.stack([model.output_loss(net, a_y, y), model.accuracy(net, a_y, y)])

    return jax.jit(fn)


def _next_stop(step: int, cfg: Config) -> int:
    """The next step after ``step`` at which the loop evaluates, measures alignment or saves."""
    every = [cfg.eval_every] + [n for n in (cfg.align_every, cfg.checkpoint_every) if n]
    return min([cfg.steps] + [(step // n + 1) * n for n in every])


def train(config: Config | None = None, *, data=None, **overrides) -> dict[str, Any]:
    """Trains a net as ``config`` (plus keyword ``overrides`` of its fields) says.

    Args:
      data: optional ``((x_train, y_train), (x_test, y_test))`` NumPy arrays to use instead of
        ``config.dataset`` (images flattened to (n, features), integer labels).
    A SIGINT or SIGTERM during the run saves a checkpoint and returns with status
    "interrupted" (it does not raise): a script looping over runs should check the status.

    Returns:
      a summary: ``status`` ("finished", "diverged" or "interrupted"), ``step``, the last
      evaluation's ``train_accuracy`` / ``test_accuracy`` / ``test_loss``, ``steps_per_s``,
      ``out``, ``rollbacks`` and the final ``state`` (a `TrainState`; after a divergence, the last
      state whose steps were all finite).
    """
    cfg = dataclasses.replace(config or Config(), **overrides)
    rule = make_rule(cfg)  # bad rule options fail before any data is read
    if cfg.distributed:
        parallel.initialize_distributed()
    (x_train, y_train), (x_test, y_test) = data if data is not None else load_data(cfg)
    if cfg.batch_size > len(x_train):
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(x_train)} training examples")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    # Two classes under a sigmoid or squared-error output: one output unit, as in the XOR example.
    out_features = 1 if n_classes == 2 and cfg.loss != "softmax_cross_entropy" else n_classes
    net = MLP(x_train.shape[1], cfg.width, cfg.depth, out_features, cfg.activation, cfg.loss,
              cfg.weight_init)
    rule.check(net)
    mesh = None
    if cfg.mesh_data * cfg.mesh_layers > 1:
        mesh = parallel.make_mesh(cfg.mesh_data, cfg.mesh_layers)
        parallel.check_batch(mesh, cfg.batch_size)

    k_init, k_data, k_align = run_keys(cfg.seed)
    x, y = jnp.asarray(x_train), jnp.asarray(y_train)
    xt, yt = jnp.asarray(x_test), jnp.asarray(y_test)
    n_eval = min(cfg.train_eval_size, len(x_train))
    eval_idx = jax.random.choice(k_align, len(x_train), (n_eval,), replace=False)
    x_eval, y_eval = x[eval_idx], y[eval_idx]
    x_align, y_align = x_eval[:256], y_eval[:256]
    align = jax.jit(lambda p, f: alignment(net, rule, p, f, x_align, y_align, cfg.batch_mode))

    lr_scale = 1.0
    optimizer = make_optimizer(cfg)
    state = init_train_state(k_init, net, rule, optimizer)
    if mesh is not None:
        state = parallel.shard_state(mesh, state)
    checkpoints = (Checkpoints(Path(cfg.out) / "checkpoints", cfg.keep_checkpoints)
                   if cfg.out and cfg.checkpoint else None)
    if cfg.resume:
        restored = checkpoints.restore_latest(state)
        if restored is None:
            raise ValueError(f"resume: no readable checkpoint in {checkpoints.directory}")
        state = restored
    elif checkpoints is not None and cfg.on_diverge == "rollback":
        checkpoints.save(state)  # a rollback always has somewhere to go
    log = _RunLog(cfg, net, rule, resumed_at=int(state.step) if cfg.resume else None)
    chunk = make_chunk(net, rule, optimizer, cfg, len(x_train), k_data, mesh)

    bar = _progress(cfg, int(state.step))
    start, start_step = time.perf_counter(), int(state.step)
    status, rollbacks = "finished", 0
    with _SignalFlag() as interrupted:
        while int(state.step) < cfg.steps:
            before = int(state.step)
            stop = _next_stop(before, cfg)
            new_state, m = chunk(state, x, y, stop - before)
            m = jax.tree.map(np.asarray, m)
            if not m["finite"].all():
                bad = int(np.argmin(m["finite"]))
                can_roll_back = (cfg.on_diverge == "rollback" and rollbacks < cfg.max_rollbacks
                                 and checkpoints is not None and checkpoints.steps())
                log.diverged(before, before + bad + 1, m["layer_update_norms"][bad],
                             time.perf_counter() - start, rollback=bool(can_roll_back))
                if not can_roll_back:
                    status = "diverged"
                    break
                rollbacks += 1
                lr_scale *= cfg.rollback_factor
                optimizer = make_optimizer(cfg, lr_scale)
                chunk = make_chunk(net, rule, optimizer, cfg, len(x_train), k_data, mesh)
                state = checkpoints.restore_latest(state)
                log.truncate(int(state.step))
                log.write({"step": int(state.step), "rollback": rollbacks, "lr": cfg.lr * lr_scale})
                bar.n = int(state.step)
                continue
            state = new_state
            record = {"step": stop, "wall_s": round(time.perf_counter() - start, 3),
                      "loss": _round(m["loss"].mean()), "batch_accuracy": _round(m["accuracy"].mean()),
                      "update_norm": _round(m["update_norm"][-1]),
                      "layer_update_norms": [_round(v) for v in m["layer_update_norms"][-1]]}
            if stop % cfg.eval_every == 0 or stop == cfg.steps:
                record["train_accuracy"] = _round(evaluate(net, state.params, x_eval, y_eval)["accuracy"])
                test = evaluate(net, state.params, xt, yt)
                record["test_accuracy"], record["test_loss"] = _round(test["accuracy"]), _round(test["loss"])
            if cfg.align_every and stop % cfg.align_every == 0:
                al = align(state.params, state.feedback)
                record["alignment_angle"] = np.asarray(al.angle).round(3).tolist()
                record["alignment_norm_ratio"] = np.asarray(al.norm_ratio).round(5).tolist()
            record["steps_per_s"] = round((stop - start_step) / record["wall_s"], 2)
            log.write(record)
            if checkpoints is not None and (
                    stop == cfg.steps or (cfg.checkpoint_every and stop % cfg.checkpoint_every == 0)):
                checkpoints.save(state)
            bar.update(stop - before)
            bar.set_postfix(loss=f"{record['loss']:.4f}", **{
                k: f"{log.last[k]:.4f}" for k in ("train_accuracy", "test_accuracy") if k in log.last})
            if interrupted.is_set and int(state.step) < cfg.steps:
                if checkpoints is not None:
                    checkpoints.save(state)
                print(f"interrupted by {interrupted.name} at step {int(state.step)}; "
                      + (f"checkpoint saved in {checkpoints.directory}, continue with --resume"
                         if checkpoints is not None else "no out folder, nothing saved"))
                status = "interrupted"
                break
    bar.close()
    if checkpoints is not None:
        checkpoints.close()
    summary = {"status": status, "step": int(state.step), "rule": str(rule),
               "steps_per_s": round((int(state.step) - start_step)
                                    / max(time.perf_counter() - start, 1e-9), 2),
               **log.last, "rollbacks": rollbacks, "out": cfg.out}
    log.close(summary)
    return {**summary, "state": state}


class _SignalFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each chunk, so that a Ctrl-C saves
    a checkpoint and exits cleanly; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.is_set, self.name, self._old = False, None, {}

    def _handle(self, signum, frame):
        if self.is_set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.is_set, self.name = True, signal.Signals(signum).name
        print(f"{self.name} received: stopping after the current chunk of steps")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _round(value) -> float:
    return round(float(value), 6)


def _progress(cfg, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=initial, disable=not cfg.progress, unit="step",
                dynamic_ncols=True)


class _RunLog:
    """The run's folder: config, metrics lines, curves and (optionally) TensorBoard events.

    On resume, lines past the restored step are dropped, so the file reads as one run."""

    def __init__(self, cfg: Config, net: MLP, rule: rules.Rule, resumed_at: int | None = None):
        self.records: list[dict] = []
        self.last: dict[str, float] = {}
        self.dir = Path(cfg.out) if cfg.out else None
        self.tb = None
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = {"config": dataclasses.asdict(cfg), "net": dataclasses.asdict(net), "rule": str(rule),
                "jax": jax.__version__, "device": jax.devices()[0].device_kind,
                "device_count": jax.device_count()}
        (self.dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        self.path = self.dir / "metrics.jsonl"
        if resumed_at is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                record = json.loads(line)
                if record["step"] <= resumed_at and not record.get("diverged"):
                    self._remember(record)
        self._rewrite()
        if cfg.tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as err:
                raise ImportError("--tensorboard needs tensorboardX: pip install 'jdfa[tensorboard]'") from err
            self.tb = SummaryWriter(str(self.dir / "tensorboard"))

    def _remember(self, record: dict) -> None:
        self.records.append(record)
        self.last.update({k: v for k, v in record.items() if "accuracy" in k or k == "test_loss"})

    def _rewrite(self) -> None:
        self.metrics = open(self.path, "w")
        for record in self.records:
            self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()

    def truncate(self, step: int) -> None:
        """Forgets the records after ``step`` (a rollback), keeping divergence notes."""
        self.records = [r for r in self.records if r["step"] <= step or r.get("diverged")]
        if self.dir is not None:
            self.metrics.close()
            self._rewrite()

    def write(self, record: dict) -> None:
        self._remember(record)
        if self.dir is None:
            return
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, float) and key != "wall_s":
                    self.tb.add_scalar(key, value, record["step"])
            for i, angle in enumerate(record.get("alignment_angle", [])):
                self.tb.add_scalar(f"alignment_angle/layer_{i + 1}", angle, record["step"])

    def diverged(self, kept: int, step: int, norms: np.ndarray, wall: float, rollback: bool) -> None:
        layers = [int(i) + 1 for i in np.flatnonzero(~np.isfinite(norms))]
        where = (f"update of layer(s) {layers} (layer {len(norms)} is the output layer)"
                 if layers else "loss")
        then = ("rolling back to the last good checkpoint with a lower learning rate" if rollback
                else f"stopped; the state after step {kept} and all logs are kept. Lower the "
                     "learning rate or the feedback scale, or pass --on-diverge rollback")
        message = f"training diverged: non-finite {where} at step {step}; {then}."
        print(message)
        self.write({"step": step, "wall_s": round(wall, 3), "diverged": True,
                    "nonfinite_layers": layers, "message": message})

    def close(self, summary: dict) -> None:
        if self.dir is None:
            return
        self.metrics.close()
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.tb is not None:
            self.tb.close()
        plot_curves(self.records, self.dir / "curves.png", title=summary["rule"])


def plot_curves(records: list[dict], path: Path, title: str = "") -> None:
    """Loss, accuracy and (if measured) per-layer alignment angle against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if "loss" in r]
    aligned = [r for r in records if "alignment_angle" in r]
    fig, axes = plt.subplots(1, 3 if aligned else 2, figsize=(15 if aligned else 10, 4))
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records], label="train loss (batch mean)")
    ev = [r for r in records if "test_loss" in r]
    axes[0].plot([r["step"] for r in ev], [r["test_loss"] for r in ev], label="test loss")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].legend()
    for key in ("train_accuracy", "test_accuracy"):
        axes[1].plot([r["step"] for r in ev], [r[key] for r in ev], marker=".", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("accuracy")
    axes[1].legend()
    if aligned:
        angles = np.array([r["alignment_angle"] for r in aligned])
        cmap = plt.get_cmap("viridis")
        for i in range(angles.shape[1]):
            axes[2].plot([r["step"] for r in aligned], angles[:, i], color=cmap(i / max(angles.shape[1] - 1, 1)),
                         lw=1)
        axes[2].set_xlabel("step")
        axes[2].set_ylabel("angle to BP update (deg), layer 1 (dark) .. output (light)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
