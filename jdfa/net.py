"""The net protocol: what every kind of net answers, so that the step, the update, the alignment
measurement, the optimizer, the sharding and the driver never ask which net they hold.

A net is a frozen, hashable object (a static argument of jitted functions) that describes the
architecture; its parameters and feedback are pytrees it draws itself. `jdfa.MLP` (stacked
layers, its own fast path), `jdfa.chain.ChainNet` (any chain of blocks, each ending at a feedback
point, trained by the rule's plan: `jdfa.blocks` Flax nets and nets of your own) implement it.

Shapes: ``N`` is the batch size; ``x`` is (N, in_features) floats for the MLP and the image nets,
(N, T) integer tokens for `jdfa.blocks.TransformerLM` (a net declares its input and label shapes
through `Net.batch_struct` and `Net.check_inputs`); the logits are (N, ..., out_features).
``depth`` is the number of feedback points (hidden layers, blocks).
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jdfa.losses import LOSSES, output_loss

NETS: dict[str, type[Net]] = {}  # class name -> class, for `from_dict`


class Net:
    """The protocol. Subclasses implement every method that raises `NotImplementedError` here;
    defining a subclass registers it for `from_dict` under its class name.

    Every net has the fields ``loss`` (one of `jdfa.LOSSES`) and ``dropout`` and the properties
    ``in_features``, ``out_features`` and ``depth``.
    """

    flag: ClassVar[str | None] = None  # the command line's --model name, if it builds this net
    reads_tokens: ClassVar[bool] = False  # inputs are integer tokens (a text dataset's), not features
    # XLA:CPU runs some ops (a convolution's weight gradient) 7-20x slower inside a loop body than
    # in a program of one step (jax-ml/jax#12868): such nets train one jitted step per call there.
    steps_alone_on_cpu: ClassVar[bool] = False
    # The command line's net flags that name a field of another name on this net (--depth is a
    # TransformerLM's n_blocks): flag -> field, for `jdfa.driver.flags.config_flags`.
    flag_fields: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        NETS[cls.__name__] = cls

    # --- parameters and feedback -----------------------------------------------------------------
    def init_params(self, key: jax.Array) -> Any:
        """The parameters, drawn from ``key`` (the same key gives the same bits)."""
        raise NotImplementedError(f"{type(self).__name__} does not define init_params")

    def init_feedback(self, key: jax.Array, rule) -> Any:
        """The fixed random feedback that ``rule`` reads on this net, drawn from ``key``."""
        raise NotImplementedError(f"{type(self).__name__} does not define init_feedback")

    # --- computing ---------------------------------------------------------------------------------
    def apply(self, params, x: jax.Array) -> jax.Array:
        """The logits (N, ..., out_features) of ``x``, without dropout."""
        raise NotImplementedError(f"{type(self).__name__} does not define apply")

    def compute_update(self, rule, params, feedback, x: jax.Array, y: jax.Array,
                       batch_mode: str = "mean", remat: bool = False, context=None, dropout: bool = True):
        """``(update, (loss, logits))``: ``rule``'s update of every parameter, shaped like
        ``params`` (for ``bp`` the gradient `jax.grad` gives), with the batch-mean loss and the
        logits of the same forward pass. ``context`` (`jdfa.rules.StepContext`) is the training
        step: one half of its key feeds rules that draw per step, the other drops units (unless
        ``dropout`` is False: the net as evaluated); None at evaluation."""
        raise NotImplementedError(f"{type(self).__name__} does not define compute_update")

    def layer_dots(self, u, v) -> jax.Array:
        """(depth + 1,) the inner products of two params-shaped trees, layer by layer (feedback
        points bottom-up, then the output layer): the step's update norms and `jdfa.align`."""
        raise NotImplementedError(f"{type(self).__name__} does not define layer_dots")

    def measured_apply(self, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(apply(params, x), point_norms(params, x))`` from one forward pass: what an evaluation
        of the test set asks for."""
        raise NotImplementedError(f"{type(self).__name__} does not define measured_apply")

    def point_norms(self, params, x: jax.Array) -> jax.Array:
        """(depth,) how large each feedback point's activation ``h_i`` is on ``x`` (after the point
        activation; a transformer's residual stream), bottom-up: `mean_rms`, without dropout. The
        evaluation records it as ``point_norms``. Under `jit` the logits of `measured_apply` that
        this drops are never computed."""
        return self.measured_apply(params, x)[1]

    # --- what the optimizer and the sharding touch -------------------------------------------------
    def weight_mask(self, params):
        """A tree of bools shaped like ``params``: True for the weights weight decay shrinks
        (kernels; never biases or norm scales)."""
        raise NotImplementedError(f"{type(self).__name__} does not define weight_mask")

    def layer_axis_mask(self, params):
        """A tree of bools shaped like ``params``: True for the leaves stacked on a leading layer
        axis, which `jdfa.parallel` may split over devices. Default: none."""
        return jax.tree.map(lambda _: False, params)

    def feedback_layer_axis_mask(self, feedback):
        """`layer_axis_mask` for the feedback. Default: none."""
        return jax.tree.map(lambda _: False, feedback)

    def batch_struct(self, n: int) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
        """The shapes and dtypes of a batch of ``n`` examples ``(x, y)``, for abstract passes.
        Default: float inputs (n, in_features) and integer labels (n,)."""
        return (jax.ShapeDtypeStruct((n, self.in_features), jnp.float32),
                jax.ShapeDtypeStruct((n,), jnp.int32))

    # --- checks ----------------------------------------------------------------------------------
    def check_inputs(self, x, y=None) -> None:
        """Raises a clear error for inputs (and labels) that do not fit the net."""
        raise NotImplementedError(f"{type(self).__name__} does not define check_inputs")

    def check_params(self, params) -> None:
        """Raises ``ValueError`` if ``params`` do not have this net's shapes."""
        raise NotImplementedError(f"{type(self).__name__} does not define check_params")

    def check_feedback(self, rule, feedback) -> None:
        """Raises a clear error if ``feedback`` is not laid out for ``rule`` on this net."""
        raise NotImplementedError(f"{type(self).__name__} does not define check_feedback")

    def check_run(self, rule, batch_mode: str = "mean", remat: bool = False, devices: int = 1) -> None:
        """Raises ``ValueError`` for a run this net cannot train: a rule that does not fit, a batch
        mode, remat or dropout where they cannot apply, a mesh of ``devices`` > 1 it cannot use."""
        raise NotImplementedError(f"{type(self).__name__} does not define check_run")

    # --- describing ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready dict; `from_dict` turns it back into the net where the net can be rebuilt
        from data alone (a net built by code, e.g. a `jdfa.blocks.FlaxNet`, cannot)."""
        raise NotImplementedError(f"{type(self).__name__} does not define to_dict")

    @classmethod
    def for_data(cls, data, vocab: int | None = None, **fields) -> Net:
        """The net of this class fitted to ``data = ((x_train, y_train), (x_test, y_test))`` (NumPy
        arrays): its input and output sizes from the data, the rest from ``fields`` (the class's
        options, `jdfa.options`; one left out takes the command line's default). ``vocab`` is the
        token vocabulary a text dataset declares (None: not declared). How the command line
        builds the net its ``--model`` names (the class's ``flag``)."""
        raise NotImplementedError(f"{cls.__name__} is not built from data by the command line")

    @classmethod
    def from_fields(cls, fields: dict) -> Net:
        """The net of `to_dict`'s fields (without ``model``)."""
        return cls(**fields)

    def describe(self) -> str:
        """The net in a few words, for a run's title."""
        return type(self).__name__


def from_dict(d: dict) -> Net:
    """The net of `Net.to_dict`'s dict (``model`` names its class; absent: `jdfa.MLP`)."""
    d = dict(d)
    model = d.pop("model", "MLP")
    if model not in NETS:
        raise ValueError(f"unknown net {model!r}; the nets jdfa knows are {sorted(NETS)}")
    return NETS[model].from_fields(d)


def command_line_nets() -> dict[str, type[Net]]:
    """The nets the command line builds (``--model``): their ``flag`` -> class, in the order they
    were defined."""
    return {cls.flag: cls for cls in NETS.values() if cls.flag}


def classes_in(data, loss: str) -> int:
    """The outputs a classifier of ``data`` needs: one per class, or a single unit for two classes
    under a sigmoid or squared-error loss (as for XOR)."""
    (_, y), (_, y_test) = data
    n_classes = int(max(y.max(), y_test.max())) + 1
    return 1 if n_classes == 2 and loss != "softmax_cross_entropy" else n_classes


def mean_rms(h: jax.Array, units_from: int) -> jax.Array:
    """() for ``h`` (N, *positions, *units), one point's activations: the RMS over each example's
    units at one position (the axes from ``units_from`` on), averaged over the examples and
    positions."""
    return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(h), axis=tuple(range(units_from, h.ndim)))))


