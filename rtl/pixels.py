"""The top's frame receiver: ``s_axis`` pixels into a double-buffered pixel memory.

Each beat carries ``streams.pixels_per_beat`` pixels (lane j in bits 8j ..), written to the
memory in one cycle: the count divides both a patch and an activation word, so a beat's pixels
share one word of one row.

The pixel buffer holds :data:`PIXEL_FRAMES` frames (bank ``b`` at rows ``b * patches ..``), so
frame n + 1 streams in while the program runs on frame n and the input never waits for the
compute. A frame is the beats through its first ``tlast``: fewer beats than the frame's
is a short frame, more (no ``tlast`` on the last beat) a long one, drained to its ``tlast``
(:func:`edgevit_hw.program.streams.receive`). Each received frame leaves one entry in an
in-order result queue: its bank, the TASK register at its first pixel, its start cycle and
why it must be dropped (short, long, bad task id); a good frame's bank stays taken until the
sequencer ``release``\\ s it. The receiver takes beats only while a run is active
(``enable``), a bank is free and the run still wants frames (``want``).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.data import StructLayout
from amaranth.lib.fifo import SyncFIFOBuffered
from edgevit_hw.rtl.actmem import PIXEL_FRAMES, row_words

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.isa import Buf


def result_layout() -> StructLayout:
    return StructLayout({"bank": 1, "task": 32, "start": 64, "short": 1, "long": 1, "bad": 1})


class FrameReceiver(Elaboratable):
    """Members: ``tdata`` / ``tvalid`` / ``tready`` / ``tlast`` (s_axis), ``task`` (the TASK
    register), ``now`` (a free-running cycle count), ``enable``, ``want``; ``result`` (a
    stream of :func:`result_layout` entries), ``release`` + ``release_bank``; ``first``
    pulses on each frame's first beat, ``received`` on its last."""

    def __init__(self, hw: HwParams, mem):
        self.hw = hw
        self.tdata, self.tvalid = Signal(hw.streams.s_axis_bits), Signal()
        self.tready, self.tlast = Signal(), Signal()
        self.wr = mem.write_client("pix", (Buf.PIXELS,), hw.streams.pixel_bits + 1)
        self.task, self.now = Signal(32), Signal(64)
        self.enable, self.want = Signal(), Signal()
        self.release, self.release_bank = Signal(), Signal()
        self.first, self.received = Signal(), Signal()
        self.fifo = SyncFIFOBuffered(width=result_layout().size, depth=4)
        self.result = self.fifo.r_stream

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = self.fifo
        a, s = self.hw.arith, self.hw.streams
        per, bits = s.pixels_per_beat, s.pixel_bits
        groups, cols = s.act_lanes // per, a.patch_dim // per  # beats per word, per patch
        wpr = row_words(self.hw, Buf.PIXELS)
        size = a.patches * wpr  # words of one bank
        taken = Array(Signal(name=f"bank_taken{b}") for b in range(PIXEL_FRAMES))
        bank, col = Signal(), Signal(range(cols + 1))
        group, addr, rows = Signal(range(groups)), Signal(16), Signal(range(a.patches + 1))
        seen, task, start = Signal(), Signal(32), Signal(64)
        on = self.enable & self.want & ~taken[bank] & self.fifo.w_stream.ready
        m.d.comb += self.tready.eq(on)
        beat = on & self.tvalid
        full = rows == a.patches
        frame_task, frame_start = Mux(seen, task, self.task), Mux(seen, start, self.now)
        with m.If(beat & ~seen):
            m.d.comb += self.first.eq(1)
            m.d.sync += [seen.eq(1), task.eq(self.task), start.eq(self.now)]
        with m.If(beat & ~full):
            m.d.comb += [self.wr.buf.eq(Buf.PIXELS), self.wr.addr.eq(addr), self.wr.en.eq(1)]
            m.d.comb += [self.wr.data[i].eq(self.tdata.word_select(i % per, bits))
                         for i in range(s.act_lanes)]  # fmt: skip
            m.d.comb += self.wr.mask.eq(Const((1 << per) - 1, s.act_lanes) << (group * per))
            self._step(m, col, group, addr, rows, wpr)
        last_pixel = (rows == a.patches - 1) & (col == cols - 1)
        with m.If(beat & self.tlast):
            short, long = ~full & ~last_pixel, full
            bad = frame_task >= a.tasks
            entry = Cat(bank, frame_task, frame_start, short, long, bad)
            m.d.comb += [self.fifo.w_stream.valid.eq(1), self.fifo.w_stream.payload.eq(entry),
                         self.received.eq(1)]  # fmt: skip
            m.d.sync += [seen.eq(0), col.eq(0), group.eq(0), rows.eq(0)]
            with m.If(~short & ~long & ~bad):
                m.d.sync += [taken[bank].eq(1), bank.eq(~bank), addr.eq(Mux(bank, 0, size))]
            with m.Else():
                m.d.sync += addr.eq(Mux(bank, size, 0))
        with m.If(self.release):
            m.d.sync += taken[self.release_bank].eq(0)
        return m

    def _step(self, m: Module, col, group, addr, rows, wpr: int) -> None:
        """Next beat: lane group / word within the row, then the next row (wpr words on)."""
        a, s = self.hw.arith, self.hw.streams
        groups, cols = s.act_lanes // s.pixels_per_beat, a.patch_dim // s.pixels_per_beat
        with m.If(col == cols - 1):
            m.d.sync += [col.eq(0), group.eq(0), rows.eq(rows + 1)]
            m.d.sync += addr.eq(addr + (wpr - (a.patch_dim - 1) // s.act_lanes))
        with m.Else():
            m.d.sync += col.eq(col + 1)
            with m.If(group == groups - 1):
                m.d.sync += [group.eq(0), addr.eq(addr + 1)]
            with m.Else():
                m.d.sync += group.eq(group + 1)
