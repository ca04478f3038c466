"""The host driver: :class:`Accelerator` over the golden model and the C-simulation (the RTL
simulation and the board come with the RTL top)."""

from edgevit_hw.driver.accelerator import Accelerator, Artifacts
from edgevit_hw.driver.backends import FrameResult
from edgevit_hw.driver.errors import (
    AxiReadError,
    BadTask,
    DeviceTimeout,
    DriverError,
    MalformedFrame,
    SpecHashMismatch,
)
from edgevit_hw.driver.frames import Beats, Frame

__all__ = [
    "Accelerator", "Artifacts", "AxiReadError", "BadTask", "Beats", "DeviceTimeout",
    "DriverError", "Frame", "FrameResult", "MalformedFrame", "SpecHashMismatch",
]  # fmt: skip
