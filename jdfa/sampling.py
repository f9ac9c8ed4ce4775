"""Text from a trained language model: `generate` draws tokens one at a time, each from the
logits of at most the net's last ``context`` tokens, in one jitted loop.

A language model here is what a net declares, not what it is called: integer tokens in, the next
token at every position out (`is_language_model`: its `batch_struct` has integer inputs and
labels of the same shape (n, T)), and causal (position ``t`` reads positions ``<= t``), as
`jdfa.blocks.TransformerLM` is.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jdfa.net import Net


def is_language_model(net: Net) -> bool:
    """Whether ``net`` reads integer tokens (n, T) and predicts the next token at each of the T
    positions (labels of the inputs' shape), as its `batch_struct` declares."""
    x, y = net.batch_struct(1)
    return (len(x.shape) == 2 and x.shape == y.shape and jnp.issubdtype(x.dtype, jnp.integer)
            and jnp.issubdtype(y.dtype, jnp.integer))


def context_of(net: Net) -> int:
    """The tokens per example ``T`` a language model reads (its `batch_struct`'s)."""
    return net.batch_struct(1)[0].shape[1]


def generate(net: Net, params, prompt, n: int, key: jax.Array, temperature: float = 1.0) -> jax.Array:
    """``n`` tokens that follow ``prompt``, drawn one at a time from ``softmax(logits /
    temperature)`` of the net's next-token logits (``temperature`` 0: the most likely token).

    Args:
      net, params: a causal language model (`is_language_model`) and its parameters.
      prompt: int tokens (P,), P >= 1; only the last ``context`` of them are read (the net sees no
        further back), so a longer prompt is cut to those.
      n: how many tokens to draw.
      key: the draws' key: the same key gives the same tokens.

    Returns:
      int32 (n,): the drawn tokens. Token ``i`` is drawn from the logits of the last ``context``
      tokens of ``prompt`` followed by tokens ``0..i-1`` (fewer while there are fewer), with the key
      ``jax.random.split(key, n)[i]``; one compiled loop per net, ``n`` and prompt length.
    """
    if not is_language_model(net):
        x, y = net.batch_struct(1)
        raise ValueError(f"generate needs a language model (integer tokens (n, T) in, the next token "
                         f"at each position out); this net reads {x.dtype} {x.shape[1:]} and predicts "
                         f"{y.dtype} {y.shape[1:]}")
    prompt = np.asarray(prompt)
    if prompt.ndim != 1 or prompt.size < 1 or not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"the prompt must be a 1-D array of at least one integer token, got "
                         f"{prompt.dtype} {prompt.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0 tokens, got {n}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: the most likely token), got {temperature}")
    prompt = prompt[-context_of(net):].astype(np.int32)
    return _generate(net, n, params, jnp.asarray(prompt), key, jnp.float32(temperature))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _generate(net: Net, n: int, params, prompt: jax.Array, key: jax.Array, temperature) -> jax.Array:
    t, p = context_of(net), prompt.shape[0]
    # The text so far, in a buffer long enough that every window of t tokens lies inside it. While
    # the text is shorter than t, the window holds it first and zeros after: a causal net's logits at
    # the text's last position do not read the zeros.
    text = jnp.zeros(t + n, jnp.int32).at[:p].set(prompt)

    def draw(text, i_key):
        i, k = i_key
        length = p + i
        start = jnp.maximum(length - t, 0)
        window = lax.dynamic_slice(text, (start,), (t,))
        logits = net.apply(params, window[None])[0, length - start - 1]
        sampled = jax.random.categorical(k, logits / jnp.maximum(temperature, 1e-30))
        token = jnp.where(temperature > 0, sampled, jnp.argmax(logits)).astype(jnp.int32)
        return text.at[length].set(token), token

    _, tokens = lax.scan(draw, text, (jnp.arange(n), jax.random.split(key, n)))
    return tokens
