"""Skid buffer: a registered stream stage that also registers ``ready``.

Members: ``i`` (sink), ``o`` (source), both ``stream.Signature(layout)``. Beats leave in order,
none lost or duplicated; one beat per cycle when ``o`` is not stalled; latency 1 cycle. The
upstream ``i.ready`` is a flip-flop output, which cuts the combinational ready path of a
pipeline with a global stall (e.g. the compute unit's epilogue) from the consumer.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    def __init__(self, layout):
        self._layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

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
