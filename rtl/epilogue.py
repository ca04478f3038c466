"""Epilogue of the unified compute unit: tile drain + 11-stage per-column post-processing.

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
every max(K, R) cycles); latency :data:`STAGES` = 11 cycles from a row's drain to ``out``.

Stages (every register holds while ``out`` is stalled): 1 ``a`` and the row's constants;
2 the addends of ``t`` (``part`` and ``gw*a``, or 0 and ``a``) and the shift terms; 3 ``t``
(one adder); 4 ``t*m``; 5-6 the requantization in two halves
(:func:`rtl.hwmath.requant_parts`: a bit-select shift and a sign test, no wide rounding
adder; then :func:`rtl.hwmath.requant_finish` at the mode's width); 7-8 GELU (:func:`gelu_q`)
beside the saturating residual add; 9 ``g*m2``; 10 the second requantization's first half;
11 its second half and the mode's selection. Synthesis measure (benchmarks/synth_rtl.py):
at most 12 logic levels per stage.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.hwmath import (
    above_mask,
    clamp,
    reg,
    requant_finish,
    requant_parts,
    round_shift,
    sreg,
)
from edgevit_hw.rtl.layouts import (
    SHIFT_BITS,
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
STAGES = 11  # per-column pipeline registers, the cfg/row register (stage 1) included


def _is(mode, *modes):
    out = Const(0)
    for md in modes:
        out = out | (mode == int(md))
    return out


def gelu_q(m: Module, en, u, frac_bits: int, in_bits: int, tag: str):
    """arithmetic.gelu_q of ``u`` (``in_bits`` signed, ``F = frac_bits`` fractional bits) in two
    register stages enabled by ``en``; the result (``in_bits + 1`` signed) is valid two enabled
    cycles after ``u``::

        a = |u|;  i = min(a >> (F-5), 177);  r = a - (i << (F-5))  (0 when i = 177)
        delta = T[i] + round_shift((T[i+1] - T[i]) * r, F-5);  result max(u, 0) - delta

    with ``T = gelu_table(F)`` in a ROM of pairs ``(T[i], T[i+1] - T[i])`` (one read port).
    Stage 1 forms ``a = w + n`` from ``w = u ^ sign`` and ``n = (u < 0)`` without a negating
    adder: ``a >> (F-5) = (w >> (F-5)) + c`` with ``c = n & (low F-5 bits of w all ones)``.
    Register names end in ``tag``.
    """
    sh, n_tab = frac_bits - A.GELU_STEP_LOG2, A.GELU_TABLE_LEN
    table = [int(v) for v in A.gelu_table(frac_bits)]
    diffs = [table[min(i + 1, n_tab)] - table[i] for i in range(len(table))]
    tb = max(max(table).bit_length(), max(abs(d) for d in diffs).bit_length()) + 1
    lay = StructLayout({"t": signed(tb), "dt": signed(tb)})
    pairs = zip(table, diffs, strict=True)
    init = [lay.const({"t": t, "dt": d}).as_value().value for t, d in pairs]
    rom = Memory(shape=unsigned(lay.size), depth=len(table), init=init)
    m.submodules[f"gelu_rom{tag}"] = rom
    rd = rom.read_port(domain="comb")
    neg = u[-1]
    w = (u.as_unsigned() ^ neg.replicate(len(u)))[: len(u) - 1]
    lo, hi = w[:sh], w[sh:]
    carry = neg & lo.all()
    over = (hi > n_tab) | ((hi == n_tab) & carry)  # a >> sh > 177
    top = (hi >= n_tab) | ((hi == n_tab - 1) & carry)  # a >> sh >= 177
    i5 = reg(m, en, Mux(over, n_tab, hi + carry)[: n_tab.bit_length()], f"gi5{tag}")
    rem = reg(m, en, Mux(top, 0, lo + neg)[:sh], f"gr5{tag}")
    u5 = reg(m, en, Mux(neg, 0, u), f"gu5{tag}")  # max(u, 0)
    m.d.comb += rd.addr.eq(i5)
    pair = lay(rd.data)
    t0, dt = pair.t, pair.dt
    delta = t0 + round_shift(dt * rem, sh)
    return sreg(m, en, u5 - delta, in_bits + 1, f"g6{tag}")


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
        for k in range(2, STAGES + 1):
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
    def _ctl(self, m, adv, s1, sel):
        """Per-tile control of stages 2 .. STAGES - 1: ``ctl[k]`` is the stage-k register set
        (index 0 and 1 unused). Stage 2 adds the clamp selection of the first requantization
        and the shift terms of the second (``s2 - 1``, ``s2 == 0``, its :func:`above_mask`)."""
        a, pw = self._hw.arith, self._pw2()
        c2 = {
            "mode": reg(m, adv, s1["mode"], "mode_2"),
            "sel": reg(m, adv, sel, "sel_2", unsigned(2)),
            "m2": reg(m, adv, s1["m2"], "m2_2"),
            "s2m": reg(m, adv, s1["s2"] - 1, "s2m_2", unsigned(SHIFT_BITS)),
            "s2z": reg(m, adv, s1["s2"] == 0, "s2z_2"),
            "s2h": reg(m, adv, above_mask(s1["s2"], a.act_bits, pw), "s2h_2", unsigned(pw)),
            "last": reg(m, adv, s1["last"], "last_2"),
        }
        ctl = [None, None, c2]
        for k in range(3, STAGES):
            ctl.append({n: reg(m, adv, v, f"{n}_{k}") for n, v in ctl[-1].items()})
        return ctl

    def _pw1(self) -> int:
        """Width of the first requantization's product ``t * m``."""
        return self._w.out + self._w.mult

    def _pw2(self) -> int:
        """Width of the second (GELU mode) requantization's product ``g * m2``."""
        return self._hw.arith.gelu_in_bits + 1 + self._w.mult

    def _lanes(self, m, adv, s1):
        widths = self._w.clamp_bits(self._hw)
        mode = s1["mode"]
        sel = Mux(
            _is(mode, EpiMode.GELU),
            int(EpiClamp.GELU_IN),
            Mux(_is(mode, EpiMode.RESIDUAL, EpiMode.MOE_RES), int(EpiClamp.RES), s1["clamp"]),
        )
        bits1 = Array(Const(widths[k], 6) for k in EpiClamp)[sel]
        ctl = self._ctl(m, adv, s1, sel)
        m.d.comb += self.out.payload.last.eq(reg(m, adv, ctl[-1]["last"], f"last{STAGES}"))
        for c in range(self._w.cols):
            m.d.comb += self.out.payload.y[c].eq(self._lane(m, adv, c, s1, bits1, ctl))

    def _finish(self, q: dict, sel) -> Value:
        """Stage 6: the first requantization's :func:`requant_finish` at the selected width
        (``q`` and ``fits`` come from the widest; ``fits`` was tested at the selected one)."""
        widths = self._w.clamp_bits(self._hw)
        opts = [requant_finish(q["q"][: widths[k]], q["r"], q["fits"], q["neg"], widths[k])
                for k in EpiClamp]  # fmt: skip
        return Array(opts)[sel]

    def _lane(self, m, adv, c, s1, bits1, ctl):
        """One column: stages 2-6 ``r = requant(t, m, s, clamp)``, 7-8 GELU and the residual
        add, 9-10 the second requantization, 11 the mode's result."""
        w, a = self._w, self._hw.arith

        def st(x, k, n, shape=None):
            return reg(m, adv, x, f"{n}{k}_{c}", shape)

        def keep(vals: dict, k: int, pre: str = "") -> dict:
            return {n: st(x, k, pre + n) for n, x in vals.items()}

        moe = _is(s1["mode"], EpiMode.MOE_ACC, EpiMode.MOE_RES)
        sh = s1[f"sh_{c}"]
        d2 = {
            "pm": st(Mux(moe, s1[f"part{c}"], 0), 2, "pm", signed(w.out)),
            "ga": st(Mux(moe, s1["gw"] * s1[f"a{c}"], s1[f"a{c}"]), 2, "ga", signed(w.out)),
            "mul": st(s1[f"mul_{c}"], 2, "mul"),
            "sm": st(sh - 1, 2, "sm", unsigned(SHIFT_BITS)),
            "sz": st(sh == 0, 2, "sz"),
            "hm": st(above_mask(sh, bits1, self._pw1()), 2, "hm", unsigned(self._pw1())),
            "res": st(s1[f"res{c}"], 2, "res"),
        }
        t3 = sreg(m, adv, d2["pm"] + d2["ga"], w.out, f"t3_{c}")
        d3 = keep({n: d2[n] for n in ("mul", "sm", "sz", "hm", "res")}, 3)
        p4 = st(t3 * d3["mul"], 4, "p", signed(self._pw1()))
        d4 = keep({"t": t3, **{n: d3[n] for n in ("sm", "sz", "hm", "res")}}, 4)
        top = max(w.clamp_bits(self._hw).values())
        q5 = keep(requant_parts(m, p4, d4["sm"], d4["sz"], d4["hm"], top, f"rq{c}"), 5, "rq")
        d5 = keep({n: d4[n] for n in ("t", "res")}, 5)
        r6 = sreg(m, adv, self._finish(q5, ctl[5]["sel"]), top, f"r6_{c}")
        d6 = keep(d5, 6)
        y7 = sreg(m, adv, clamp(d6["res"] + r6, a.res_bits), a.res_bits, f"y7_{c}")
        g8 = gelu_q(m, adv, r6, a.gelu_frac_bits, a.gelu_in_bits, f"_{c}")
        d7 = {**keep({"t": d6["t"], "r": r6}, 7), "y": y7}
        d8 = keep(d7, 8)
        gp9 = st(g8 * ctl[8]["m2"], 9, "gp", signed(self._pw2()))
        d9 = keep(d8, 9)
        c9 = ctl[9]
        q10 = requant_parts(m, gp9, c9["s2m"], c9["s2z"], c9["s2h"], a.act_bits, f"gq{c}")
        q10 = keep(q10, 10, "gq")
        d10 = keep(d9, 10)
        y2 = requant_finish(**q10, bits=a.act_bits)
        mode = ctl[10]["mode"]
        out = Mux(
            _is(mode, EpiMode.ACC, EpiMode.MOE_ACC),
            d10["t"],
            Mux(_is(mode, EpiMode.GELU), y2, Mux(_is(mode, EpiMode.REQUANT), d10["r"], d10["y"])),
        )
        return sreg(m, adv, out, w.out, f"y{STAGES}_{c}")
