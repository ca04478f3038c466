"""``python -m edgevit_hw.csim``: the HLS C-simulation command (see :mod:`edgevit_hw.hls.csim`)."""

import sys

from edgevit_hw.hls.csim import main

if __name__ == "__main__":
    sys.exit(main())
