"""The small interface between the register protocol and a device: only transports differ.

A transport moves bytes; it knows nothing of frames' meaning, tasks or status bits (that is
:mod:`edgevit_hw.driver.protocol`, written once). Time is counted in clock cycles of the
device: the Verilator model counts them exactly, a board converts its wall time at the clock.

Implementations: :class:`edgevit_hw.sim.transport.RtlTransport` (the Verilator model of the
top) and :class:`edgevit_hw.driver.pynq_transport.PynqTransport` (a board).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Transport(ABC):
    """Registers (AXI4-Lite), the DRAM image, the pixel stream in and the token stream out."""

    name: str

    @abstractmethod
    def reset(self) -> None:
        """Bring the device to its reset state (a board: load the overlay)."""

    @abstractmethod
    def read(self, offset: int) -> int:
        """One 32-bit register read at byte ``offset``; returns when its data is back."""

    @abstractmethod
    def write(self, offset: int, value: int) -> None:
        """One 32-bit register write; returns when the write is acknowledged."""

    @abstractmethod
    def load_dram(self, image: bytes) -> int:
        """Place the DRAM image where the device can read it; returns its bus address."""

    @abstractmethod
    def send(self, beats: np.ndarray) -> None:
        """Queue one frame's pixel beats, uint8 [n, pixels_per_beat + 1] (pixels, tlast);
        returns at once (the device takes them as it can)."""

    @abstractmethod
    def wait(self, cycles: int) -> int:
        """Let the device run until a token frame is waiting or ``cycles`` have passed;
        returns the cycles that passed."""

    @abstractmethod
    def tokens_waiting(self) -> bool:
        """A whole token frame (through its tlast) has arrived and was not taken yet."""

    @abstractmethod
    def take(self) -> tuple[np.ndarray, int | None]:
        """The oldest waiting token frame: its signed elements (int64) and the cycle of its
        last element (None when the transport cannot tell)."""

    def pixel_cycles(self, sent: int) -> tuple[int, int] | None:
        """Cycles of the first and last pixel of the ``sent``-th frame since reset (None when
        the transport cannot tell or the frame is not in yet)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the device (idempotent)."""
