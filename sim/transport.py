"""The ``rtl`` transport: the Verilator model of the top, one transaction per call.

The full-frame bench's executable (:mod:`edgevit_hw.sim.fullframe`, same build and cache) runs
as a server process (``fullframe serve``, see ``sim/serve.h``): each call here is one command
on its stdin, and the C++ side runs exactly the cycles the transaction needs (a register access
to its response, ``wait`` until a token frame is complete or a bound), with the same behavioral
DRAM, AXI-Lite master, pixel source and token sink as the whole-frame runs. No Python runs per
cycle. A process rather than a shared library: models of several specs live side by side in
one Python process, and a crash of the model cannot take the caller down.
"""

from __future__ import annotations

import subprocess
import tempfile

import numpy as np

from edgevit_hw.core.derive import HwParams
from edgevit_hw.driver.errors import TransportError
from edgevit_hw.driver.transport import Transport

OUTSTANDING = 64  # DRAM bursts the model queues (as the whole-frame runs)


class RtlTransport(Transport):
    """The top under Verilator; ``latency``: DRAM cycles from a read request to its data."""

    name = "rtl"

    def __init__(self, hw: HwParams, latency: int | None = None):
        from edgevit_hw.sim.fullframe import LATENCY

        self.hw = hw
        self.latency = LATENCY if latency is None else latency
        self.proc: subprocess.Popen | None = None
        self.base = 0
        self._waiting = 0

    # ------------------------------------------------------------------ process ----

    def _start(self) -> None:
        from edgevit_hw.sim.fullframe import BASE, build

        exe = build(self.hw)
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([str(exe), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log)  # fmt: skip
        self.base = BASE
        s = self.hw.streams
        self._cmd(
            f"config {s.pixels_per_beat} {s.token_bits} {s.tokens_per_beat} {BASE}"
            f" {self.latency} {OUTSTANDING} {s.beat_bytes}"
        )

    def _cmd(self, line: str, payload: bytes = b"") -> list[int]:
        """Send one command, return the integers of its ``ok`` reply."""
        if self.proc is None:
            raise TransportError("the rtl transport is closed")
        try:
            self.proc.stdin.write(line.encode() + b"\n" + payload)
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline().decode().strip()
        except (BrokenPipeError, OSError):
            reply = ""
        if reply.startswith("ok"):
            return [int(x) for x in reply.split()[1:]]
        if reply.startswith("err "):
            raise TransportError(f"rtl model: {reply[4:]} (command {line!r})")
        raise TransportError(f"the rtl model ended (status {self.proc.poll()}): {self._stderr()}")

    def _stderr(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return " ".join(text.split()[-60:]) or "no message"

    # ---------------------------------------------------------------- transport ----

    def reset(self) -> None:
        if self.proc is None:
            self._start()
        self._cmd("reset")

    def read(self, offset: int) -> int:
        return self._cmd(f"read {offset}")[0]

    def write(self, offset: int, value: int) -> None:
        self._cmd(f"write {offset} {value & 0xFFFFFFFF}")

    def load_dram(self, image: bytes) -> int:
        self._cmd(f"image {len(image)}", bytes(image))
        return self.base

    def send(self, beats: np.ndarray) -> None:
        data = np.ascontiguousarray(beats, np.uint8)
        self._cmd(f"send {len(data)}", data.tobytes())

    def wait(self, cycles: int) -> int:
        ran, self._waiting = self._cmd(f"run {max(0, int(cycles))}")
        return ran

    def tokens_waiting(self) -> bool:
        self.wait(0)
        return self._waiting > 0

    def take(self) -> tuple[np.ndarray, int | None]:
        n, cycle = self._cmd("take")
        data = self.proc.stdout.read(4 * n)
        return np.frombuffer(data, np.int32).astype(np.int64), cycle

    def pixel_cycles(self, sent: int) -> tuple[int, int] | None:
        first, last = self._cmd(f"pixels {sent}")
        return (first, last) if last else None

    def inject_read_error(self, address: int | None) -> None:
        """DRAM reads of the beat holding byte ``address`` answer SLVERR from now on (None:
        every beat answers OKAY again). A test's fault injection, not a transport call."""
        self._cmd("fault" if address is None else f"fault {address}")

    def close(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            self._log.close()

    def __del__(self):
        self.close()
