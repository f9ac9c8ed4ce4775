"""The learning rules: how each rule forms the delta of every hidden layer.

All rules share one forward pass (`jdfa.model.forward`) and one weight-gradient contraction
(`jdfa.update.weight_update`); they differ only here, in how ``delta_i`` is formed. The output layer
always gets ``e = dLoss/da_y``. Hidden layers are indexed ``i = 1 .. depth`` from the input side;
``W_{depth+1}`` is the output layer's weight. In the papers' column-vector notation:

* ``bp``:  ``delta_i = (W_{i+1}^T delta_{i+1}) * f'(a_i)``                  (exact gradient)
* ``fa``:  ``delta_i = (B_i delta_{i+1}) * f'(a_i)``, ``B_depth`` (width, out), others (width, width)
* ``dfa``: ``delta_i = (B_i e) * f'(a_i)``, every ``B_i`` (width, out)
* ``fp(k)``: the top ``k`` layers get BP deltas; a lower layer ``i`` gets ``(B_i delta_j) * f'(a_i)``
  where ``j = depth - k + 1`` is the lowest BP layer. ``fp(0) == dfa``, ``fp(depth) == bp``.
* ``bdfa(K, "direct")``: layers cut into blocks of ``K`` from the output side (the input-side block
  may be smaller); the top block is DFA from ``e``; a layer of a lower block gets ``(B_i s) * f'(a_i)``
  where ``s`` is the delta of the lowest layer of the block above. This is the paper's text: "each
  subsequent block of DFA trained layers takes its delta from the last layer of the preceding block".
* ``bdfa(K, "backprop")``: the top layer of each block gets the true BP step through ``W^T`` from the
  layer just above it (for the top block, the output layer); the other layers of the block get
  ``(B_i t) * f'(a_i)`` from that top delta ``t``. The paper's figure 5 can be read this way: the
  gradient "passed through between blocks" crosses each boundary through the forward weights.
* ``shallow``: no hidden deltas; only the output layer learns (the control).

Every non-BP rule takes ``use_derivative=False`` to drop ``f'(a_i)`` from its feedback deltas
(Blocked-DFA paper, future-work question 1); BP deltas inside ``fp`` and ``bdfa(..., "backprop")``
keep it, since they are exact gradients.

Parallelism: DFA's deltas come from one einsum over the layer axis. BDFA is sequential only over
blocks (a `lax.scan` of ``depth / K`` steps, each one batched einsum over the block's layers); with
``"direct"`` no forward weight is on that path. FP is a short BP chain over the top ``k`` layers, then
one batched DFA-like einsum for the rest. BP and FA are the sequential baselines (a scan over layers).

Feedback layout (see `jdfa.feedback.Feedback`): ``output`` holds the ``B_i`` that read ``e``, for the
top layers that read it; ``hidden`` holds, bottom-up, the ``B_i`` that read a hidden delta, one for
each layer that needs one. Rules that the papers pair (``bdfa(K>=depth) == dfa``, ...) thus get
feedback of the same structure, and one feedback serves both.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from jdfa.model import MLP, Params, Trace

RULES = ("bp", "fa", "dfa", "fp", "bdfa", "shallow")
BOUNDARIES = ("direct", "backprop")
FEEDBACK_INITS = ("uniform", "gaussian", "variance_scaling")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A learning rule and how its fixed feedback matrices are drawn. Build one with `bp`, `fa`,
    `dfa`, `fp`, `bdfa` or `shallow`.

    Attributes:
      name: one of `RULES`.
      bp_depth: ``fp`` only: number of top hidden layers trained with true BP.
      block_size: ``bdfa`` only: layers per block, counted from the output side.
      boundary: ``bdfa`` only: ``"direct"`` or ``"backprop"`` (see the module docstring).
      use_derivative: multiply feedback deltas by ``f'(a_i)`` (True) or not.
      feedback_init: ``"uniform"`` ``U(-scale/sqrt(fan), scale/sqrt(fan))`` (Nøkland's code, with
        ``fan`` the size of the signal ``B`` reads), ``"gaussian"`` ``N(0, scale^2)`` (the PyTorch
        report's ``std``, which compares 1 and 1.9), or ``"variance_scaling"`` ``N(0, scale^2/fan)``.
      feedback_scale: the ``scale`` above.
      shared_feedback: one ``B`` drawn once and used by every layer of the same kind, instead of
        independent per-layer matrices.
    """

    name: str
    bp_depth: int = 0
    block_size: int = 1
    boundary: str = "direct"
    use_derivative: bool = True
    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    shared_feedback: bool = False

    def __post_init__(self):
        if self.name not in RULES:
            raise ValueError(f"unknown rule {self.name!r}; expected one of {list(RULES)}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"unknown boundary {self.boundary!r}; expected one of {list(BOUNDARIES)}")
        if self.feedback_init not in FEEDBACK_INITS:
            raise ValueError(f"unknown feedback_init {self.feedback_init!r}; expected one of "
                             f"{list(FEEDBACK_INITS)}")
        for field, minimum in (("bp_depth", 0), ("block_size", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{field} must be an int, got {type(value).__name__} {value!r}")
            if value < minimum:
                raise ValueError(f"{field} must be >= {minimum}, got {value}")
        if not self.feedback_scale > 0:
            raise ValueError(f"feedback_scale must be > 0, got {self.feedback_scale}")

    def check(self, net: MLP) -> None:
        """Raises ``ValueError`` if the rule does not fit ``net``."""
        if self.name == "fp" and self.bp_depth > net.depth:
            raise ValueError(f"bp_depth must lie in [0, depth={net.depth}], got {self.bp_depth}")

    def feedback_layout(self, net: MLP) -> tuple[int, int]:
        """``(n_output, n_hidden)``: how many ``B`` read ``e`` and how many read a hidden delta."""
        self.check(net)
        depth = net.depth
        if self.name == "fa":
            return 1, depth - 1
        if self.name == "dfa" or (self.name == "fp" and self.bp_depth == 0):
            return depth, 0
        if self.name == "fp":
            return 0, depth - self.bp_depth
        if self.name == "bdfa":
            k = min(self.block_size, depth)
            if self.boundary == "direct":
                return k, depth - k
            return 0, depth - -(-depth // k)  # every layer but the block tops
        return 0, 0

    def __str__(self):
        extra = {"fp": f"(bp_depth={self.bp_depth})",
                 "bdfa": f"(block_size={self.block_size}, boundary={self.boundary!r})"}
        return self.name + extra.get(self.name, "")


def _options(use_derivative=True, feedback_init="uniform", feedback_scale=1.0,
             shared_feedback=False):
    return dict(use_derivative=use_derivative, feedback_init=feedback_init,
                feedback_scale=float(feedback_scale), shared_feedback=shared_feedback)


def bp() -> Rule:
    """Backpropagation: the exact gradient of the batch-mean loss."""
    return Rule("bp")


def fa(**options) -> Rule:
    """Feedback Alignment (Lillicrap et al.): BP's chain with fixed random ``B`` for ``W^T``.

    Options: ``use_derivative``, ``feedback_init``, ``feedback_scale``, ``shared_feedback``.
    """
    return Rule("fa", **_options(**options))


def dfa(**options) -> Rule:
    """Direct Feedback Alignment (Nøkland 2016): every hidden layer gets ``(B_i e) * f'(a_i)``."""
    return Rule("dfa", **_options(**options))


def fp(bp_depth: int, **options) -> Rule:
    """Feedback Propagation: BP through the top ``bp_depth`` layers, DFA from its lowest delta below."""
    return Rule("fp", bp_depth=bp_depth, **_options(**options))


def bdfa(block_size: int, boundary: str = "direct", **options) -> Rule:
    """Blocked DFA with blocks of ``block_size`` layers counted from the output side.

    ``boundary="direct"`` is the paper's text (each block takes its delta from the lowest layer of
    the block above through ``B``); ``"backprop"`` passes the true gradient through ``W^T`` into
    each block's top layer. Identities: ``bdfa(K >= depth) == dfa``, ``bdfa(1) == fa``,
    ``bdfa(1, "backprop") == bp``, ``bdfa(K >= depth, "backprop") == fp(1)``.
    """
    return Rule("bdfa", block_size=block_size, boundary=boundary, **_options(**options))


def shallow() -> Rule:
    """The control: hidden layers stay at their initial values, only the output layer learns."""
    return Rule("shallow")


# --- delta formation -------------------------------------------------------------------------


def _direct(b, s, fprime):
    """Feedback from one signal to many layers at once: ``(B_l s) * f'(a_l)`` for every ``l``.

    b: (L, width, src), s: (batch, src), fprime: (L, batch, width) -> (L, batch, width).
    """
    return jnp.einsum("bs,lws->lbw", s, b) * fprime


def _chain(top, mats, fprime):
    """Layer-by-layer feedback: ``delta_l = (M_l delta_{l+1}) * f'(a_l)`` for ``l = L-1 .. 0``.

    top: (batch, width) delta of the layer above the stack; mats: (L, width, width) with ``M_l``
    mapping layer ``l`` to ``l + 1`` (``W_{l+1}`` for BP, ``B_l`` for FA); fprime: (L, batch, width).
    Returns the deltas (L, batch, width).
    """

    def step(delta, m_fp):
        m, fp = m_fp
        delta = (delta @ m.T) * fp
        return delta, delta

    return lax.scan(step, top, (mats, fprime), reverse=True)[1]


def _stack(*parts):
    return jnp.concatenate([p for p in parts if p.shape[0]])


def _blocked(block, top, mid, rem, e):
    """Runs ``block`` over the blocks from the output side: the top block reads ``e``, the
    ``n_mid`` full lower blocks are one `lax.scan` (so nothing unrolls with depth), the input-side
    remainder block (possibly empty) comes last.

    block: ``(s, xs) -> (s_next, deltas (n, batch, width))`` where ``s`` is the signal handed down
    from the block above and ``s_next`` the delta of the block's lowest layer.
    top, rem: the block inputs; mid: the same with a leading block axis (bottom-up); any is None
    when there is no such block.
    """
    s, d_top = block(e, top)
    parts = [d_top]
    if mid is not None:
        s, d_mid = lax.scan(block, s, mid, reverse=True)
        parts.insert(0, d_mid.reshape((-1,) + d_mid.shape[2:]))
    if rem is not None:
        parts.insert(0, block(s, rem)[1])
    return _stack(*parts)


def _direct_block(s, xs):
    b, fprime = xs
    d = _direct(b, s, fprime)
    return d[0], d


def _backprop_block(s, xs):
    w_above, b, fp_top, fprime = xs
    t = (s @ w_above.T) * fp_top
    d = _stack(_direct(b, t, fprime), t[None])
    return d[0], d


def _bdfa(rule, params, fb, fp, fpd, e):
    depth = fp.shape[0]
    k = min(rule.block_size, depth)
    n_mid, r = divmod(depth - k, k)

    def blocks_of(a, size):  # (n_mid * k, ...) -> (n_mid, size, ...) with the first `size` per block
        return a.reshape((n_mid, k) + a.shape[1:])[:, :size]

    if rule.boundary == "direct":
        top = (fb.output, fpd[depth - k:])
        mid = (fb.hidden[r:].reshape((n_mid, k) + fb.hidden.shape[1:]),
               blocks_of(fpd[r:depth - k], k))
        rem = (fb.hidden[:r], fpd[:r])
    else:
        # fb.hidden holds the non-top layers bottom-up: remainder block, middle blocks, top block.
        n_h, n_rem = fb.hidden.shape[0], max(r - 1, 0)
        w = params.hidden.w
        top = (params.output.w, fb.hidden[n_h - (k - 1):], fp[depth - 1], fpd[depth - k:depth - 1])
        mid = (w[r + k - 1:depth - k:k],
               fb.hidden[n_rem:n_rem + n_mid * (k - 1)].reshape(
                   (n_mid, k - 1) + fb.hidden.shape[1:]),
               blocks_of(fp[r:depth - k], k)[:, k - 1],
               blocks_of(fpd[r:depth - k], k - 1))
        rem = (w[r - 1], fb.hidden[:n_rem], fp[r - 1], fpd[:n_rem]) if r else None
    return _blocked(_backprop_block if rule.boundary == "backprop" else _direct_block,
                    top, mid if n_mid else None, rem if r else None, e)


def _fp(bp_depth, params, fb, fp, fpd, e):
    depth = fp.shape[0]
    top = (e @ params.output.w.T) * fp[depth - 1]
    bp_part = _stack(_chain(top, params.hidden.w[depth - bp_depth:], fp[depth - bp_depth:depth - 1]),
                     top[None])
    if bp_depth == depth:
        return bp_part
    return _stack(_direct(fb.hidden, bp_part[0], fpd[:depth - bp_depth]), bp_part)


def hidden_deltas(net: MLP, rule: Rule, params: Params, feedback, trace: Trace,
                  e: jax.Array) -> jax.Array | None:
    """The deltas of all hidden layers under ``rule``.

    Args:
      feedback: a `jdfa.feedback.Feedback` laid out for ``rule`` (`Rule.feedback_layout`).
      trace: the forward pass of the batch (``fprime`` required).
      e: (B, out_features) the output error ``dLoss/da_y``.
    Returns:
      (depth, B, width), bottom-up; None for ``shallow`` (no hidden layer learns).
    """
    fp = trace.fprime
    # Ones broadcast inside the fused multiply, so dropping f' costs no extra pass.
    fpd = fp if rule.use_derivative else jnp.ones((fp.shape[0], 1, 1), fp.dtype)
    if rule.name == "bp":
        return _fp(net.depth, params, None, fp, fp, e)
    if rule.name == "fa":
        top = (e @ feedback.output[0].T) * fpd[-1]
        return _stack(_chain(top, feedback.hidden, fpd[:-1]), top[None])
    if rule.name == "dfa" or (rule.name == "fp" and rule.bp_depth == 0):
        return _direct(feedback.output, e, fpd)
    if rule.name == "fp":
        return _fp(rule.bp_depth, params, feedback, fp, fpd, e)
    if rule.name == "bdfa":
        return _bdfa(rule, params, feedback, fp, fpd, e)
    return None
