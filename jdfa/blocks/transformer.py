"""A causal decoder-only transformer language model, as a chain of Flax blocks.

`TransformerLM` reads ``T = context`` integer tokens per example and gives logits (N, T, vocab):
the next token's at every position. Its chain (`jdfa.chain.ChainNet`):

* block 0, `Embedding`: token and position embeddings, ``h_0 = E[x] + P`` (N, T, d);
* blocks 1..n_blocks, `DecoderBlock`: causal self-attention and an MLP on the residual stream,
  pre-norm (``norm="pre"``, GPT-2's order) ``h <- h + attn(LN(h))``, ``h <- h + mlp(LN(h))``, or
  post-norm (``norm="post"``, the original Transformer's order, which Launay et al. 2020 train by
  DFA) ``h <- LN(h + attn(h))``, ``h <- LN(h + mlp(h))``;
* the output block: the final layer norm and the unembedding, (N, T, d) -> (N, T, vocab). Post-norm
  keeps it too (its blocks' output is normed already, so it only adds a learned scale and shift):
  the output block and the feedback points are the same for both orders.

Feedback points: the residual stream after the embedding and after each block (post-norm: the
block's normed output, Launay et al.'s "macro" DFA point), ``n_blocks + 1`` points of shape (T, d)
with no point activation. Feedback is per token (``position_axes = 1``):
DFA's delta at point ``i`` is ``B_i e_t`` at every position ``t``, ``B_i`` (d, vocab), ``e`` (N, T,
vocab) the gradient of the per-token mean cross-entropy; each block's parameters update from its
own VJP at its delta, the embeddings from the first point's. Every rule with a plan trains it:
BP (equal to `jax.grad`), FA (the block above's weight matrices redrawn for its input VJP), DFA,
FP and BDFA (blocks of decoder blocks; the delta-reading ``B`` are (d, d) per token), mix.
``shared_feedback``: one ``B`` for every point, as Launay et al. 2020 and Filipovich et al. 2022
use. The shallow control freezes the decoder blocks and trains the embeddings (by their true
gradient through the frozen blocks) and the output block.

Micro feedback points (``feedback_points="micro"``, Launay et al.'s "micro" DFA): each decoder
block marks two more points inside it (`jdfa.chain_points`), so it has three: the stream after the
attention's residual sum (post-norm: after its norm), (T, d); the MLP's hidden activation, (T, 4d);
the block's output, (T, d). Each reads its own ``B`` (DFA: (d, vocab), (4d, vocab), (d, vocab)
per token) and each piece of the block -- the attention and its norm, the MLP's up projection (and
pre-norm its norm), its down projection (post-norm with the second norm) -- is trained by backprop
inside the piece from its own point's delta, none across a point. The plan still gives one source
per block, which its three points read: ``fp(1)`` trains the top block by backprop from its true
output delta and every point below from that delta through its (., d) ``B``; a true step (BP,
FA's, mix's, BDFA's boundary) reaches the inner points by backprop inside the block, so BP is
`jax.grad`. ``shared_feedback``: one ``B`` per shape, the stream's (d, .) and the MLP's (4d, .).
The stacked run stays one scan.

Initialisation as GPT-2's: weights and embeddings normal with std 0.02, the projections into the
residual stream (attention output, MLP down) 0.02 / sqrt(2 n_blocks), biases zero, norms one
(for either norm order).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdfa.activations import ACTIVATIONS
from jdfa.blocks.net import BlockNet
from jdfa.options import option
from jdfa.validate import check_choice, check_int

STD = 0.02
NORMS = ("pre", "post")  # where a decoder block's layer norms sit (`TransformerLM.norm`)
FEEDBACK_POINTS = ("block", "micro")  # a decoder block's points (`TransformerLM.feedback_points`)


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention where position ``t`` reads positions ``<= t``; q, k, v (N, T, heads,
    d_head) -> (N, T, heads, d_head)."""
    t = q.shape[1]
    scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) / np.sqrt(q.shape[-1]).astype(np.float32)
    causal = jnp.tril(jnp.ones((t, t), bool))
    weights = jax.nn.softmax(jnp.where(causal, scores, jnp.finfo(scores.dtype).min), axis=-1)
    return jnp.einsum("nhqk,nkhd->nqhd", weights, v)


