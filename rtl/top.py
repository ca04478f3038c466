"""The accelerator top: AXI ports around the core (the sequencer and the units).

Ports (Vivado-friendly names; one clock ``aclk``, synchronous active-low reset ``aresetn``):

* ``s_axis_*`` (``tdata`` = ``streams.pixels_per_beat`` pixels, lane j in bits 8j ..,
  ``tvalid``, ``tready``, ``tlast`` on a frame's last beat): the frames, patch-major as
  :func:`edgevit_hw.program.streams.frame_beats` lays out;
* ``m_axis_*`` (``tdata`` = ``streams.tokens_per_beat`` output elements of
  ``streams.token_bits``, ``tlast`` on the frame's last beat): the output tokens, row-major;
* ``m_axi_*``: the AXI4 read master (:class:`rtl.axi_read.AxiReadMaster`) at the weight port
  width, reading the DRAM image from the DRAM_BASE register;
* ``s_axil_*``: the control registers (:class:`rtl.axi_lite.AxiLiteRegs`, the register map of
  :mod:`edgevit_hw.program.regmap`); ``interrupt``: the ap_done interrupt;
* ``dbg_pc``: the program counter (the instruction being run; it advances when one finishes),
  for simulation traces and an ILA.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.axi_lite import AxiLiteRegs
from edgevit_hw.rtl.axi_read import AxiReadMaster
from edgevit_hw.rtl.core import Core

from edgevit_hw.core.derive import HwParams


def _prefixed(component, prefix: str) -> dict:
    """The members of ``component`` whose names start with ``prefix`` (flat ports)."""
    return {n: mem for n, mem in component.signature.members.items() if n.startswith(prefix)}


class Top(wiring.Component):
    def __init__(self, hw: HwParams):
        self.hw = hw
        self.reader = AxiReadMaster(hw)
        self.regs = AxiLiteRegs(hw)
        s = hw.streams
        members = {
            "aclk": In(1),
            "aresetn": In(1),
            "s_axis_tdata": In(s.s_axis_bits),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(s.m_axis_bits),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            "interrupt": Out(1),
            "dbg_pc": Out(16),
            **_prefixed(self.reader, "m_axi_"),
            **_prefixed(self.regs, "s_axil_"),
        }
        super().__init__(members)
        self.core = Core(hw, self.reader.req, self.reader.data)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", local=True)
        # aresetn is registered once (a reset-less flop on aclk) before it resets the design:
        # the reset net then starts at a flip-flop (its fan-out is no path from a port), and in
        # Verilator no next-state logic depends on a top input, so it is evaluated on the clock
        # edge only instead of on every input change.
        m.domains.por = por = ClockDomain("por", reset_less=True, local=True)
        rst = Signal(init=1)
        m.d.por += rst.eq(~self.aresetn)
        m.d.comb += [cd.clk.eq(self.aclk), por.clk.eq(self.aclk), cd.rst.eq(rst)]
        m.submodules.reader, m.submodules.regs = self.reader, self.regs
        m.submodules.core = core = self.core
        self._forward(m, self.reader, "m_axi_")
        self._forward(m, self.regs, "s_axil_")
        rd, rg = self.reader, self.regs
        m.d.comb += [
            rd.base.eq(rg.dram_base),
            rd.flush.eq(core.flush),
            core.rd_error.eq(rd.error),
            core.rd_idle.eq(rd.idle),
            core.rd_beat.eq(rd.beat),
            core.rd_wait.eq(rd.waiting),
            core.start.eq(rg.start),
            core.task.eq(rg.task),
            core.frames.eq(rg.frames),
            rg.idle.eq(core.idle),
            rg.done.eq(core.done),
            rg.status_set.eq(core.status_set),
            rg.frame_ok.eq(core.frame_ok),
            rg.frame_dropped.eq(core.frame_dropped),
            rg.frame_cycles.eq(core.frame_cycles),
            rg.busy.eq(core.busy),
            rg.stall.eq(core.stall),
            self.interrupt.eq(rg.irq),
            self.dbg_pc.eq(core.pc),
        ]
        pix, out = core.pix, core.out
        m.d.comb += [
            pix.tdata.eq(self.s_axis_tdata),
            pix.tvalid.eq(self.s_axis_tvalid),
            pix.tlast.eq(self.s_axis_tlast),
            self.s_axis_tready.eq(pix.tready),
            self.m_axis_tdata.eq(out.tdata),
            self.m_axis_tvalid.eq(out.tvalid),
            self.m_axis_tlast.eq(out.tlast),
            out.tready.eq(self.m_axis_tready),
        ]
        return m

    def _forward(self, m: Module, unit, prefix: str) -> None:
        for name, member in _prefixed(unit, prefix).items():
            mine, theirs = getattr(self, name), getattr(unit, name)
            if member.flow == wiring.Out:
                m.d.comb += mine.eq(theirs)
            else:
                m.d.comb += theirs.eq(mine)
