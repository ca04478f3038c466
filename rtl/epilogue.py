"""Epilogue of the unified compute unit: tile drain + 8-stage per-column post-processing.

A finished R x C tile (from :class:`rtl.mac_array.MacArray`) is taken together with one
``cfg`` beat (:func:`rtl.layouts.epi_cfg_layout`) and drained one row of C columns per cycle.
Per column ``c`` with ``a = acc + bias[c]`` the output row (``out.y``) is, by ``cfg.mode``
(:class:`rtl.layouts.EpiMode`), bit-exact with :mod:`edgevit_hw.core.arithmetic`:

* ACC       ``a``
* REQUANT   ``requant(a, m[c], s[c], bits(cfg.clamp))``
* GELU      ``requant(gelu_q(requant(a, m[c], s[c], gelu_in_bits), gelu_frac), m2, s2, act)``
* RESIDUAL  ``residual_add(res[c], a, m[c], s[c], res_bits)``
* MOE_ACC   ``part[c] + gw * a``       (one slot of moe_combine, exact)
* MOE_RES   ``residual_add(res[c], part[c] + gw * a, m[c], s[c], res_bits)``

The RESIDUAL / MOE_* modes consume one ``side`` beat per output row. Rows leave in order,
``out.last`` on each tile's last row. Sustained rate: one row per cycle (a tile of R rows
every max(K, R) cycles).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.hwmath import clamp, reg, round_shift, sreg
from edgevit_hw.rtl.layouts import (
    EpiClamp,
    EpiMode,
    Widths,
    epi_cfg_layout,
    epi_out_layout,
    epi_side_layout,
)
from edgevit_hw.rtl.mac_array import tile_layout

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams

SIDE_MODES = (EpiMode.RESIDUAL, EpiMode.MOE_ACC, EpiMode.MOE_RES)


def _is(mode, *modes):
    out = Const(0)
    for md in modes:
        out = out | (mode == int(md))
    return out


def gelu_q(m: Module, en, u, frac_bits: int, in_bits: int, tag: str):
    """arithmetic.gelu_q of ``u`` (``in_bits`` signed, ``F = frac_bits`` fractional bits) in two
    register stages enabled by ``en``; the result (``in_bits + 1`` signed) is valid two enabled
    cycles after ``u``::

        a = |u|;  i = min(a >> (F-5), 177);  r = a - (i << (F-5))  (0 when clamped)
        delta = T[i] + round_shift((T[i+1] - T[i]) * r, F-5);  result max(u, 0) - delta

    with ``T = gelu_table(F)`` in a ROM (two combinational read ports). Register names end
    in ``tag``.
    """
    sh = frac_bits - A.GELU_STEP_LOG2
    table = [int(v) for v in A.gelu_table(frac_bits)]
    rom = Memory(shape=signed(max(table).bit_length() + 1), depth=len(table), init=table)
    m.submodules[f"gelu_rom{tag}"] = rom
    rd0, rd1 = rom.read_port(domain="comb"), rom.read_port(domain="comb")
    mag = Mux(u < 0, -u, u)
    idx = Mux((mag >> sh) > A.GELU_TABLE_LEN, A.GELU_TABLE_LEN, mag >> sh)
    i5 = reg(m, en, idx, f"gi5{tag}")
    rem = reg(m, en, Mux(idx < A.GELU_TABLE_LEN, mag - (idx << sh), 0)[:sh], f"gr5{tag}")
    u5 = reg(m, en, u, f"gu5{tag}")
    m.d.comb += [
        rd0.addr.eq(i5),
        rd1.addr.eq(Mux(i5 < A.GELU_TABLE_LEN, i5 + 1, A.GELU_TABLE_LEN)),
    ]
    t0, t1 = rd0.data, rd1.data
    delta = t0 + round_shift((t1 - t0) * rem, sh)
    return sreg(m, en, Mux(u5 > 0, u5, 0) - delta, in_bits + 1, f"g6{tag}")


class Epilogue(wiring.Component):
    """Members: ``tile`` (sink, R x C accumulators), ``cfg`` (sink, one beat per tile),
    ``side`` (sink, one beat per row in side modes), ``out`` (source, one row per beat)."""

    def __init__(self, hw: HwParams):
        self._hw = hw
        self._w = Widths.of(hw)
        super().__init__(
            {
                "tile": In(stream.Signature(tile_layout(hw))),
                "cfg": In(stream.Signature(epi_cfg_layout(hw))),
                "side": In(stream.Signature(epi_side_layout(hw))),
                "out": Out(stream.Signature(epi_out_layout(hw))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        adv = Signal(name="pipe_adv")
        row0, emit, last_row, cfg = self._drain(m, adv)
        v = reg(m, adv, emit, "v1")
        s1 = self._stage1(m, adv, row0, cfg, last_row)
        for k in range(2, 9):
            v = reg(m, adv, v, f"v{k}")
        m.d.comb += adv.eq(~v | self.out.ready)
        self._lanes(m, adv, s1)
        m.d.comb += self.out.valid.eq(v)
        return m

    # ----------------------------------------------------------------------------- drain ----
    def _drain(self, m, adv):
        w = self._w
        busy = Signal(name="busy")
        row = Signal(range(w.rows + 1), name="row")
        shadow = [[Signal(signed(w.acc), name=f"sh_{r}_{c}") for c in range(w.cols)]
                  for r in range(w.rows)]  # fmt: skip
        cfg = Signal(epi_cfg_layout(self._hw), name="cfg_q")
        needs_side = _is(cfg.mode, *SIDE_MODES)
        emit = busy & adv & (self.side.valid | ~needs_side)
        last_row = row == w.rows - 1
        can_load = ~busy | (emit & last_row)
        m.d.comb += [
            self.side.ready.eq(busy & adv & needs_side),
            self.tile.ready.eq(self.cfg.valid & can_load),
            self.cfg.ready.eq(self.tile.valid & can_load),
        ]
        with m.If(emit):
            m.d.sync += row.eq(row + 1)
            for r in range(w.rows - 1):
                m.d.sync += [shadow[r][c].eq(shadow[r + 1][c]) for c in range(w.cols)]
            with m.If(last_row):
                m.d.sync += busy.eq(0)
        with m.If(self.tile.valid & self.cfg.valid & can_load):
            m.d.sync += [busy.eq(1), row.eq(0), cfg.eq(self.cfg.payload)]
            for r in range(w.rows):
                m.d.sync += [shadow[r][c].eq(self.tile.payload[r][c]) for c in range(w.cols)]
        return shadow[0], emit, last_row, cfg

    def _stage1(self, m, adv, row0, cfg, last_row):
        """Register the row with its per-column constants and side values."""
        w, side = self._w, self.side.payload
        s = {
            "mode": reg(m, adv, cfg.mode, "mode1"),
            "clamp": reg(m, adv, cfg.clamp, "clamp1"),
            "m2": reg(m, adv, cfg.m2, "m2_1"),
            "s2": reg(m, adv, cfg.s2, "s2_1"),
            "gw": reg(m, adv, side.gw, "gw1"),
            "last": reg(m, adv, last_row, "last1"),
        }
        for c in range(w.cols):
            s[f"a{c}"] = reg(m, adv, row0[c] + cfg.bias[c], f"a1_{c}")
            s[f"mul_{c}"] = reg(m, adv, cfg.m[c], f"m1_{c}")
            s[f"sh_{c}"] = reg(m, adv, cfg.s[c], f"s1_{c}")
            s[f"res{c}"] = reg(m, adv, side.res[c], f"res1_{c}")
            s[f"part{c}"] = reg(m, adv, side.part[c], f"part1_{c}")
        return s

    # ----------------------------------------------------------------------------- lanes ----
    def _carry(self, m, adv, names, src, k):
        return {n: reg(m, adv, src[n], f"{n}_{k}") for n in names}

    def _lanes(self, m, adv, s1):
        w = self._w
        ctl = ["mode", "clamp", "m2", "s2", "last"]
        s2 = self._carry(m, adv, ctl, s1, 2)
        s3 = self._carry(m, adv, ctl, s2, 3)
        s4 = self._carry(m, adv, ctl, s3, 4)
        s5 = self._carry(m, adv, ctl, s4, 5)
        s6 = self._carry(m, adv, ctl, s5, 6)
        s7 = self._carry(m, adv, ctl, s6, 7)
        m.d.comb += self.out.payload.last.eq(reg(m, adv, s7["last"], "last8"))
        for c in range(w.cols):
            y = self._lane(m, adv, c, s1, [s2, s3, s4, s5, s6, s7])
            m.d.comb += self.out.payload.y[c].eq(y)

    def _lane(self, m, adv, c, s1, st):
        w, a = self._w, self._hw.arith
        s2, s3, s4, s5, s6, s7 = st
        moe = _is(s1["mode"], EpiMode.MOE_ACC, EpiMode.MOE_RES)
        t_expr = Mux(moe, s1[f"part{c}"] + s1["gw"] * s1[f"a{c}"], s1[f"a{c}"])
        t2 = sreg(m, adv, t_expr, w.out, f"t2_{c}")
        m3, sh3 = reg(m, adv, s1[f"mul_{c}"], f"mul2_{c}"), reg(m, adv, s1[f"sh_{c}"], f"sh2_{c}")
        res2 = reg(m, adv, s1[f"res{c}"], f"res2_{c}")
        p3 = reg(m, adv, t2 * m3, f"p3_{c}")
        t3, sh4, res3 = (
            reg(m, adv, x, f"{n}3_{c}") for x, n in ((t2, "t"), (sh3, "sh"), (res2, "res"))
        )
        r4 = self._requant_sel(m, adv, c, p3, sh4, s3)
        t4, res4 = reg(m, adv, t3, f"t4_{c}"), reg(m, adv, res3, f"res4_{c}")
        y5 = sreg(m, adv, clamp(res4 + r4, a.res_bits), a.res_bits, f"y5_{c}")
        t5, r5 = reg(m, adv, t4, f"t5_{c}"), reg(m, adv, r4, f"r5_{c}")
        g6 = gelu_q(m, adv, r4, a.gelu_frac_bits, a.gelu_in_bits, f"_{c}")
        t6, r6, y6 = (reg(m, adv, x, f"{n}6_{c}") for x, n in ((t5, "t"), (r5, "r"), (y5, "y")))
        p7 = reg(m, adv, g6 * s6["m2"], f"gp7_{c}")
        t7, r7, y7 = (reg(m, adv, x, f"{n}7_{c}") for x, n in ((t6, "t"), (r6, "r"), (y6, "y")))
        y2 = clamp(round_shift(p7, s7["s2"]), a.act_bits)
        mode = s7["mode"]
        out = Mux(
            _is(mode, EpiMode.ACC, EpiMode.MOE_ACC),
            t7,
            Mux(_is(mode, EpiMode.GELU), y2, Mux(_is(mode, EpiMode.REQUANT), r7, y7)),
        )
        return sreg(m, adv, out, w.out, f"y8_{c}")

    def _requant_sel(self, m, adv, c, p3, sh, s3):
        """Stage 4: round-shift then saturate to the width the mode asks for."""
        widths = self._w.clamp_bits(self._hw)
        mode = s3["mode"]
        sel = Mux(
            _is(mode, EpiMode.GELU),
            int(EpiClamp.GELU_IN),
            Mux(_is(mode, EpiMode.RESIDUAL, EpiMode.MOE_RES), int(EpiClamp.RES), s3["clamp"]),
        )
        r = round_shift(p3, sh)
        options = Array([clamp(r, widths[k]) for k in EpiClamp])
        top = max(widths.values())
        return sreg(m, adv, options[sel], top, f"r4_{c}")
