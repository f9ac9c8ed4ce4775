"""The command line: ``jdfa train --dataset mnist --rule bdfa25 --depth 100 --width 200 --steps
10000 --lr 1e-4 --out runs/bdfa25`` (also ``python -m jdfa train ...``).

Every flag of `jdfa.driver.flags` is an option (``--block-size`` for ``block_size``); booleans
that default to True are switched off with ``--no-...`` (e.g. ``--no-use-derivative``).

The run's summary goes to stdout as one JSON line (``jdfa train ... | jq``); progress, warnings
and messages go to stderr.

Exit status: 0 finished, 1 diverged, 2 bad arguments, missing data or dependency, or invalid data
met in training, 130 interrupted (SIGINT/SIGTERM: a checkpoint is saved first, and the same command
plus ``--resume`` continues the run; a second Ctrl-C aborts without saving, keeping the last good
checkpoint).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing

from jdfa import data, model, rules
from jdfa.batch_modes import BATCH_MODES
from jdfa.driver import flags
from jdfa.driver.config import ON_DIVERGE, Config
from jdfa.driver.loop import train
from jdfa.losses import LOSSES
from jdfa.optimizers import OPTIMIZERS, SCHEDULES, Optimizer

CHOICES = {"boundary": rules.BOUNDARIES, "feedback_init": rules.FEEDBACK_INITS,
           "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "batch_mode": BATCH_MODES,
           "activation": tuple(model.ACTIVATIONS), "loss": tuple(LOSSES),
           "weight_init": model.WEIGHT_INITS, "on_diverge": ON_DIVERGE, "dataset": data.DATASETS}


def _types() -> dict:
    """The Python type of every flag, from the annotations of the objects it configures."""
    hints = {**typing.get_type_hints(Config), **typing.get_type_hints(model.MLP)}
    for cls in rules.RULES.values():
        hints.update(typing.get_type_hints(cls))
    optimizer = typing.get_type_hints(Optimizer)
    hints.update({flag: optimizer[field] for flag, field in flags.OPTIMIZER.items()})
    return {**hints, "rule": str}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jdfa", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = commands.add_parser("train", help="train one run", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    types, defaults = _types(), flags.defaults()
    for name, text in flags.HELP.items():
        flag, kind, default = "--" + name.replace("_", "-"), types[name], defaults[name]
        if kind is bool:
            t.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # int | None
        convert = {int: int, float: float}.get(kind, str)
        shown = "" if name in flags.RULE or default is None else f" (default: {default})"
        t.add_argument(flag, type=convert, default=default, choices=CHOICES.get(name),
                       help=text + shown)
    return p


def _name_flags(message: str) -> str:
    """Adds the command-line flag after each field name (``block_size`` -> ``block_size
    (--block-size)``) in a message the library wrote for Python callers."""
    for name in sorted((n for n in flags.HELP if "_" in n or n == "lr"), key=len, reverse=True):
        flag = "--" + name.replace("_", "-")
        if flag not in message:
            message = re.sub(rf"(?<![\w.-])('?){name}\1(?![\w(=.])", rf"\g<0> ({flag})", message, count=1)
    return message


def main(argv=None) -> int:
    args = vars(parser().parse_args(argv))
    args.pop("command")
    try:
        config, dataset = flags.from_flags(args)
        summary = train(config, data=dataset)
    except ValueError as err:  # bad flags or data: the message says what to change
        print(f"error: {_name_flags(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C before training began
        print("aborted before training began", file=sys.stderr)
        return 130
    summary.pop("state")
    print(json.dumps(summary))
    return {"finished": 0, "diverged": 1, "invalid_data": 2, "interrupted": 130,
            "aborted": 130}[summary["status"]]