def _same(a):
    return a


class Embedding(nnx.Module):
    """Token and learned position embeddings: int (N, T) -> (N, T, width)."""

    def __init__(self, vocab: int, context: int, width: int, rngs: nnx.Rngs):
        init = nnx.initializers.normal(STD)
        self.tokens = nnx.Embed(vocab, width, embedding_init=init, rngs=rngs)
        self.positions = nnx.Param(init(rngs.params(), (context, width)))

    def __call__(self, x):
        return self.tokens(x) + self.positions[...][: x.shape[1]]


class DecoderBlock(nnx.Module):
    """A decoder block on the residual stream (N, T, width), its layer norms before each sublayer
    (``norm="pre"``) or after each residual sum (``"post"``)."""

    def __init__(self, width: int, heads: int, activation: str, n_blocks: int, norm: str, rngs: nnx.Rngs):
        dense = nnx.initializers.normal(STD)
        into_stream = nnx.initializers.normal(STD / math.sqrt(2 * n_blocks))
        self.heads, self.activation, self.norm = heads, activation, norm
        self.norm_attention = nnx.LayerNorm(width, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, kernel_init=dense, rngs=rngs)
        self.out = nnx.Linear(width, width, kernel_init=into_stream, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, kernel_init=dense, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, kernel_init=into_stream, rngs=rngs)

    def attention(self, h):
        n, t, d = h.shape
        q, k, v = jnp.split(self.qkv(h).reshape(n, t, 3 * self.heads, -1), 3, axis=2)
        return self.out(causal_attention(q, k, v).reshape(n, t, d))

    def hidden(self, h):
        return ACTIVATIONS[self.activation](self.up(h))

    def __call__(self, h, point=_same):
        """The block's output; ``point`` marks the points inside it (`jdfa.chain_points`): the
        stream after the attention's residual sum (and its norm, post-norm) and the MLP's hidden
        activation."""
        if self.norm == "post":
            h = point(self.norm_attention(h + self.attention(h)))
            return self.norm_mlp(h + self.down(point(self.hidden(h))))
        h = point(h + self.attention(self.norm_attention(h)))
        return h + self.down(point(self.hidden(self.norm_mlp(h))))


