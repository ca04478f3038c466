"""The host driver: :class:`Accelerator` over the golden model, the C-simulation, the RTL
simulation and a PYNQ board (the last two through one register protocol over a transport)."""

from edgevit_hw.driver.accelerator import Accelerator, Artifacts
from edgevit_hw.driver.backends import FrameResult
from edgevit_hw.driver.errors import (
    AxiReadError,
    BadTask,
    DeviceTimeout,
    DriverError,
    MalformedFrame,
    SpecHashMismatch,
    TransportError,
)
from edgevit_hw.driver.frames import Beats, Frame

__all__ = [
    "Accelerator", "Artifacts", "AxiReadError", "BadTask", "Beats", "DeviceTimeout",
    "DriverError", "Frame", "FrameResult", "MalformedFrame", "SpecHashMismatch", "TransportError",
]  # fmt: skip
