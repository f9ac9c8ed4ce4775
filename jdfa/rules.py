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

Every feedback rule takes ``use_derivative=False`` to drop ``f'(a_i)`` from its feedback deltas
(Blocked-DFA paper, future-work question 1); BP deltas inside ``fp`` and ``bdfa(..., "backprop")``
keep it, since they are exact gradients.

Parallelism: DFA's deltas come from one einsum over the layer axis. BDFA is sequential only over
blocks (a `lax.scan` of ``depth / K`` steps, each one batched einsum over the block's layers); with
``"direct"`` no forward weight is on that path. FP is a short BP chain over the top ``k`` layers, then
one batched DFA-like einsum for the rest. BP and FA are the sequential baselines (a scan over layers).

A rule is a frozen dataclass (hashable, so a static argument of `jax.jit`) that carries what
defines it: its `FeedbackLayout`, how it forms the deltas (`Rule.deltas`) and its short spec
(``"bdfa25-bp"``, `parse`). Adding a rule is one subclass; `direct` and `chain` are the pieces the
built-in rules are made of.

Shapes: ``N`` is the batch size, ``L`` a number of stacked layers.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa.model import MLP, Params, Trace
from jdfa.validate import check_choice, check_int, check_positive

RULES: dict[str, type[Rule]] = {}  # name -> class, filled as rule classes are defined
BOUNDARIES = ("direct", "backprop")
FEEDBACK_INITS = ("uniform", "gaussian", "variance_scaling")


class FeedbackLayout(NamedTuple):
    """How many feedback matrices a rule needs on a net (`jdfa.feedback.Feedback`'s leading axes).

    output: the ``B_i`` of shape (width, out_features) that read the output error ``e``.
    hidden: the ``B_i`` of shape (width, width) that read a hidden layer's delta.
    """

    output: int
    hidden: int


# --- the pieces every rule is made of ------------------------------------------------------------


def direct(b: jax.Array, s: jax.Array, fprime: jax.Array) -> jax.Array:
    """Feedback from one signal to many layers at once: ``(B_l s) * f'(a_l)`` for every ``l``.

    b: (L, width, src), s: (N, src), fprime: (L, N, width) or broadcastable -> (L, N, width).
    """
    return jnp.einsum("ns,lws->lnw", s, b) * fprime


def chain(top: jax.Array, mats: jax.Array, fprime: jax.Array) -> jax.Array:
    """Layer-by-layer feedback: ``delta_l = (M_l delta_{l+1}) * f'(a_l)`` for ``l = L-1 .. 0``.

    top: (N, width) delta of the layer above the stack; mats: (L, width, width) with ``M_l``
    mapping layer ``l`` to ``l + 1`` (``W_{l+1}`` for BP, ``B_l`` for FA); fprime: (L, N, width).
    Returns the deltas (L, N, width).
    """

    def step(delta, m_fprime):
        m, fprime_l = m_fprime
        delta = (delta @ m.T) * fprime_l
        return delta, delta

    return lax.scan(step, top, (mats, fprime), reverse=True)[1]


def stack(*parts: jax.Array) -> jax.Array:
    """Concatenates layer stacks along the layer axis, skipping empty ones."""
    return jnp.concatenate([p for p in parts if p.shape[0]])


def backprop(params: Params, fprime: jax.Array, e: jax.Array, n: int) -> jax.Array:
    """The exact BP deltas (n, N, width) of the top ``n >= 1`` hidden layers, bottom-up."""
    depth = fprime.shape[0]
    top = (e @ params.output.w.T) * fprime[depth - 1]
    return stack(chain(top, params.hidden.w[depth - n:], fprime[depth - n:depth - 1]), top[None])


# --- the rules -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """A learning rule. Subclasses set ``name`` (which registers them in `RULES` for `parse`) and
    override `deltas`, and `feedback_layout` if they read fixed random feedback."""

    name: ClassVar[str] = ""
    needs_fprime: ClassVar[bool] = True  # whether the forward pass must keep f'(a)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            RULES[cls.name] = cls

    def check(self, net: MLP) -> None:
        """Raises ``ValueError`` if the rule does not fit ``net``."""

    def feedback_layout(self, net: MLP) -> FeedbackLayout:
        """How many feedback matrices of each kind the rule reads on ``net``."""
        self.check(net)
        return FeedbackLayout(0, 0)

    def deltas(self, net: MLP, params: Params, feedback, trace: Trace,
               e: jax.Array) -> jax.Array | None:
        """The deltas of all hidden layers.

        Args:
          feedback: a `jdfa.feedback.Feedback` laid out as `feedback_layout` says.
          trace: the forward pass of the batch (``fprime`` set when `needs_fprime`).
          e: (N, out_features) the output error ``dLoss/da_y``.
        Returns:
          (depth, N, width), bottom-up; None when no hidden layer learns.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define deltas")

    @classmethod
    def spec_fields(cls, number: int | None, suffix: str) -> dict:
        """The fields named by a spec's number and ``-suffix`` (``"bdfa25-bp"``: 25, ``"-bp"``)."""
        if number is not None or suffix:
            raise ValueError(f"rule spec {cls.name!r} takes no number or suffix")
        return {}

    @property
    def spec(self) -> str:
        """The short name `parse` reads back (feedback options aside): ``"dfa"``, ``"bdfa25-bp"``."""
        return self.name

    def to_dict(self) -> dict:
        """A JSON-ready dict that `from_dict` turns back into this rule."""
        return {"name": self.name, **dataclasses.asdict(self)}

    def __str__(self):
        structure = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                     if not f.kw_only]
        return self.name + (f"({', '.join(structure)})" if structure else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeedbackRule(Rule):
    """A rule that reads fixed random feedback matrices ``B``.

    Attributes:
      use_derivative: multiply feedback deltas by ``f'(a_i)`` (True) or not.
      feedback_init: ``"uniform"`` ``U(-scale/sqrt(fan), scale/sqrt(fan))`` (Nøkland's code, with
        ``fan`` the size of the signal ``B`` reads), ``"gaussian"`` ``N(0, scale^2)`` (the PyTorch
        report's ``std``, which compares 1 and 1.9), or ``"variance_scaling"`` ``N(0, scale^2/fan)``.
      feedback_scale: the ``scale`` above.
      shared_feedback: one ``B`` drawn once and used by every layer of the same kind, instead of
        independent per-layer matrices.
    """

    use_derivative: bool = True
    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    shared_feedback: bool = False

    def __post_init__(self):
        check_choice("feedback_init", self.feedback_init, FEEDBACK_INITS)
        check_positive("feedback_scale", self.feedback_scale)

    def feedback_fprime(self, trace: Trace) -> jax.Array:
        """``f'(a)`` (depth, N, width) for feedback deltas, or ones without ``use_derivative``
        (shape (depth, 1, 1): it broadcasts inside the fused multiply, so dropping f' costs no pass)."""
        fprime = trace.fprime
        return fprime if self.use_derivative else jnp.ones((fprime.shape[0], 1, 1), fprime.dtype)


@dataclasses.dataclass(frozen=True)
class BP(Rule):
    """Backpropagation: the exact gradient of the batch-mean loss."""

    name: ClassVar[str] = "bp"

    def deltas(self, net, params, feedback, trace, e):
        return backprop(params, trace.fprime, e, net.depth)


@dataclasses.dataclass(frozen=True)
class FA(FeedbackRule):
    """Feedback Alignment (Lillicrap et al.): BP's chain with fixed random ``B`` for ``W^T``.

    Feedback: ``output`` holds ``B_depth`` (1 matrix), ``hidden`` the ``B_i`` of layers
    ``1 .. depth-1``, bottom-up (``B_i`` maps layer ``i + 1``'s delta to layer ``i``).
    """

    name: ClassVar[str] = "fa"

    def feedback_layout(self, net):
        return FeedbackLayout(1, net.depth - 1)

    def deltas(self, net, params, feedback, trace, e):
        fprime = self.feedback_fprime(trace)
        top = (e @ feedback.output[0].T) * fprime[-1]
        return stack(chain(top, feedback.hidden, fprime[:-1]), top[None])


@dataclasses.dataclass(frozen=True)
class DFA(FeedbackRule):
    """Direct Feedback Alignment (Nøkland 2016): every hidden layer gets ``(B_i e) * f'(a_i)``.

    Feedback: ``output`` holds every layer's ``B_i``, bottom-up; ``hidden`` is empty.
    """

    name: ClassVar[str] = "dfa"

    def feedback_layout(self, net):
        return FeedbackLayout(net.depth, 0)

    def deltas(self, net, params, feedback, trace, e):
        return direct(feedback.output, e, self.feedback_fprime(trace))


@dataclasses.dataclass(frozen=True)
class FP(FeedbackRule):
    """Feedback Propagation: BP through the top ``bp_depth`` layers, DFA from its lowest delta below.

    Feedback: ``hidden`` holds the ``B_i`` of layers ``1 .. depth - bp_depth``, bottom-up, each
    reading the lowest BP layer's delta. With ``bp_depth = 0`` there is no BP layer: the lower
    layers read ``e``, so their ``B_i`` sit in ``output`` as DFA's do (``fp(0) == dfa``, one
    feedback for both).
    """

    name: ClassVar[str] = "fp"
    bp_depth: int = 1

    def __post_init__(self):
        super().__post_init__()
        check_int("bp_depth", self.bp_depth, 0)

    @property
    def _reads_error(self) -> bool:
        return self.bp_depth == 0

    def check(self, net):
        if self.bp_depth > net.depth:
            raise ValueError(f"bp_depth must lie in [0, depth={net.depth}], got {self.bp_depth}")

    def feedback_layout(self, net):
        self.check(net)
        n = net.depth - self.bp_depth
        return FeedbackLayout(n, 0) if self._reads_error else FeedbackLayout(0, n)

    def deltas(self, net, params, feedback, trace, e):
        fprime, n_dfa = self.feedback_fprime(trace), net.depth - self.bp_depth
        if self._reads_error:
            return direct(feedback.output, e, fprime)
        bp_part = backprop(params, trace.fprime, e, self.bp_depth)
        return stack(direct(feedback.hidden, bp_part[0], fprime[:n_dfa]), bp_part)

    @classmethod
    def spec_fields(cls, number, suffix):
        if suffix:
            raise ValueError(f"rule spec 'fp' takes no suffix, got {suffix!r}")
        return {} if number is None else {"bp_depth": number}

    @property
    def spec(self):
        return f"fp{self.bp_depth}"


class _Blocks(NamedTuple):
    """How `BDFA` cuts ``depth`` layers, counted from the output side: a top block of ``k``
    layers, ``n_mid`` full blocks of ``k`` below it, and an input-side remainder of ``r`` layers
    (``0 <= r < k``; none when 0)."""

    k: int
    n_mid: int
    r: int


@dataclasses.dataclass(frozen=True)
class BDFA(FeedbackRule):
    """Blocked DFA with blocks of ``block_size`` layers counted from the output side.

    ``boundary="direct"`` is the paper's text (each block takes its delta from the lowest layer of
    the block above through ``B``); ``"backprop"`` passes the true gradient through ``W^T`` into
    each block's top layer. Identities: ``bdfa(K >= depth) == dfa``, ``bdfa(1) == fa``,
    ``bdfa(1, "backprop") == bp``, ``bdfa(K >= depth, "backprop") == fp(1)``.

    Feedback (see `_Blocks` for the cut), bottom-up in each stack:

    * ``"direct"``: ``output`` holds the top block's ``k`` matrices (they read ``e``); ``hidden``
      every lower layer's: the remainder block's ``r``, then each middle block's ``k``.
    * ``"backprop"``: ``output`` is empty; ``hidden`` holds every layer's but the block tops: the
      remainder block's ``r - 1``, each middle block's ``k - 1``, then the top block's ``k - 1``.
    """

    name: ClassVar[str] = "bdfa"
    block_size: int = 25
    boundary: str = "direct"

    def __post_init__(self):
        super().__post_init__()
        check_int("block_size", self.block_size, 1)
        check_choice("boundary", self.boundary, BOUNDARIES)

    def blocks(self, depth: int) -> _Blocks:
        """The cut of ``depth`` layers into blocks."""
        k = min(self.block_size, depth)
        n_mid, r = divmod(depth - k, k)
        return _Blocks(k, n_mid, r)

    def feedback_layout(self, net):
        k, n_mid, r = self.blocks(net.depth)
        if self.boundary == "direct":
            return FeedbackLayout(k, net.depth - k)
        return FeedbackLayout(0, net.depth - (1 + n_mid + (r > 0)))

    def deltas(self, net, params, feedback, trace, e):
        depth, fprime, fpd = net.depth, trace.fprime, self.feedback_fprime(trace)
        k, n_mid, r = self.blocks(depth)

        def mid_blocks(a, size):  # (n_mid * k, ...) -> (n_mid, size, ...), each block's first `size`
            return a.reshape((n_mid, k) + a.shape[1:])[:, :size]

        if self.boundary == "direct":
            top = (feedback.output, fpd[depth - k:])
            mid = (feedback.hidden[r:].reshape((n_mid, k) + feedback.hidden.shape[1:]),
                   mid_blocks(fpd[r:depth - k], k))
            rem = (feedback.hidden[:r], fpd[:r])
            block = _direct_block
        else:
            n_rem, hid, w = max(r - 1, 0), feedback.hidden, params.hidden.w
            top = (params.output.w, hid[hid.shape[0] - (k - 1):], fprime[depth - 1],
                   fpd[depth - k:depth - 1])
            mid = (w[r + k - 1:depth - k:k],
                   hid[n_rem:n_rem + n_mid * (k - 1)].reshape((n_mid, k - 1) + hid.shape[1:]),
                   mid_blocks(fprime[r:depth - k], k)[:, k - 1],
                   mid_blocks(fpd[r:depth - k], k - 1))
            rem = (w[r - 1], hid[:n_rem], fprime[r - 1], fpd[:n_rem]) if r else None
            block = _backprop_block
        return _blocked(block, top, mid if n_mid else None, rem if r else None, e)

    @classmethod
    def spec_fields(cls, number, suffix):
        boundary = {"": None, "-direct": "direct", "-bp": "backprop", "-backprop": "backprop"}
        if suffix not in boundary:
            raise ValueError(f"rule spec 'bdfa' takes the suffix -bp, -backprop or -direct, "
                             f"got {suffix!r}")
        fields = {} if number is None else {"block_size": number}
        return fields if boundary[suffix] is None else {**fields, "boundary": boundary[suffix]}

    @property
    def spec(self):
        return f"bdfa{self.block_size}" + ("-bp" if self.boundary == "backprop" else "")


def _blocked(block, top, mid, rem, e):
    """Runs ``block`` over the blocks from the output side: the top block reads ``e``, the full
    lower blocks are one `lax.scan` (so nothing unrolls with depth), the input-side remainder
    block (possibly absent) comes last.

    block: ``(s, xs) -> (s_next, deltas (n, N, width))`` where ``s`` is the signal handed down
    from the block above and ``s_next`` the delta of the block's lowest layer.
    top, rem: the block inputs; mid: the same with a leading block axis (bottom-up); mid and rem
    are None when there is no such block.
    """
    s, d_top = block(e, top)
    parts = [d_top]
    if mid is not None:
        s, d_mid = lax.scan(block, s, mid, reverse=True)
        parts.insert(0, d_mid.reshape((-1,) + d_mid.shape[2:]))
    if rem is not None:
        parts.insert(0, block(s, rem)[1])
    return stack(*parts)


def _direct_block(s, xs):
    b, fprime = xs
    d = direct(b, s, fprime)
    return d[0], d


def _backprop_block(s, xs):
    w_above, b, fprime_top, fprime = xs
    t = (s @ w_above.T) * fprime_top
    d = stack(direct(b, t, fprime), t[None])
    return d[0], d


@dataclasses.dataclass(frozen=True)
class Shallow(Rule):
    """The control: hidden layers stay at their initial values, only the output layer learns."""

    name: ClassVar[str] = "shallow"
    needs_fprime: ClassVar[bool] = False

    def deltas(self, net, params, feedback, trace, e):
        return None


# --- constructors ----------------------------------------------------------------------------


def bp() -> BP:
    """Backpropagation: the exact gradient of the batch-mean loss."""
    return BP()


def fa(**options) -> FA:
    """Feedback Alignment; options are `FeedbackRule`'s (``use_derivative``, ``feedback_init``,
    ``feedback_scale``, ``shared_feedback``)."""
    return FA(**options)


def dfa(**options) -> DFA:
    """Direct Feedback Alignment; options are `FeedbackRule`'s."""
    return DFA(**options)


def fp(bp_depth: int, **options) -> FP:
    """Feedback Propagation with the top ``bp_depth`` hidden layers trained by BP."""
    return FP(bp_depth, **options)


def bdfa(block_size: int, boundary: str = "direct", **options) -> BDFA:
    """Blocked DFA with blocks of ``block_size`` layers; see `BDFA` for ``boundary``."""
    return BDFA(block_size, boundary, **options)


def shallow() -> Shallow:
    """Only the output layer learns (the control)."""
    return Shallow()


_SPEC = re.compile(r"([a-z_]+)(\d*)((?:-[a-z]+)?)")


def parse(spec: str, **fields) -> Rule:
    """A rule from its spec and fields: ``parse("bdfa25-bp")``, ``parse("fp", bp_depth=3)``,
    ``parse("dfa", feedback_scale=2.0)``. The one parser of the driver, the experiments and the
    benchmarks; `Rule.spec` is its inverse (feedback options aside).

    Raises ``ValueError`` naming the problem for an unknown rule, a malformed spec, a field the
    rule does not have, or a field that contradicts the spec.
    """
    m = _SPEC.fullmatch(spec.strip().lower())
    if m is None or m.group(1) not in RULES:
        raise ValueError(f"unknown rule {spec!r}; expected one of {list(RULES)}, optionally with a "
                         "number and suffix such as fp1, bdfa25 or bdfa25-bp")
    cls = RULES[m.group(1)]
    from_spec = cls.spec_fields(int(m.group(2)) if m.group(2) else None, m.group(3))
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in fields.items():
        if key not in names:
            raise ValueError(f"rule {cls.name!r} has no option {key!r}; its options are "
                             f"{sorted(names) or 'none'}")
        if key in from_spec and from_spec[key] != value:
            raise ValueError(f"rule spec {spec!r} says {key}={from_spec[key]!r} but {key}={value!r} "
                             "was also given")
    return cls(**{**from_spec, **fields})


def from_dict(d: dict) -> Rule:
    """The rule of `Rule.to_dict`'s dict."""
    d = dict(d)
    name = d.pop("name")
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; expected one of {list(RULES)}")
    return RULES[name](**d)
