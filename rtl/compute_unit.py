"""Unified compute unit: :class:`rtl.mac_array.MacArray` feeding :class:`rtl.epilogue.Epilogue`.

Members: ``ops`` (sink, one operand vector pair per cycle), ``cfg`` (sink, one beat per tile),
``side`` (sink, one beat per output row in the RESIDUAL / MOE_* modes), ``out`` (source, one
row of C results per beat). The MAC array's tile register and the epilogue's shadow register
form a double buffer, so a tile of K >= R operand beats streams in while the previous tile
drains: sustained throughput max(K, R) cycles per R x C outputs. A
:class:`rtl.skid.SkidBuffer` on ``out`` registers the ready path into the epilogue's stall.
Latency without stalls, from a tile's last operand beat to its first output row: the MAC
array's 3 cycles, the shadow load, the epilogue's :data:`rtl.epilogue.STAGES` = 11 register
stages and the skid register.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.epilogue import Epilogue
from edgevit_hw.rtl.layouts import epi_cfg_layout, epi_out_layout, epi_side_layout, mac_op_layout
from edgevit_hw.rtl.mac_array import MacArray
from edgevit_hw.rtl.skid import SkidBuffer

from edgevit_hw.core.derive import HwParams


class ComputeUnit(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        super().__init__(
            {
                "ops": In(stream.Signature(mac_op_layout(hw))),
                "cfg": In(stream.Signature(epi_cfg_layout(hw))),
                "side": In(stream.Signature(epi_side_layout(hw))),
                "out": Out(stream.Signature(epi_out_layout(hw))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = MacArray(self._hw)
        m.submodules.epi = epi = Epilogue(self._hw)
        wiring.connect(m, wiring.flipped(self.ops), mac.ops)
        wiring.connect(m, mac.tile, epi.tile)
        wiring.connect(m, wiring.flipped(self.cfg), epi.cfg)
        wiring.connect(m, wiring.flipped(self.side), epi.side)
        m.submodules.skid = skid = SkidBuffer(epi_out_layout(self._hw))
        wiring.connect(m, epi.out, skid.i)
        wiring.connect(m, skid.o, wiring.flipped(self.out))
        return m
