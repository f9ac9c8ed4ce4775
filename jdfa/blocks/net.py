"""Nets made of Flax layers: a chain of blocks, each ending at a feedback point.

A `BlockNet` is ``depth`` blocks and an output block, built by `BlockNet.build` as Flax NNX
modules. Block ``i`` maps the hidden activation below it (``h_{i-1}``; the input reshaped to
``input_shape`` for the first) to its pre-activation ``a_i`` with any stateless Flax module -- a
Dense or Conv layer, with pooling, flattening or layer norm in front of it -- and
``h_i = f(a_i)`` with the net's ``activation``. ``a_i`` is the *feedback point*: the rule's delta
lands there, exactly where it lands on `jdfa.MLP`'s hidden layers, so ``jdfa.MLP(784, 256, 2, 10)``
is the `FlaxNet` of two ``nnx.Linear`` blocks and an ``nnx.Linear`` output. The output block maps
``h_depth`` to the logits ``a_y`` (N, out_features).

Inputs stay flat, ``(N, prod(input_shape))``, as jdfa's data and driver hand them over; the first
block sees them reshaped to ``(N, *input_shape)`` (channels last, as Flax's Conv reads them).

Flax NNX, not linen: it is the API Flax recommends for new code since 0.11 (linen is kept for
existing code), its modules are plain Python objects a researcher writes and inspects as in
PyTorch, and `nnx.split` / `nnx.merge` turn one into a static graph and a pytree of parameters,
which is all jdfa needs to run each block's VJP inside its own jitted step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jdfa.activations import ACTIVATIONS
from jdfa.chain import ChainNet, ChainParams
from jdfa.losses import LOSSES
from jdfa.model import WEIGHT_INITS, init_weight
from jdfa.net import classes_in
from jdfa.options import option
from jdfa.validate import check_choice, check_int


@dataclasses.dataclass(frozen=True)
class BlockNet(ChainNet):
    """A net of Flax blocks; subclasses define `build`. Frozen and hashable: a static argument of
    jitted functions, as `jdfa.MLP` is. Its parameters are a `jdfa.chain.ChainParams` of Flax
    pure dicts (nested dicts of arrays, as ``nnx.split`` gives them), one per block.

    Attributes:
      input_shape: the shape one example has for the first block, e.g. ``(28, 28, 1)``.
      activation: the non-linearity ``f`` after each block, one of `jdfa.ACTIVATIONS`.
      loss: the output loss, one of `jdfa.LOSSES`.
      dropout: the probability of dropping each unit of a feedback point's ``h_i`` in a training
        step (inverted dropout, as `jdfa.MLP`'s: the mask enters ``f'``).
    """

    steps_alone_on_cpu: ClassVar[bool] = True  # conv weight gradients (`jdfa.net.Net`)

    input_shape: tuple[int, ...] = (28, 28, 1)
    activation: str = option("tanh", "the non-linearity after each block", choices=tuple(ACTIVATIONS))
    loss: str = option("softmax_cross_entropy", "output non-linearity and loss", choices=tuple(LOSSES))
    dropout: float = option(0.0, "probability of dropping a hidden unit in training (0: none; never at "
                                 "evaluation)")

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        for n in self.input_shape:
            check_int("input_shape entries", n, 1)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSSES)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is the probability of dropping a unit and must lie in "
                             f"[0, 1), got {self.dropout}")

    def build(self, rngs: nnx.Rngs) -> Sequence[nnx.Module]:
        """The blocks, bottom-up, then the output block, drawn with ``rngs``."""
        raise NotImplementedError(f"{type(self).__name__} does not define build")

    @functools.cached_property
    def graphdefs(self) -> tuple:
        """The blocks' static graphs (the output block's last), from one abstract build."""
        modules = nnx.eval_shape(lambda: list(self.build(nnx.Rngs(0))))
        if len(modules) < 2:
            raise ValueError(f"{type(self).__name__}.build must return at least one block and the "
                             f"output block, got {len(modules)} module(s)")
        graphdefs = []
        for i, module in enumerate(modules):
            graphdef, state = nnx.split(module)
            extra = [".".join(map(str, path)) for path, v in nnx.to_flat_state(state)
                     if not isinstance(v, nnx.Param)]
            if extra:
                raise ValueError(f"block {i} holds state that is not a parameter ({extra}): jdfa's "
                                 "blocks are stateless layers; use the net's dropout= instead of "
                                 "nnx.Dropout and LayerNorm instead of BatchNorm")
            graphdefs.append(graphdef)
        return tuple(graphdefs)

    @functools.cached_property
    def out_features(self) -> int:
        """The number of logits, from one abstract pass."""
        a_y = jax.eval_shape(self.apply, self.params_shapes, self.batch_struct(1)[0])
        if len(a_y.shape) != 2:
            raise ValueError(f"the output block must return logits of shape (N, out_features), got "
                             f"{a_y.shape[1:]} per example; end it with a flatten and a Dense layer")
        return a_y.shape[1]

    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def f(self) -> Callable[[jax.Array], jax.Array]:
        return ACTIVATIONS[self.activation]

    def point_activation(self):
        return self.f

    def embed(self, x):
        return jnp.reshape(x, (-1,) + self.input_shape)

    def segment_lengths(self):
        """Default: every block lone (a subclass names its runs of identical blocks)."""
        return (None,) * (len(self.graphdefs) - 1)

    def init_params(self, key):
        """Draws the parameters with ``nnx.Rngs(key)``; the same key gives the same bits. A run's
        blocks are drawn one by one, as built, and stacked."""
        modules = list(self.build(nnx.Rngs(key)))
        states = [nnx.to_pure_dict(nnx.split(m)[1]) for m in modules]
        blocks = tuple(jax.tree.map(lambda *a: jnp.stack(a), *states[seg.lo:seg.hi]) if seg.run
                       else states[seg.lo] for seg in self.segments)
        return ChainParams(blocks, states[-1])

    def block_apply(self, i, params, h):
        return nnx.merge(self.graphdefs[i], params)(h)

    def to_dict(self) -> dict:
        """A JSON-ready dict of the net (``model`` names its kind)."""
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {"model": type(self).__name__, **fields}

    def describe(self):
        init = f", {self.weight_init} init" if hasattr(self, "weight_init") else ""
        return f"{type(self).__name__}, {self.depth} feedback points, {self.activation}{init}"


@dataclasses.dataclass(frozen=True)
class FlaxNet(BlockNet):
    """Your own Flax model: ``builder(rngs)`` returns the blocks, bottom-up, then the output block.

    The builder is called once abstractly for the structure and once per `jdfa.init` for the
    parameters, so it must build the same modules every time (draw only from ``rngs``).
    """

    builder: Callable[[nnx.Rngs], Sequence[nnx.Module]] | None = None

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.builder):
            raise TypeError("FlaxNet needs builder=, a function rngs -> [block, ..., output block] "
                            f"of Flax NNX modules; got {self.builder!r}")

    def build(self, rngs):
        return self.builder(rngs)

    @classmethod
    def from_fields(cls, fields):
        raise ValueError(f"a FlaxNet is built by code ({fields.get('builder', '?')}) and cannot be "
                         "rebuilt from its config; pass Config(net=...) with the net itself")

    def to_dict(self):
        name = getattr(self.builder, "__qualname__", repr(self.builder))
        return {**super().to_dict(), "builder": f"{getattr(self.builder, '__module__', '?')}.{name}"}


@dataclasses.dataclass(frozen=True)
class ConvNet(BlockNet):
    """LeNet as Caffe and biotorch define it for MNIST, with jdfa's activation and dropout: a 5x5
    convolution to ``channels[0]`` maps (no padding), then 2x2 max pooling and a 5x5 convolution to
    ``channels[1]``, then 2x2 max pooling, flattening and a Dense layer of ``width`` units, then the
    Dense output layer of ``classes`` units. Three feedback points: the two convolutions' maps and
    the Dense layer; on 28x28 inputs 24x24x20, 8x8x50 and 500 units. Weights are drawn as
    ``weight_init`` says (`jdfa.MLP`'s schemes, a kernel's fan-in its window times its input
    channels; the default ``uniform`` is PyTorch's default for Conv and Linear layers, which
    biotorch's LeNet uses); biases start at zero.
    """

    classes: int = 10
    channels: tuple[int, int] = (20, 50)
    width: int = option(500, "units of the Dense layer after the convolutions (default 500)")
    kernel: int = 5
    weight_init: str = option("uniform", "initialisation of the forward weights", choices=WEIGHT_INITS)
    flag: ClassVar[str | None] = "conv"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "channels", tuple(self.channels))
        check_int("classes", self.classes, 1)
        check_int("width", self.width, 1)
        check_int("kernel", self.kernel, 1)
        check_choice("weight_init", self.weight_init, WEIGHT_INITS)
        if len(self.channels) != 2 or len(self.input_shape) != 3:
            raise ValueError(f"ConvNet takes two conv stages and images (height, width, channels); "
                             f"got channels={self.channels}, input_shape={self.input_shape}")
        if min(map(self._pooled, self.input_shape[:2])) < 1:
            raise ValueError(f"input_shape {self.input_shape} is too small for two {self.kernel}x"
                             f"{self.kernel} conv + 2x2 pool stages")

    @classmethod
    def for_data(cls, data, vocab=None, **fields):
        del vocab  # images, not tokens
        (x, _), _ = data
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"model 'conv' needs square one-channel images, but the data has "
                             f"{x.shape[1]} features per example; use model 'mlp'")
        return cls(input_shape=(side, side, 1), classes=classes_in(data, fields.get("loss", cls.loss)),
                   **fields)

    def _pooled(self, side: int) -> int:
        """An image side after the two conv + pool stages."""
        return ((side - self.kernel + 1) // 2 - self.kernel + 1) // 2

    def build(self, rngs):
        (height, width, c_in), (c1, c2), k = self.input_shape, self.channels, (self.kernel, self.kernel)
        pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
        flat = self._pooled(height) * self._pooled(width) * c2
        init = {"kernel_init": lambda key, shape, dtype=None: init_weight(
            key, shape, self.weight_init, self.activation), "rngs": rngs}
        return [
            nnx.Conv(c_in, c1, k, padding="VALID", **init),
            nnx.Sequential(pool, nnx.Conv(c1, c2, k, padding="VALID", **init)),
            nnx.Sequential(pool, _flatten, nnx.Linear(flat, self.width, **init)),
            nnx.Linear(self.width, self.classes, **init),
        ]


def _flatten(h):
    return h.reshape(h.shape[0], -1)
