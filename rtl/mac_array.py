"""Output-stationary R x C signed MAC array: the product core of the unified compute unit.

Contract (arithmetic.matmul_exact / linear without the bias): for a tile, the ops stream
delivers K beats ``(x_k [R], w_k [C])``, ``first`` on k = 0 and ``last`` on k = K-1; the tile
stream then carries ``acc[r][c] = sum_k x_k[r] * w_k[c]`` exactly (accumulator width = the
widest derived ``linears[*].acc_bits``, which bounds every matrix kind). One beat per cycle is
accepted while the tile output is not blocked: pipeline = input register, product register
(reset-less), accumulator; latency 3 cycles from the last beat.

Synthesis (Yosys 0.23 ``synth_xilinx -family xcup``, benchmarks/synth_rtl.py): every x*w
product maps to one DSP48E2, i.e. one MAC per DSP (no two-MACs-per-DSP INT8 packing); Yosys
leaves the product/accumulator registers and the accumulator adders (with their ``first``
clear) in fabric flip-flops and carry chains.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.hwmath import reg
from edgevit_hw.rtl.layouts import Widths, mac_op_layout

from edgevit_hw.core.derive import HwParams


def tile_layout(hw: HwParams) -> ArrayLayout:
    """R rows of C exact accumulators."""
    w = Widths.of(hw)
    return ArrayLayout(ArrayLayout(signed(w.acc), w.cols), w.rows)


class MacArray(wiring.Component):
    """Members: ``ops`` (sink, :func:`rtl.layouts.mac_op_layout`), ``tile`` (source,
    :func:`tile_layout`): one beat per finished tile."""

    def __init__(self, hw: HwParams):
        self._w = Widths.of(hw)
        super().__init__(
            {
                "ops": In(stream.Signature(mac_op_layout(hw))),
                "tile": Out(stream.Signature(tile_layout(hw))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        w = self._w
        adv = ~self.tile.valid | self.tile.ready
        m.d.comb += self.ops.ready.eq(adv)
        fire = self.ops.valid & adv
        p = self.ops.payload
        # stage 1: operand registers
        v1 = reg(m, adv, fire, "v1")
        x1 = [reg(m, adv & fire, p.x[r], f"x1_{r}", data=True) for r in range(w.rows)]
        w1 = [reg(m, adv & fire, p.w[c], f"w1_{c}", data=True) for c in range(w.cols)]
        f1 = reg(m, adv & fire, p.first, "first1")
        l1 = reg(m, adv & fire, p.last, "last1")
        # stage 2: products
        v2 = reg(m, adv, v1, "v2")
        f2 = reg(m, adv, f1, "first2")
        l2 = reg(m, adv, l1, "last2")
        prod = [
            [reg(m, adv, x1[r] * w1[c], f"prod_{r}_{c}", data=True) for c in range(w.cols)]
            for r in range(w.rows)
        ]
        # stage 3: accumulators; `tile.valid` = a finished tile waiting in them
        done = Signal(name="done")
        with m.If(adv):
            m.d.sync += done.eq(v2 & l2)
        for r in range(w.rows):
            for c in range(w.cols):
                acc = Signal(signed(w.acc), name=f"acc_{r}_{c}", reset_less=True)
                with m.If(adv & v2):
                    m.d.sync += acc.eq(Mux(f2, 0, acc) + prod[r][c])
                m.d.comb += self.tile.payload[r][c].eq(acc)
        m.d.comb += self.tile.valid.eq(done)
        return m
