"""Backends of the driver. Each takes the frames of one call (fitted frames or raw beats) and a
task id, and gives one :class:`FrameResult` per frame, in order: a dropped frame has no
tokens and carries its error, and never shifts the frames after it.

``golden`` is the golden model behind the hardware's frame check; ``csim`` runs the HLS
C-simulation of the top function, one frame per call of the compiled testbench. ``rtl`` (the
Verilator model of the RTL top) and ``pynq`` (a board) are one
:class:`~edgevit_hw.driver.protocol.RegisterProtocol` over their transports: the register map
and the AXI streams, driven as a board is.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.driver.errors import DeviceTimeout, DriverError, MalformedFrame
from edgevit_hw.driver.frames import Beats, Frame
from edgevit_hw.program.streams import Received, frame_beats, pixel_beats, receive, unpatchify


@dataclass
class FrameResult:
    """One frame's outcome: integer tokens [N, D] (None when dropped), the error that dropped
    it, and its cycles where the backend measures or models them."""

    index: int
    name: str
    tokens: np.ndarray | None
    error: DriverError | None = None
    cycles: int | None = None
    floats: np.ndarray | None = None  # dequantized tokens, on request
    pixels: np.ndarray | None = None  # the fitted frame that was sent (None for raw beats)
    pixels_in: tuple[int, int] | None = None  # cycles of its first and last pixel (rtl)
    tokens_out: int | None = None  # cycle of its last output element (rtl)

    @property
    def ok(self) -> bool:
        return self.error is None


def beats_of(item: Frame | Beats, hw: HwParams) -> np.ndarray:
    return item.beats if isinstance(item, Beats) else frame_beats(item.pixels, hw)


def check_frame(item: Frame | Beats, hw: HwParams) -> tuple[Received, MalformedFrame | None]:
    """The frame check on what is sent (the same rule as the hardware's): what the hardware
    receives, and the error when it drops the frame."""
    rec = receive(beats_of(item, hw), hw)
    if rec.patches is not None:
        return rec, None
    want = pixel_beats(hw)
    kind = "short" if rec.short else "long"
    return rec, MalformedFrame(f"frame {item.name}: {kind} frame of {rec.consumed} pixel"
                               f" beats (expected {want}); dropped")  # fmt: skip


class DirectBackend:
    """A backend that runs one frame per call (``run_one``); nothing to connect or start."""

    def connect(self) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def results(self, items: Iterable[Frame | Beats], task: int) -> Iterator[FrameResult]:
        for i, item in enumerate(items):
            res = self.run_one(i, item, task)
            res.pixels = item.pixels if isinstance(item, Frame) else None
            yield res


class GoldenBackend(DirectBackend):
    """The golden model (the definition of every output bit), behind the frame check."""

    name = "golden"

    def __init__(self, qm: QuantModel, hw: HwParams):
        self.qm, self.hw = qm, hw

    def spec_id(self) -> int:
        return self.hw.hash32

    def run_one(self, index: int, item: Frame | Beats, task: int) -> FrameResult:
        rec, err = check_frame(item, self.hw)
        if err is not None:
            return FrameResult(index, item.name, None, err)
        pixels = item.pixels if isinstance(item, Frame) else unpatchify(rec.patches, self.qm.spec)
        return FrameResult(index, item.name, golden_forward(self.qm, pixels, task).tokens)


class CsimBackend(DirectBackend):
    """The HLS C-simulation (compiled once per project, cached); cycles are the HLS model's."""

    name = "csim"

    def __init__(self, qm: QuantModel, hw: HwParams, timeout: float = 900.0):
        from edgevit_hw.hls import csim

        self.qm, self.hw, self.timeout = qm, hw, timeout
        self.csim = csim
        self.binary = csim.build(qm, hw)

    def _call(self, beats: np.ndarray, task: int, frames: int):
        a = self.hw.arith
        try:
            return self.csim.run_beats(self.binary, beats, task, frames, (a.tokens, a.embed_dim),
                                       timeout=self.timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise DeviceTimeout(f"the C-simulation did not finish within {self.timeout:g} s"
                                " (status: frame still running)") from None  # fmt: skip

    def spec_id(self) -> int:
        return self._call(np.zeros((0, 2), np.uint8), 0, 0).spec_id

    def run_one(self, index: int, item: Frame | Beats, task: int) -> FrameResult:
        res = self._call(beats_of(item, self.hw), task, 1)
        if res.frames_bad:
            err = check_frame(item, self.hw)[1] or DriverError(
                f"frame {item.name}: dropped by the device (status 0x{res.status:x})"
            )
            return FrameResult(index, item.name, None, err, res.cycles)
        return FrameResult(index, item.name, res.frames[0], None, res.cycles)


def rtl_backend(qm: QuantModel, hw: HwParams, latency: int | None = None,
                max_cycles: int | None = None):  # fmt: skip
    """The Verilator model of the top (``latency``: DRAM read latency in cycles)."""
    from edgevit_hw.driver.protocol import RegisterProtocol
    from edgevit_hw.sim.transport import RtlTransport

    return RegisterProtocol(RtlTransport(hw, latency), qm, hw, max_cycles)


def pynq_backend(qm: QuantModel, hw: HwParams, bitfile: str = "evh_top.bit",
                 max_cycles: int | None = None, **names):  # fmt: skip
    """A board through PYNQ (``bitfile`` and its .hwh; ``names``: the IP names)."""
    from edgevit_hw.driver.protocol import RegisterProtocol
    from edgevit_hw.driver.pynq_transport import PynqTransport

    return RegisterProtocol(PynqTransport(hw, bitfile, **names), qm, hw, max_cycles)


BACKENDS = {"golden": GoldenBackend, "csim": CsimBackend, "rtl": rtl_backend,
            "pynq": pynq_backend}  # fmt: skip
