"""Stream stages that register ``ready``.

Both have members ``i`` (sink) and ``o`` (source), ``stream.Signature(layout)``; beats leave in
order, none lost or duplicated, and the upstream ``i.ready`` is a flip-flop output, which cuts
a combinational ready path (a pipeline's global stall, a consumer's deep ready logic) from the
producer.

- :class:`SkidBuffer`: payload and valid registered too (latency 1 cycle); one beat per cycle
  when ``o`` is not stalled.
- :class:`ReadyCut`: payload and valid pass through (latency 0); a beat offered while ``o``
  stalls is kept in a spare register, and ``i`` pauses the next cycle. One beat per cycle when
  ``o`` is not stalled; each stall costs one cycle more (the spare drains before ``i`` opens).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class _Stage(wiring.Component):
    """``i`` in, ``o`` out, both streams of ``layout``."""

    def __init__(self, layout):
        self._layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})


class SkidBuffer(_Stage):
    def elaborate(self, platform):
        m = Module()
        spare = Signal(self._layout, name="spare")
        spare_valid = Signal()
        out = Signal(self._layout, name="out")
        out_valid = Signal()
        m.d.comb += [
            self.i.ready.eq(~spare_valid),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(out),
        ]
        with m.If(self.o.ready | ~out_valid):
            with m.If(spare_valid):
                m.d.sync += [out.eq(spare), out_valid.eq(1), spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [out.eq(self.i.payload), out_valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~spare_valid):
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m


class ReadyCut(_Stage):
    def elaborate(self, platform):
        m = Module()
        spare = Signal(self._layout, name="spare")
        spare_valid = Signal()
        m.d.comb += [
            self.i.ready.eq(~spare_valid),
            self.o.valid.eq(spare_valid | self.i.valid),
            self.o.payload.eq(Mux(spare_valid, spare, self.i.payload)),
        ]
        with m.If(spare_valid):
            m.d.sync += spare_valid.eq(~self.o.ready)
        with m.Elif(self.i.valid & ~self.o.ready):
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m
