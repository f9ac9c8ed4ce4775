"""Command line: ``python -m jdfa.train --dataset mnist --rule bdfa --block-size 25 --depth 100
--width 200 --steps 10000 --batch-size 64 --optimizer adam --lr 1e-4 --seed 0 --out runs/NAME``.

Every field of `jdfa.train.Config` is a flag (``--block-size`` for ``block_size``); booleans that
default to True are switched off with ``--no-...`` (e.g. ``--no-use-derivative``, ``--no-progress``).

Exit status: 0 finished, 1 diverged, 2 bad arguments or data, 130 interrupted (SIGINT/SIGTERM; a
checkpoint is saved first, and the same command plus ``--resume`` continues the run).
"""

import argparse
import dataclasses
import json
import sys
import typing

from jdfa import rules
from jdfa.train import OPTIMIZERS, SCHEDULES, Config, train
from jdfa.update import BATCH_MODES

CHOICES = {"rule": rules.RULES, "boundary": rules.BOUNDARIES, "feedback_init": rules.FEEDBACK_INITS,
           "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "batch_mode": BATCH_MODES}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jdfa.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            convert = {int: int, float: float}.get(kind, str)
            p.add_argument(flag, type=convert, default=field.default, choices=CHOICES.get(field.name),
                           help=f"default: {field.default}")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        summary = train(Config(**vars(args)))
    except ValueError as err:  # bad flags or data: the message says what to change
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary.pop("state")
    print(json.dumps(summary))
    return {"finished": 0, "diverged": 1, "interrupted": 130}[summary["status"]]


if __name__ == "__main__":
    sys.exit(main())
