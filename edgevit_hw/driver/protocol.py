"""The register protocol of the top, written once over a :class:`Transport` (rtl and pynq).

Offsets and bits come from :mod:`edgevit_hw.program.regmap`; nothing here retypes one.

* ``connect``: reset, write the DRAM image (program, weights, constants); ``spec_id`` reads
  SPEC_ID (the accelerator refuses a mismatch before anything runs); ``start`` writes
  DRAM_BASE, FRAMES = 0 (run until reset), TASK and CTRL.ap_start. The run then takes frame
  after frame.
* ``results(frames, task)``: TASK is written while no frame is in flight (the top samples it
  at a frame's first pixel), then up to ``depth`` frames are kept in flight: frame n + 1's
  pixels stream into the top's second pixel bank while frame n computes. Outcomes are taken in
  order; frame n's outcome is its token frame (then FRAMES_OK and FRAME_CYCLES are read) or
  one more FRAMES_DROPPED, whichever comes first. FRAMES_DROPPED is read before the token
  stream is looked at, and the device is polled at most every ``chunk`` cycles (a quarter of
  the modeled program): a drop seen with no token frame waiting is this frame's (a later
  frame's outcome cannot come before this one's); a token frame waiting is this frame's unless
  the host's frame check (the hardware's rule) says it must be dropped, since a drop and the
  next frame's whole program cannot both fit in one poll. So a dropped frame never shifts the
  outputs of the frames after it.
* A drop's reason: the host's frame check (malformed frame, bad task) when STATUS has that
  bit, else STATUS.axi_read_error (cleared once reported), else the raw STATUS. Results carry
  the error (:class:`MalformedFrame`, :class:`BadTask`, :class:`AxiReadError`); no tokens and
  no drop within the bound raises :class:`DeviceTimeout` naming STATUS and CTRL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.driver.backends import FrameResult, beats_of, check_frame
from edgevit_hw.driver.errors import (
    AxiReadError,
    BadTask,
    DeviceTimeout,
    DriverError,
    MalformedFrame,
)
from edgevit_hw.driver.frames import Beats, Frame
from edgevit_hw.driver.transport import Transport
from edgevit_hw.program import regmap

DEPTH = 3  # frames in flight: one computing, one in the spare pixel bank, one queued


def _names(value: int, fields) -> str:
    return ", ".join(f.name for f in fields if value & f.mask) or "none"


@dataclass
class _Sent:
    index: int
    item: Frame | Beats
    sent: int  # the transport's frame number since reset
    expected: DriverError | None  # the host's frame check: why the device must drop it


class RegisterProtocol:
    """A device backend: the register map and the streams over ``transport``.

    ``max_cycles``: the bound on one frame's outcome (default: 6x the modeled program plus
    200k cycles); ``depth``: frames kept in flight."""

    def __init__(self, transport: Transport, qm: QuantModel, hw: HwParams,
                 max_cycles: int | None = None, depth: int = DEPTH):  # fmt: skip
        self.t, self.qm, self.hw, self.depth = transport, qm, hw, depth
        self.name = transport.name
        self.off = {r.name: r.offset for r in regmap.registers(hw)}
        self.max_cycles, self.chunk = max_cycles, 0
        self.seen = {"FRAMES_OK": 0, "FRAMES_DROPPED": 0}
        self.sent = 0  # frames handed to the transport since reset
        self.program, self.base = None, 0
        self.broken: str | None = None
        self.active = False

    # ------------------------------------------------------------------ registers ----

    def read(self, name: str) -> int:
        return self.t.read(self.off[name])

    def read64(self, name: str) -> int:
        lo = self.read(f"{name}_LO")  # LO first: it latches HI
        return lo | self.read(f"{name}_HI") << 32

    def write(self, name: str, value: int) -> None:
        self.t.write(self.off[name], value)

    def _mask(self, fields, name: str) -> int:
        return next(f.mask for f in fields if f.name == name)

    # --------------------------------------------------------------------- opening ----

    def connect(self) -> None:
        """Reset the device and write the DRAM image."""
        from edgevit_hw.program.compiler import compile_program
        from edgevit_hw.program.perf import estimate

        self.program = compile_program(self.qm, self.hw)
        total = estimate(self.program).total
        self.chunk = max(1_000, total // 4)
        self.max_cycles = self.max_cycles or 6 * total + 200_000
        self.t.reset()
        self.base = self.t.load_dram(bytes(self.program.image))

    def spec_id(self) -> int:
        return self.read("SPEC_ID")

    def start(self) -> None:
        """DRAM_BASE, FRAMES = 0 (frames until reset), TASK 0, ap_start."""
        self.write("DRAM_BASE_LO", self.base & 0xFFFFFFFF)
        self.write("DRAM_BASE_HI", self.base >> 32)
        self.write("FRAMES", 0)
        self.write("TASK", 0)
        self.write("CTRL", self._mask(regmap.CTRL_FIELDS, "ap_start"))
        self.seen = {k: self.read(k) for k in self.seen}

    def close(self) -> None:
        self.t.close()

    # ---------------------------------------------------------------------- frames ----

    def results(self, items: Iterable[Frame | Beats], task: int) -> Iterator[FrameResult]:
        """One result per frame, in order, keeping ``depth`` frames in flight."""
        if self.broken:
            raise DeviceTimeout(f"the {self.name} device is in an unknown state after: "
                                f"{self.broken}; open it again")  # fmt: skip
        if self.active:
            raise DriverError(f"the {self.name} device is streaming already: finish or close"
                              " that stream before starting another")  # fmt: skip
        self.active = True
        self.write("STATUS", 0xFFFFFFFF)  # nothing in flight: clear the sticky bits
        self.write("TASK", task)
        flight: deque[_Sent] = deque()
        try:
            for i, item in enumerate_lazily(iter(items), lambda: self._drain(flight)):
                flight.append(self._send(i, item, task))
                if len(flight) >= self.depth:
                    yield self._outcome(flight.popleft())
            while flight:
                yield self._outcome(flight.popleft())
        except GeneratorExit:  # the caller stopped early: let the device finish what it has
            self._drain(flight)
            raise
        finally:
            self.active = False

    def _drain(self, flight: deque[_Sent]) -> None:
        while flight and not self.broken:
            self._outcome(flight.popleft())

    def _send(self, index: int, item: Frame | Beats, task: int) -> _Sent:
        expected = check_frame(item, self.hw)[1]
        if expected is None and task >= self.hw.arith.tasks:
            expected = BadTask(f"frame {item.name}: task {task} is not below the"
                               f" {self.hw.arith.tasks} tasks; dropped")  # fmt: skip
        self.t.send(beats_of(item, self.hw))
        self.sent += 1
        return _Sent(index, item, self.sent - 1, expected)

    def _outcome(self, f: _Sent) -> FrameResult:
        spent = 0
        while True:
            dropped = self.read("FRAMES_DROPPED") > self.seen["FRAMES_DROPPED"]
            waiting = self.t.tokens_waiting()  # looked at after the counter (see the module)
            if waiting and not (dropped and f.expected is not None):
                return self._finished(f)
            if dropped:
                return self._dropped(f)
            if spent >= self.max_cycles:
                raise self._timeout(f, spent)
            spent += max(1, self.t.wait(min(self.chunk, self.max_cycles - spent)))

    def _finished(self, f: _Sent) -> FrameResult:
        elements, last_token = self.t.take()
        for _ in range(1000):  # FRAMES_OK follows the last token by a few cycles
            if self.read("FRAMES_OK") > self.seen["FRAMES_OK"]:
                break
        else:
            raise self._timeout(f, 0, "a token frame came but FRAMES_OK did not count it")
        self.seen["FRAMES_OK"] += 1
        a = self.hw.arith
        if elements.size != a.tokens * a.embed_dim:
            raise DriverError(f"frame {f.item.name}: the device sent {elements.size} output"
                              f" elements, not {a.tokens * a.embed_dim}")  # fmt: skip
        res = self._result(f, elements.reshape(a.tokens, a.embed_dim), None)
        res.cycles = self.read64("FRAME_CYCLES")
        res.tokens_out = last_token
        return res

    def _dropped(self, f: _Sent) -> FrameResult:
        self.seen["FRAMES_DROPPED"] += 1
        status = self.read("STATUS")
        return self._result(f, None, self._reason(f, status))

    def _reason(self, f: _Sent, status: int) -> DriverError:
        bits = {b.name for b in regmap.STATUS_FIELDS if status & b.mask}
        where = f"STATUS 0x{status:x}: {_names(status, regmap.STATUS_FIELDS)}"
        host = {MalformedFrame: {"short_frame", "long_frame"}, BadTask: {"bad_task"}}
        exp = f.expected
        if exp is not None and bits & host[type(exp)]:
            return type(exp)(f"{exp} ({where})")
        if "axi_read_error" in bits:
            self.write("STATUS", self._mask(regmap.STATUS_FIELDS, "axi_read_error"))
            return AxiReadError(f"frame {f.item.name}: a DRAM read answered with an error;"
                                f" dropped ({where})")  # fmt: skip
        return DriverError(f"frame {f.item.name}: dropped by the device ({where})")

    def _result(self, f: _Sent, tokens, error) -> FrameResult:
        res = FrameResult(f.index, f.item.name, tokens, error)
        res.pixels = f.item.pixels if isinstance(f.item, Frame) else None
        res.pixels_in = self.t.pixel_cycles(f.sent)
        return res

    def _timeout(self, f: _Sent, spent: int, what: str = "") -> DeviceTimeout:
        status, ctrl = self.read("STATUS"), self.read("CTRL")
        what = what or f"no tokens and no drop within {spent:,} cycles"
        self.broken = (f"frame {f.item.name}: {what} (STATUS 0x{status:x}:"
                       f" {_names(status, regmap.STATUS_FIELDS)}; CTRL 0x{ctrl:x}:"
                       f" {_names(ctrl, regmap.CTRL_FIELDS)})")  # fmt: skip
        return DeviceTimeout(self.broken)


def enumerate_lazily(it: Iterator, on_error) -> Iterator[tuple[int, object]]:
    """``enumerate(it)``, calling ``on_error()`` before an exception of ``it`` propagates
    (a bad frame in the source must not leave frames in flight unaccounted for)."""
    i = 0
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception:
            on_error()
            raise
        yield i, item
        i += 1
