"""The training driver: `train` a `Config` from a script, ``jdfa train ...`` from a shell.

Modules, one concern each: `config` (what defines a run), `flags` (the flat flag names of the
command line and the experiments), `loop` (the loop, read top to bottom), `chunks` (the data
order and the jitted chunk of steps, vmappable over runs), the periodic actions `evaluation`,
`angles`, `runlog`, `checkpoints` (which also writes and restores them), and `summary`,
`progress`, `signals`, `plots`, `cli`; after training, `lm` (`load_run`, ``jdfa eval``,
``jdfa sample``). Sweeps: `grid` (the runs of a sweep), `packing` (how many
runs one program holds), `sweeps` (`sweep`: the loop over a run axis), `sweep_report`
(``sweep.json``, ``.md``, ``.png``).
"""

from jdfa.driver.config import Config, net_for_data
from jdfa.driver.flags import from_flags
from jdfa.driver.lm import load_run
from jdfa.driver.summary import Interrupted, Summary
from jdfa.driver.sweeps import sweep, train, train_runs

__all__ = ["Config", "Interrupted", "Summary", "from_flags", "load_run", "net_for_data", "sweep", "train",
           "train_runs"]
