"""Options that describe themselves: a field of a rule, a net or the optimizer says once, on its
class, what the command line and a sweep need to know of it -- its help line, its choices,
whether a comma list sweeps it, whether it is read only where a run's state is drawn, and
whether the rule's spec names it. The command line's flags, their ``--help`` lines, the grid's
axes and a sweep's structure are read from here (`jdfa.driver.flags`, `jdfa.driver.grid`), so a
new rule or net brings its options with it and the driver names none of them.

    @dataclasses.dataclass(frozen=True)
    class Damped(FeedbackRule):
        name: ClassVar[str] = "damped"
        damping: float = option(0.5, "damped: how much of e each block reads")
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Option:
    """What the driver knows of one field.

    help: its ``--help`` line (say which rule or net reads it when not all do).
    choices: the values it takes, when they are a fixed set (the command line checks them).
    sweepable: a comma list on the command line (or a list given to `jdfa.sweep`) sweeps it.
    at_init: read only where a run's state is drawn (a feedback scale), so runs that differ only
      here still share one vmapped program, each run's state drawn with its own value: it is not
      part of a sweep's structure.
    in_spec: the rule's short spec names it (``bdfa25-bp``: ``block_size``, ``boundary``), so a
      sweep's run names need not repeat it.
    """

    help: str
    choices: tuple = ()
    sweepable: bool = True
    at_init: bool = False
    in_spec: bool = False


def option(default: Any = dataclasses.MISSING, help: str = "", *, choices=(), sweepable: bool = True,
           at_init: bool = False, in_spec: bool = False) -> Any:
    """A dataclass field with ``default`` that carries its `Option` (``default`` left out: a
    required field)."""
    return dataclasses.field(default=default, metadata={"option": Option(help, tuple(choices), sweepable,
                                                                         at_init, in_spec)})


def options_of(cls) -> dict[str, Option]:
    """The `Option` of every field of dataclass ``cls`` that declares one, in field order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


def merged(classes) -> dict[str, Option]:
    """The options of ``classes``, each name once: the first class to declare it gives its
    `Option` (classes that share a field, as every feedback rule shares ``feedback_scale``, share
    its declaration through their base class)."""
    out: dict[str, Option] = {}
    for cls in classes:
        for name, opt in options_of(cls).items():
            out.setdefault(name, opt)
    return out
