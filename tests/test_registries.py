"""The registries describe themselves: a rule defined here, with an option of its own, gets its
command-line flag, its ``--help`` line, its grid axis and its spec from its class alone, and the
driver names no net and no rule."""

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np
import pytest

import jdfa
from jdfa import rules
from jdfa.driver import cli, flags, grid
from jdfa.options import option

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def damped():
    """A DFA whose feedback deltas are scaled by ``damping``: registered for one test only."""

    @dataclasses.dataclass(frozen=True)
    class Damped(rules.FeedbackRule):
        name: ClassVar[str] = "damped"
        damping: float = option(0.5, "damped: the share of the DFA delta each layer takes",
                                choices=(0.25, 0.5, 0.75))

        def plan(self, depth):
            return (rules.Source("error"),) * depth

        def feedback_fprime(self, fprime, keep):
            return None if fprime is None else self.damping * super().feedback_fprime(fprime, keep)

    yield Damped
    del rules.RULES["damped"]


XOR = dict(dataset="xor", depth=2, width=8, steps=4, batch_size=4, eval_every=2, progress=False)


def test_a_new_rule_brings_its_flag_help_grid_axis_and_spec(damped):
    text = cli.parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert re.search(r"--damping \{0\.25,0\.5,0\.75\}\s+damped: the share of the DFA delta", text)
    assert "damped" in flags.help_texts()["rule"]
    args = cli.parser().parse_args(["train", "--rule", "damped", "--damping", "0.25,0.75"])
    assert args.damping == [0.25, 0.75]
    with pytest.raises(SystemExit):  # its choices are checked like any flag's
        cli.parser().parse_args(["train", "--rule", "damped", "--damping", "0.3"])

    config, data = flags.from_flags({**XOR, "rule": "damped", "damping": 0.25})
    assert config.rule == damped(damping=0.25) and config.rule.spec == "damped"
    assert "damping" in grid.sweepable()
    configs = grid.expand(config, data, damping=[0.25, 0.75])
    assert [c.rule.damping for c in configs] == [0.25, 0.75]
    assert [grid.run_name(s) for s in grid.varying(configs)] == ["damping=0.25", "damping=0.75"]
    # a structural option: two programs, unlike a feedback scale, which one program holds per run
    assert grid.structure(configs[0]) != grid.structure(configs[1])
    scaled = grid.expand(config, data, feedback_scale=[1.0, 2.0])
    assert grid.structure(scaled[0]) == grid.structure(scaled[1])


def test_the_new_rule_trains_and_its_option_acts(damped):
    config, data = flags.from_flags({**XOR, "rule": "damped", "damping": 0.25})
    x, y = data[0]
    params, feedback = jdfa.init(jax.random.key(0), config.net, config.rule)
    quarter = jdfa.update_direction(config.net, config.rule, params, feedback, x, y)
    whole = jdfa.update_direction(config.net, jdfa.dfa(), params, feedback, x, y)
    np.testing.assert_allclose(quarter.hidden.w, 0.25 * whole.hidden.w, rtol=1e-5, atol=1e-7)
    summary = jdfa.train(config, data=data)
    assert summary["status"] == "finished"
def test_the_driver_names_no_net_and_no_rule():
    # the nets reach the driver through their registry: flags, choices and help come from them
    assert {"mlp", "conv", "transformer"} <= set(flags.models())
    assert flags.net_options()["depth"].help.startswith("mlp: number of hidden layers")
    found = subprocess.run(["grep", "-rnE", r'"(mlp|conv|transformer)"', str(ROOT / "jdfa" / "driver")],
                           capture_output=True, text=True).stdout
    assert found == "", found
