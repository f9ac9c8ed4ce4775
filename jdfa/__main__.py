"""``python -m jdfa ...``: the same command line as the ``jdfa`` console script."""

import sys

from jdfa.driver.cli import main

sys.exit(main())
