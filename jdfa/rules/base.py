"""What a rule is: the `Rule` base class, the options of rules that read feedback, the registry of
rules by name and the one spec parser (`parse`).

A rule is a frozen dataclass (hashable, so a static argument of `jax.jit`) that carries what
defines it: its plan (`Rule.plan`: where each hidden layer's delta comes from; the feedback layout,
whether it is DFA and whether it needs ``f'`` follow from it, and `jdfa.rules.stacked` compiles it
for `jdfa.MLP`), its options and its short spec (``"bdfa25-bp"``). Defining a subclass with a
``name`` registers it in `RULES`, so `parse`, the command line and the benchmarks know it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from jdfa.net import Net
from jdfa.options import option
from jdfa.rules.stacked import plan_deltas
from jdfa.validate import check_choice, check_positive

RULES: dict[str, type[Rule]] = {}  # name -> class, filled as rule classes are defined
FEEDBACK_INITS = ("uniform", "gaussian", "variance_scaling", "tinydfa")


class StepContext(NamedTuple):
    """The training step a rule forms its deltas for, for rules that change from step to step
    (`jdfa.rules.Mix`). The train step passes one; outside training there is none.

    index: () int32, the steps taken before this one.
    key: this step's PRNG key (a fold of the state's key and ``index``).
    """

    index: jax.Array
    key: jax.Array


class Source(NamedTuple):
    """Where one hidden layer's delta comes from: a rule's `Rule.plan`, layer by layer.

    kind: ``"error"`` -- ``(B_i e) * f'(a_i)``; ``"delta"`` -- ``(B_i delta_j) * f'(a_i)`` with
      ``j = of``; ``"backprop"`` -- the true step from the layer above (the output layer for the
      top one); ``"fa"`` -- that step with the layer above's weights replaced by fixed random ones;
      ``"mix"`` -- ``"backprop"`` at the steps where the rule's `Rule.draws` says so, else
      ``"error"`` (`jdfa.rules.Mix`).
    of: for ``"delta"``, the (0-based, bottom-up) layer whose delta is read, above this one.
    """

    kind: str
    of: int = -1


class FeedbackLayout(NamedTuple):
    """How many feedback matrices a rule needs on a net (`jdfa.feedback.Feedback`'s leading axes).

    output: the ``B_i`` of shape (width, out_features) that read the output error ``e``.
    hidden: the ``B_i`` of shape (width, width) that read a hidden layer's delta.
    """

    output: int
    hidden: int


@dataclasses.dataclass(frozen=True)
class Rule:
    """A learning rule. Subclasses set ``name`` (which registers them in `RULES` for `parse`) and
    give their `plan` (where each layer's delta comes from); the feedback layout, whether the rule
    is DFA, whether it needs ``f'`` and the stacked `deltas` of `jdfa.MLP` follow from the plan."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            RULES[cls.name] = cls

    def check(self, net: Net) -> None:
        """Raises ``ValueError`` if the rule does not fit ``net``."""

    @property
    def trains_hidden_layers(self) -> bool:
        """Whether the rule updates the hidden layers: its plan is not None (a rule without a plan
        forms its deltas itself, and is taken to)."""
        has_plan, plan = self._planned(1)
        return not has_plan or plan is not None

    @property
    def needs_fprime(self) -> bool:
        """Whether the forward pass must keep ``f'(a)``: whenever the rule trains a hidden layer."""
        return self.trains_hidden_layers

    def feedback_layout(self, net: Net) -> FeedbackLayout:
        """How many feedback matrices of each kind the rule reads on `jdfa.MLP` ``net``, from its
        plan: a layer reading ``e`` (and FA's top layer, which reads ``e`` through its random
        stand-in for the output weights) holds a (width, out_features) ``B``; a layer reading a
        hidden delta (and FA's lower layers) a (width, width) one."""
        self.check(net)
        has_plan, plan = self._planned(net.depth)
        if not has_plan:
            raise NotImplementedError(f"rule {self.name!r} has no plan, so it says its feedback itself: "
                                      "define feedback_layout(net)")
        if plan is None:
            return FeedbackLayout(0, 0)
        top = len(plan) - 1
        output = sum(s.kind in ("error", "mix") or (s.kind == "fa" and i == top) for i, s in enumerate(plan))
        hidden = sum(s.kind == "delta" or (s.kind == "fa" and i < top) for i, s in enumerate(plan))
        return FeedbackLayout(output, hidden)

    def is_dfa(self, net: Net) -> bool:
        """Whether on ``net`` every hidden delta is DFA's ``(B_i e) * f'(a_i)`` (every source of the
        plan ``e``) with ``B_i`` the ``i``-th of ``feedback.output`` -- the form `jdfa.remat`
        recomputes layer by layer."""
        has_plan, plan = self._planned(net.depth)
        return has_plan and plan is not None and all(s.kind == "error" for s in plan)

    def feedback_fprime(self, fprime: jax.Array | None, keep: jax.Array | None) -> jax.Array | None:
        """What a delta read through ``B`` is multiplied by: ``f'(a)`` (`FeedbackRule` may drop it)."""
        del keep
        return fprime

    def _planned(self, depth: int) -> tuple[bool, tuple[Source, ...] | None]:
        """``(whether the rule has a plan, the plan)``."""
        if type(self).plan is Rule.plan:
            return False, None
        return True, self.plan(depth)

    def plan(self, depth: int) -> tuple[Source, ...] | None:
        """Where each of ``depth`` hidden layers' deltas comes from (bottom-up `Source`s), the
        rule on every net: `jdfa.chain.ChainNet` runs it block by block, `jdfa.MLP` compiles it to
        stacked ops (`deltas`); None when no hidden layer learns."""
        raise ValueError(f"rule {self.name!r} has no plan, so it cannot train a jdfa.blocks net; "
                         "it trains jdfa.MLP only")

    def draws(self, depth: int, context: StepContext | None) -> jax.Array:
        """(depth,) bool: which ``"mix"`` layers of the plan take a BP step at the step of
        ``context`` (the rest read ``e``); rules whose plan has no ``"mix"`` are never asked."""
        raise NotImplementedError(f"rule {self.name!r} plans 'mix' layers but does not say its draws")

    def deltas(self, net: Net, params, feedback, trace, e: jax.Array,
               context: StepContext | None = None) -> jax.Array | None:
        """The deltas of all hidden layers of `jdfa.MLP` ``net``: the plan, compiled to stacked
        ops (`jdfa.rules.stacked`). A rule without a plan forms them itself here.

        Args:
          feedback: a `jdfa.feedback.Feedback` laid out as `feedback_layout` says.
          trace: the forward pass of the batch (``fprime`` set when `needs_fprime`).
          e: (N, out_features) the output error ``dLoss/da_y``.
          context: the training step (`StepContext`); rules that do not change from step to step
            ignore it.

        Returns:
          (depth, N, width), bottom-up; None when no hidden layer learns.
        """
        if not self._planned(1)[0]:
            raise NotImplementedError(f"{type(self).__name__} has no plan: define plan(depth), or "
                                      "deltas(...) and feedback_layout(net) for a rule no plan can say")
        return plan_deltas(self, net, params, feedback, trace, e, context)

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
        report's ``std``, which compares 1 and 1.9), ``"variance_scaling"`` ``N(0, scale^2/fan)``,
        or ``"tinydfa"`` ``U(-scale/sqrt(w), scale/sqrt(w))`` with ``w`` the size of the net's
        widest feedback point (at one position: a transformer's d_model, not the vocabulary ``e``
        has), as TinyDFA (LightOn's DFA code for Launay et al. 2020) normalises its one feedback
        matrix, ``U[-1, 1)`` divided by the root of the largest feedback size.
      feedback_scale: the ``scale`` above.
      shared_feedback: one ``B`` drawn once and used by every layer of the same kind, instead of
        independent per-layer matrices.
    """

    use_derivative: bool = option(True, "multiply feedback deltas by f'(a) (--no-use-derivative drops it)",
                                  sweepable=False)
    feedback_init: str = option("uniform", "distribution of the fixed feedback matrices B",
                                choices=FEEDBACK_INITS)
    feedback_scale: float = option(1.0, "scale of B (uniform: limit scale/sqrt(fan); gaussian: std)",
                                   at_init=True)
    shared_feedback: bool = option(False, "one B for every layer of the same kind instead of one per layer",
                                   sweepable=False)

    def __post_init__(self):
        check_choice("feedback_init", self.feedback_init, FEEDBACK_INITS)
        check_positive("feedback_scale", self.feedback_scale)

    def feedback_fprime(self, fprime: jax.Array | None, keep: jax.Array | None) -> jax.Array | None:
        """What a feedback delta is multiplied by, from the forward pass's ``fprime`` (``f'(a)``
        times the dropout mask) and ``keep`` (the mask, None when no unit was dropped): ``fprime``,
        or without ``use_derivative`` the mask, else ones of shape (L, 1, ...) that broadcast
        inside the fused multiply (so dropping f' costs no pass, and the stack can still be sliced
        by layer). For a point without an activation (``fprime`` None) the mask, or None."""
        if self.use_derivative or fprime is None:
            return fprime if self.use_derivative else keep
        if keep is not None:
            return keep
        return jnp.ones((fprime.shape[0],) + (1,) * (fprime.ndim - 1), fprime.dtype)


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