@dataclasses.dataclass(frozen=True)
class TransformerLM(BlockNet):
    """A causal transformer language model; see the module docstring.

    Attributes:
      vocab: the number of token values (logits per position).
      context: tokens per example, ``T``.
      width: the residual stream's size, ``d`` (d_model).
      n_blocks: decoder blocks (the command line's ``--depth``); feedback points: ``n_blocks + 1``.
      heads: attention heads; ``width`` must be a multiple of it.
      activation: the MLP's non-linearity inside each block (the feedback points have none).
      norm: where each decoder block's layer norms sit, one of `NORMS`: ``"pre"`` (GPT-2) or
        ``"post"`` (the original Transformer's, Launay et al. 2020's for DFA); see the module
        docstring. The command line's ``--norm``.
      feedback_points: each decoder block's feedback points, one of `FEEDBACK_POINTS`:
        ``"block"`` (its output: Launay et al.'s "macro" DFA) or ``"micro"`` (three, see the module
        docstring). The command line's ``--feedback-points``.
      loss, dropout: as `BlockNet`'s; dropout drops units of the residual stream after each block.
    """

    vocab: int = 256
    context: int = option(64, "tokens per example (default 64)", sweepable=False)  # the data's: one a sweep
    width: int = option(128, "the residual stream's size, d_model (default 128)")
    n_blocks: int = option(4, "decoder blocks (default 4)")
    heads: int = option(4, "attention heads (default 4)")
    activation: str = option("gelu", "the non-linearity inside each block's MLP", choices=tuple(ACTIVATIONS))
    norm: str = option("pre", "where each block's layer norms sit: pre (GPT-2) or post (the original "
                              "Transformer's, Launay et al.'s for DFA)", choices=NORMS)
    feedback_points: str = option("block", "feedback points of each decoder block: block (its output; "
                                           "Launay et al.'s macro DFA) or micro (three: after the "
                                           "attention's residual sum, the MLP's hidden activation, "
                                           "the output)", choices=FEEDBACK_POINTS)
    flag: ClassVar[str | None] = "transformer"
    reads_tokens: ClassVar[bool] = True
    flag_fields: ClassVar[dict[str, str]] = {"depth": "n_blocks"}
    steps_alone_on_cpu: ClassVar[bool] = False  # no convolutions
    position_axes: ClassVar[int] = 1
    shallow_trains_embedding: ClassVar[bool] = True

    def __post_init__(self):
        for name in ("vocab", "context", "width", "n_blocks", "heads"):
            check_int(name, getattr(self, name), 1)
        check_choice("norm", self.norm, NORMS)
        check_choice("feedback_points", self.feedback_points, FEEDBACK_POINTS)
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads} (each head "
                             f"reads width / heads features)")
        object.__setattr__(self, "input_shape", (self.context,))
        super().__post_init__()

    def build(self, rngs):
        head = nnx.Sequential(nnx.LayerNorm(self.width, rngs=rngs),
                              nnx.Linear(self.width, self.vocab, kernel_init=nnx.initializers.normal(STD),
                                         rngs=rngs))
        return [Embedding(self.vocab, self.context, self.width, rngs),
                *(DecoderBlock(self.width, self.heads, self.activation, self.n_blocks, self.norm, rngs)
                  for _ in range(self.n_blocks)), head]

    @property
    def out_features(self) -> int:
        return self.vocab

    @classmethod
    def for_data(cls, data, vocab=None, **fields):
        """Its vocabulary ``vocab`` (the dataset's; None: the largest token + 1), its context the
        data's."""
        (x, y), (x_test, y_test) = data
        used = int(max(x.max(), y.max(), x_test.max(), y_test.max())) + 1
        if vocab is not None and used > vocab:
            raise ValueError(f"the data holds token {used - 1}, outside its declared vocabulary of {vocab}")
        if fields.setdefault("context", x.shape[1]) != x.shape[1]:
            raise ValueError(f"context {fields['context']} differs from the data's {x.shape[1]} "
                             f"tokens per example; load the data with the same context")
        return cls(vocab=vocab or used, **fields)

    def segment_lengths(self):
        """The embedding, then the decoder blocks as one stacked run."""
        return (None, self.n_blocks)

    def point_activation(self):
        return None

    def marks_points(self, i):
        """Micro: every decoder block marks its two inner points."""
        return self.feedback_points == "micro" and 0 < i <= self.n_blocks

    def block_apply(self, i, params, h, point=None):
        module = nnx.merge(self.graphdefs[i], params)
        return module(h) if point is None else module(h, point)

    def batch_struct(self, n):
        tokens = jax.ShapeDtypeStruct((n, self.context), jnp.int32)
        return tokens, tokens

    def check_inputs(self, x, y=None):
        for name, a in (("tokens x", x), ("labels y", y)):
            if a is None:
                continue
            shape, dtype = jnp.shape(a), jnp.result_type(a)
            if len(shape) != 2 or shape[1] != self.context or not jnp.issubdtype(dtype, jnp.integer):
                raise ValueError(f"{name} must be integer tokens (batch, context={self.context}), got "
                                 f"{dtype} {shape}; a text dataset (jdfa.data.load('sotu', split, "
                                 f"context={self.context})) gives them")
            # values are checked on the host (data handed to the driver); inside jit, the step's
            # label guard catches tokens out of range
            if isinstance(a, np.ndarray) and a.size and not (0 <= a.min() and a.max() < self.vocab):
                raise ValueError(f"{name} holds tokens outside [0, vocab={self.vocab}): "
                                 f"[{a.min()}, {a.max()}]; raise vocab")
        if y is not None and jnp.shape(y)[0] != jnp.shape(x)[0]:
            raise ValueError(f"x and y must have the same batch size, got {jnp.shape(x)[0]} and "
                             f"{jnp.shape(y)[0]}")

    def describe(self):
        points = ", micro feedback points" if self.feedback_points == "micro" else ""
        return (f"TransformerLM, {self.n_blocks} {self.norm}-norm blocks x {self.width} ({self.heads} "
                f"heads){points}, context {self.context}, vocab {self.vocab}")
