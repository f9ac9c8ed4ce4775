"""The runs of a sweep: the cross product of flag lists, named by what varies, grouped by structure.

A sweep is given as flat flags (`jdfa.driver.flags`) some of which are lists; every combination is
one run, made by `from_flags` exactly as a single run would be. Runs that share a structure (all
but seed, learning rate, weight decay and the rule's options read at init such as the feedback
scale: `structure`) can be one vmapped program
(`jdfa.driver.sweeps`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re

from jdfa import rules
from jdfa.driver.config import Config
from jdfa.driver.flags import OPTIMIZER, config_flags, from_flags, net_options, rule_options
from jdfa.options import options_of


def sweepable() -> tuple[str, ...]:
    """The flags that take comma lists on the command line (and lists in `jdfa.sweep`): the rule
    and the net with the options of each that say so (booleans do not; a context is the data's,
    one per sweep), the optimizer's, the batch size and the seed."""
    return ("rule", *(name for name, opt in rule_options().items() if opt.sweepable),
            "model", *(name for name, opt in net_options().items() if opt.sweepable), "batch_size",
            *OPTIMIZER, "seed")


def _rule_class(rule) -> type:
    return type(rule) if isinstance(rule, rules.Rule) else type(rules.parse(rule))


def combinations(flags: dict, lists: dict[str, list]) -> list[dict]:
    """Every combination of ``lists`` (flag -> values) over ``flags``, in order (the last flag
    varies fastest). A rule field applies only to the rules that have it (``--rule dfa,bdfa
    --block-size 10,25`` is three runs, not four); duplicates are dropped."""
    for name, values in lists.items():
        if not values:
            raise ValueError(f"{name}: the list of values to sweep is empty")
    combos, seen = [], set()
    for values in itertools.product(*lists.values()):
        combo = {**flags, **dict(zip(lists, values))}
        if "rule" in lists:
            own = {f.name for f in dataclasses.fields(_rule_class(combo["rule"]))}
            combo = {k: (v if k not in rule_options() or k in own else None) for k, v in combo.items()}
        key = repr(sorted((k, repr(v)) for k, v in combo.items()))
        if key not in seen:
            seen.add(key)
            combos.append(combo)
    return combos


def expand(config: Config, data, seeds=None, **axes) -> list[Config]:
    """The configs of a sweep around ``config``: ``seeds`` (an int n: seeds 0..n-1, or a list)
    and ``axes`` (flag name -> list of values, e.g. ``lr=[1e-3, 3e-4]``, ``block_size=[50, 25]``,
    ``rule=["dfa", "bdfa25"]``: a rule from a list replaces ``config.rule`` whole)."""
    unknown = sorted(set(axes) - set(sweepable()))
    if unknown:
        raise ValueError(f"cannot sweep {unknown}; the settings that take lists are {list(sweepable())}")
    flags = config_flags(config)
    net_axes = sorted(set(axes) & {"model", *net_options()})
    if not isinstance(flags["model"], str) and net_axes:
        raise ValueError(f"cannot sweep {net_axes} of a {type(config.net).__name__}: "
                         "its structure is its builder; sweep seeds, lr, weight decay, the rule's "
                         "settings, or pass configs of your own nets to train_runs")
    if seeds is not None:
        axes = {"seed": list(range(seeds)) if isinstance(seeds, int) else list(seeds), **axes}
    return configs(flags, axes, data)[0]


def configs(flags: dict, lists: dict[str, list], data=None) -> tuple[list[Config], tuple]:
    """``(configs, data)``: `from_flags` of every one of `combinations` (``data`` loaded once, from
    the first, when not given)."""
    out = []
    for combo in combinations(flags, lists):
        config, data = from_flags(combo, data)
        out.append(config)
    return out, data


def settings(config: Config) -> dict:
    """The sweepable settings of ``config`` as JSON scalars (the rule by its spec, which names its
    block size, boundary or BP depth)."""
    flags = config_flags(config)
    flags["rule"] = config.rule.spec
    if not isinstance(flags["model"], str):
        flags["model"] = type(config.net).__name__
    return {k: flags[k] if k in flags else getattr(config.rule, k, None)
            for k in sweepable() if not (k in rule_options() and rule_options()[k].in_spec)}


def varying(configs: list[Config]) -> list[dict]:
    """For each config, the sweepable settings that differ across ``configs``. A rule field that
    only some of the rules have (``feedback_init`` when ``bp`` and ``dfa`` are swept) varies only
    if the rules that have it differ in it: the rule's own name already tells the others apart."""
    all_settings = [settings(c) for c in configs]
    keys = [k for k in all_settings[0]
            if len({repr(s[k]) for s in all_settings if s[k] is not None}) > 1]
    return [{k: s[k] for k in keys} for s in all_settings]


def run_name(setting: dict) -> str:
    """A folder name for a run's varying settings: ``lr=0.001_seed=0`` (``run`` when none)."""
    name = "_".join(f"{k}={v}" for k, v in setting.items() if v is not None) or "run"
    return re.sub(r"[^\w.=+-]", "-", name)


def structure(config: Config) -> Config:
    """``config`` with its seed, learning rate, weight decay and the rule's options read only at
    init (`jdfa.options.Option.at_init`: the feedback scale) set to placeholders: configs equal
    here differ only by what one vmapped program holds per run. Decay's presence stays structural
    (it chains a transformation with state)."""
    decays = float(config.optimizer.weight_decay > 0)
    optimizer = dataclasses.replace(config.optimizer, lr=1.0, weight_decay=decays)
    at_init = [name for name, opt in options_of(type(config.rule)).items() if opt.at_init]
    rule = dataclasses.replace(config.rule, **{f.name: f.default for f in dataclasses.fields(config.rule)
                                               if f.name in at_init})
    return dataclasses.replace(config, seed=0, optimizer=optimizer, rule=rule, out=None)
