"""``python -m edgevit_hw.sim``: the simulation report (see :mod:`edgevit_hw.sim.report`)."""

import sys

from edgevit_hw.sim.report import main

sys.exit(main())
