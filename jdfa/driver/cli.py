"""The command line: ``jdfa train --dataset mnist --rule bdfa25 --depth 100 --width 200 --steps
10000 --lr 1e-4 --out runs/bdfa25`` (also ``python -m jdfa train ...``).

Every flag of `jdfa.driver.flags` is an option (``--block-size`` for ``block_size``); booleans
that default to True are switched off with ``--no-...`` (e.g. ``--no-use-derivative``).

The run's summary goes to stdout as one JSON line (``jdfa train ... | jq``); progress, warnings
and messages go to stderr.

A sweep: comma lists train every combination (``--seeds 5`` is seeds 0..4, ``--seeds 0,3``
those two; ``--lr 1e-3,3e-4``, ``--block-size 50,25,10``, ``--rule dfa,bdfa25``); runs of one
structure train as one vmapped program (`jdfa.sweep`), at most ``--max-parallel`` at a time, into
``OUT/<run>`` plus ``OUT/sweep.json``, ``sweep.md`` and ``sweep.png``.

After training, on a run's folder: ``jdfa eval RUN_DIR`` prints its validation loss (for a language
model also perplexity and bits per byte, against the unigram and bigram baselines) as one JSON line;
``jdfa sample RUN_DIR --prompt TEXT --tokens N --temperature T --seed S`` prints text from a
language model (`jdfa.driver.lm`).

Exit status: 0 finished, 1 diverged (a sweep: any run), 2 bad arguments, missing data or
dependency, or invalid data met in training, 130 interrupted (SIGINT/SIGTERM: a checkpoint is
saved first, and the same command plus ``--resume`` continues the run; a second Ctrl-C aborts
without saving, keeping the last good checkpoint).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing

from jdfa import data, rules
from jdfa.batch_modes import BATCH_MODES
from jdfa.driver import flags, grid, lm
from jdfa.driver.config import ON_DIVERGE, Config, net_flags
from jdfa.driver.summary import Interrupted
from jdfa.driver.sweeps import train, train_runs
from jdfa.net import command_line_nets
from jdfa.optimizers import OPTIMIZERS, SCHEDULES, Optimizer

# the run's and the optimizer's choices; the rules' and the nets' come with their options
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "batch_mode": BATCH_MODES,
           "on_diverge": ON_DIVERGE, "dataset": data.DATASETS}


def _types() -> dict:
    """The Python type of every flag, from the annotations of the objects it configures."""
    hints = typing.get_type_hints(Config)
    for cls in command_line_nets().values():
        net = typing.get_type_hints(cls)
        hints.update({flag: net[field] for flag, field in net_flags(cls).items()})
    for cls in rules.RULES.values():
        hints.update(typing.get_type_hints(cls))
    optimizer = typing.get_type_hints(Optimizer)
    hints.update({flag: optimizer[field] for flag, field in flags.OPTIMIZER.items()})
    return {**hints, "rule": str, "model": str}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jdfa", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = commands.add_parser("train", help="train one run", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    types, defaults = _types(), flags.defaults()
    rule_options = flags.rule_options()
    choices = {**CHOICES, "model": tuple(flags.models()),
               **{name: opt.choices for name, opt in {**rule_options, **flags.net_options()}.items()
                  if opt.choices}}
    for name, text in flags.help_texts().items():
        flag, kind, default = "--" + name.replace("_", "-"), types[name], defaults[name]
        if kind is bool:
            t.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # int | None
        convert = {int: int, float: float}.get(kind, str)
        shown = "" if name in rule_options or default is None else f" (default: {default})"
        if name in grid.sweepable():  # a comma list sweeps it
            listed = _Choices(choices[name]) if name in choices else None
            t.add_argument(flag, type=_values(name, convert), default=default, choices=listed,
                           help=text + shown + "; a comma list sweeps it")
            continue
        t.add_argument(flag, type=convert, default=default, choices=choices.get(name),
                       help=text + shown)
    t.add_argument("--seeds", type=_values("seeds", int), default=None,
                   help="sweep seeds: N for 0..N-1, or a comma list (replaces --seed)")
    t.add_argument("--max-parallel", type=int, default=None,
                   help="a sweep trains at most this many runs at a time (default: what fits, and "
                        "on the CPU what is faster than one after another)")
    _after_training_commands(commands)
    return p


def _after_training_commands(commands) -> None:
    """``jdfa sample RUN_DIR`` and ``jdfa eval RUN_DIR``, on a trained run's folder (`lm`)."""
    s = commands.add_parser("sample", help="text from a trained language model run",
                            description="Prints the prompt and the bytes the run's language model draws "
                                        "after it (its newest checkpoint; the same seed, the same text).")
    s.add_argument("run_dir", metavar="RUN_DIR", help="the run's folder (its --out)")
    s.add_argument("--prompt", default="\n", help="the text to continue, UTF-8; only its last CONTEXT "
                                                  "bytes are read (default: a newline)")
    s.add_argument("--tokens", type=int, default=200, help="bytes to draw (default: 200)")
    s.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature of the draws; 0: the most likely byte each time (default: 0.8)")
    s.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    e = commands.add_parser("eval", help="evaluate a trained run on its validation data",
                            description="Prints one JSON line: the newest checkpoint's validation loss and "
                                        "accuracy; for a language model also perplexity and bits per "
                                        "byte, against the unigram and bigram baselines of its text.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="the run's folder (its --out)")
    e.add_argument("--data-dir", default=None, help="folder holding the dataset's files (default: the "
                                                    "run's own, else $JDFA_DATA_DIR)")


class _Choices(tuple):
    """A flag's choices that also admit a comma list of them (argparse checks with ``in``)."""

    def __contains__(self, value):
        return all(tuple.__contains__(self, v) for v in (value if isinstance(value, list) else [value]))


def _values(name: str, convert):
    """An argparse type: one value, or a comma list of them (returned as a list)."""
    def parse(text: str):
        values = [convert(v) for v in text.split(",")]
        return values if len(values) > 1 or name == "seeds" else values[0]

    parse.__name__ = {int: "int", float: "float"}.get(convert, "value")
    return parse


def _name_flags(message: str) -> str:
    """Adds the command-line flag after each field name (``block_size`` -> ``block_size
    (--block-size)``) in a message the library wrote for Python callers."""
    for name in sorted((n for n in flags.help_texts() if "_" in n or n == "lr"), key=len, reverse=True):
        flag = "--" + name.replace("_", "-")
        if flag not in message:
            message = re.sub(rf"(?<![\w.-])('?){name}\1(?![\w(=.])", rf"\g<0> ({flag})", message, count=1)
    return message


def main(argv=None) -> int:
    """``jdfa train ...``, ``jdfa sample ...``, ``jdfa eval ...``; the exit status (0, 2 for bad
    flags or data, 130 when interrupted)."""
    token = flags.SPEAKING.set("cli")  # the driver's errors name the flags, not Config's fields
    try:
        return _main(argv)
    finally:
        flags.SPEAKING.reset(token)


def _main(argv) -> int:
    args = vars(parser().parse_args(argv))
    command = args.pop("command")
    if command != "train":
        return _after_training(command, args)
    seeds, max_parallel = args.pop("seeds"), args.pop("max_parallel")
    if seeds is not None:
        if len(seeds) == 1 and seeds[0] < 1:
            print(f"error: --seeds {seeds[0]}: give a count N >= 1 (seeds 0..N-1) or a comma list",
                  file=sys.stderr)
            return 2
        args["seed"] = list(range(seeds[0])) if len(seeds) == 1 else seeds
    lists = {k: v for k, v in args.items() if isinstance(v, list)}
    try:
        if lists:
            return _sweep(args, lists, max_parallel)
        config, dataset = flags.from_flags(args)
        summary = train(config, data=dataset)
    except (ValueError, MemoryError) as err:  # bad flags or data: the message says what to change
        print(f"error: {_name_flags(str(err))}", file=sys.stderr)
        return 2
    except Interrupted as stopped:  # the loop said what it saved; the result still goes to stdout
        summary = stopped.result
    except KeyboardInterrupt:  # a second Ctrl-C before training began
        print("aborted before training began", file=sys.stderr)
        return 130
    summary.pop("state")
    print(json.dumps(summary))
    return EXIT[summary["status"]]


def _after_training(command: str, args: dict) -> int:
    """``jdfa eval``: one JSON line on stdout; ``jdfa sample``: the text."""
    try:
        if command == "eval":
            result = lm.evaluate_run(args["run_dir"], args["data_dir"])
            print(lm.in_words(result), file=sys.stderr)
            print(json.dumps(result))
            return 0
        text, cut = lm.sample_run(args["run_dir"], args["prompt"], args["tokens"], args["temperature"],
                                  args["seed"])
    except ValueError as err:  # the message names the problem and the fix
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cut:
        print(f"note: the prompt's first {cut} bytes lie beyond the net's context and were not read",
              file=sys.stderr)
    print(text)
    return 0


EXIT = {"finished": 0, "diverged": 1, "invalid_data": 2, "interrupted": 130, "aborted": 130}


def _sweep(args: dict, lists: dict, max_parallel: int | None) -> int:
    """Trains the sweep of ``lists``; prints one JSON line: the status and each run's result."""
    configs, dataset = grid.configs(args, lists)
    try:
        result = train_runs(configs, data=dataset, max_parallel=max_parallel)
    except Interrupted as stopped:
        result = stopped.result
    keys = ("status", "step", "test_accuracy", "best_test_accuracy", "best_step")
    print(json.dumps({"status": result["status"], "out": result["out"], "runs": [
        {"name": run["name"], **{k: run["summary"].get(k) for k in keys}} for run in result["runs"]]}))
    if result["status"] != "finished":
        return EXIT[result["status"]]
    return max(EXIT[run["status"]] for run in result["runs"])