def check_net(net) -> None:
    """Raises ``TypeError`` for anything that is not a `Net`."""
    if not isinstance(net, Net):
        raise TypeError(f"net must implement jdfa.net.Net (jdfa.MLP, a jdfa.blocks net or your own "
                        f"subclass), got {type(net).__name__}")


def apply(net: Net, params, x: jax.Array) -> jax.Array:
    """The logits (N, ..., out_features) of ``net`` on ``x``."""
    return net.apply(params, x)


def predict(net: Net, params, x: jax.Array) -> jax.Array:
    """The network's output ``y_hat = f_y(logits)`` (probabilities for the classification losses)."""
    return LOSSES[net.loss].output(net.apply(params, x))


def loss(net: Net, params, x: jax.Array, y: jax.Array) -> jax.Array:
    """The batch-mean loss of ``net`` on ``(x, y)``, a scalar."""
    net.check_inputs(x, y)
    return output_loss(net, net.apply(params, x), y)


def update_direction(net: Net, rule, params, feedback, x: jax.Array, y: jax.Array,
                     batch_mode: str = "mean", remat: bool = False, context=None):
    """The update direction of ``rule`` for every parameter, shaped like ``params``.

    It plays the role of the gradient: for ``bp`` it equals ``jax.grad(jdfa.loss)``; an optimizer
    steps against it.

    Args:
      feedback: the fixed feedback `jdfa.init` drew; None for a rule that reads none (``bp``,
        ``shallow``).
      x: inputs, (N, in_features) for jdfa's nets.
      y: (N,) integer class labels, or (N, out_features) float targets (a net may declare more
        label axes, e.g. (N, T) tokens).
      batch_mode: one of `jdfa.batch_modes.BATCH_MODES` (the averaged ones: `jdfa.MLP` only).
      remat: DFA on `jdfa.MLP` only: recompute the activations instead of storing them.
      context: the training step (`jdfa.rules.StepContext`): its key drops units when the net has
        dropout and feeds rules that draw per step (`jdfa.mix`, which needs it). None: no unit
        dropped, as at evaluation.
    """
    return net.compute_update(rule, params, feedback_or_none(net, rule, feedback), x, y, batch_mode,
                              remat, context)[0]


def feedback_or_none(net: Net, rule, feedback):
    """``feedback``; for None, the empty feedback of a rule that reads none (``bp``, ``shallow``),
    and a clear error for a rule that reads some."""
    if feedback is not None:
        return feedback
    empty = net.init_feedback(jax.random.key(0), rule)
    if any(leaf.size for leaf in jax.tree.leaves(empty)):
        raise ValueError(f"rule {rule.spec!r} reads fixed random feedback: pass the feedback that "
                         "jdfa.init(key, net, rule) drew with the params")
    return empty
