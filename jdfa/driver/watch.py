"""What a run's numbers say beyond NaN: a loss blown up past the divergence limit (a finite
divergence), and hidden layers that never update (a warning)."""

from __future__ import annotations

from jdfa.driver.config import Config
from jdfa.driver.interval import Interval
from jdfa.driver.progress import say
from jdfa.driver.runlog import RunLog


class Watch:
    """Watches one run (``name`` labels it in messages; None for a run alone)."""

    def __init__(self, config: Config, name: str | None):
        self.config, self.name, self.warned = config, name, False

    def first_test_loss(self, log: RunLog) -> float | None:
        """The run's first evaluated test loss: what the limit is a multiple of."""
        return next((r["test_loss"] for r in log.records if "test_loss" in r), None)

    def too_high(self, log: RunLog, loss: float) -> bool:
        """Whether ``loss`` is past ``divergence_factor`` times the first evaluated test loss (NaN
        counts; before any evaluation, or with the factor 0, nothing is)."""
        factor, first = self.config.divergence_factor, self.first_test_loss(log)
        return bool(factor and first is not None and not loss <= factor * first)

    def never_updated(self, interval: Interval, step: int) -> None:
        """Warns, once, of hidden layers whose updates were exactly zero at every step of the
        interval ending at ``step``, under a rule that trains them (dead or saturated units, a
        vanished signal)."""
        cfg = self.config
        dead = [i for i in interval.never_updated() if i <= cfg.net.depth]
        if dead and cfg.rule.trains_hidden_layers and not self.warned:
            self.warned = True
            who = f"run {self.name}: " if self.name is not None else ""
            say(f"{who}hidden layer(s) {dead} got exactly zero updates at every step up to step {step} "
                f"under {cfg.rule.spec}, which trains them: dead or saturated units, or a vanished "
                "signal (a lower learning rate, another init or activation may help)")
