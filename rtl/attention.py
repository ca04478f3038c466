"""Attention engine: P resident query rows, K/V streamed once per block, fused online softmax.

Contract, per query row ``q`` of a block and keys ``j = 0 .. N-1`` in natural order
(``F`` = exp_frac_bits, ``O`` = exp_out_bits, ``b`` = act_bits)::

    t_j  = requant(q . k_j, logit_m, logit_s, logit_bits)      # logits computed here
    (acc, l) = arithmetic.online_softmax_ref(t, v, F, O)         # same recurrence, key by key
    o    = arithmetic.normalize_attention(acc, l, b)             # clamp_b(div_round(acc, l))

The engine takes **q, k, v** (not logits): the q.k products and the 'logit' requantization
(``logit_m``, ``logit_s`` inputs, held constant during a block) are part of it.

Schedule: LOADQ takes P query rows (``q`` stream, P beats). STREAM takes one (k, v) pair per
cycle (``kv`` stream, ``last`` on key N-1) into a register chain; row ``p`` reads the chain at
position ``p`` (its keys arrive p cycles after row 0's, in the same natural order), so the input
bandwidth is one k and one v vector per cycle whatever P is, and no operand fans out to all
rows. Row pipeline: products, adder tree, requant (2), max/rescale step, exp2, p*v, state
update; V is tapped from a longer chain at position p + 6 so it meets its key's weight.
DRAIN: one sequential saturating divider array (b iterations per row, one lane per output
element) emits the P output rows in order (``out`` stream, one row per beat).
Cycles per block of P rows: P + N + P + 9 + P*(b + 2) (measured by the bench).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.divider import DivRound
from edgevit_hw.rtl.hwmath import clamp, reg, round_shift, sreg
from edgevit_hw.rtl.layouts import SHIFT_BITS, attn_kv_layout, attn_out_layout, attn_q_layout

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams

ON = Const(1, 1)
V_TAP = 6  # row pipeline stages between reading k and multiplying by v


def exp2_rom(m: Module, name: str, frac: int, out: int):
    """A combinational read port on the exp2_table(frac, out) ROM."""
    table = [int(v) for v in A.exp2_table(frac, out)]
    rom = Memory(shape=unsigned(out + 1), depth=len(table), init=table)
    m.submodules[name] = rom
    return rom.read_port(domain="comb")


def exp2_q(m: Module, rd, x, frac: int, out: int):
    """arithmetic.exp2_q for ``x <= 0``: ``T[x mod 2^F] >> min(-(x >> F), O + 1)``."""
    i = x >> frac
    neg = -i
    sh = Mux(neg > out + 1, out + 1, neg)
    m.d.comb += rd.addr.eq(x[:frac])
    return rd.data >> sh[: (out + 1).bit_length() + 1]


def delays(m: Module, sigs: tuple, first: int, n: int, name: str) -> list[tuple]:
    """``[sigs, sigs delayed 1, ..., delayed n]`` by always-enabled registers named
    ``{name}_{v,f,l}{k}`` for k = first .. first + n - 1 (valid, first, last flags)."""
    out = [sigs]
    for k in range(first, first + n):
        out.append(
            tuple(reg(m, ON, x, f"{name}_{c}{k}") for x, c in zip(out[-1], "vfl", strict=True))
        )
    return out


def online_softmax_step(m: Module, a, ctl: tuple, t, v_late: list, name: str) -> dict:
    """One key of arithmetic.online_softmax_ref for one query row, in 4 pipeline stages.

    Inputs: ``ctl = (valid, first, last)`` flags of the key and its logit ``t`` (signed
    ``a.logit_bits``) in the same cycle; its value vector ``v_late`` two cycles later. With
    ``F`` = exp_frac_bits, ``O`` = exp_out_bits::

        c = ceil(t / 2^F);  new = c if first else max(mx, c);  d = 0 if first else new - mx
        p = exp2_q(t - new * 2^F);  l = floor(l / 2^d) + p;  acc = floor(acc / 2^d) + p * v

    (``d`` is saturated at max(softmax_acc_bits, softmax_sum_bits), where both floors are
    already 0 or -1, the same value). ``first`` starts a row (l = p, acc = p * v). Returns
    ``{"l", "acc", "upd_last"}``: the state registers, updated 4 cycles after ``t``, and a
    flag high in the cycle a ``last`` key updates them (the row's result is final after it).
    """
    F, O = a.exp_frac_bits, a.exp_out_bits
    ctl = delays(m, ctl, 5, 3, name)
    # stage 5: running max on the ceil grid, rescale amount d, exponent e
    v4, f4, _ = ctl[0]
    mx = Signal(signed(a.logit_bits - F + 1), name=f"{name}_mx")
    c = -((-t) >> F)
    new = Mux(f4 | (c > mx), c, mx)
    with m.If(v4):
        m.d.sync += mx.eq(new)
    dmax = max(a.softmax_acc_bits, a.softmax_sum_bits)
    dd = Mux(f4, 0, new - mx)
    d5 = reg(m, ON, Mux(dd > dmax, dmax, dd)[: dmax.bit_length()], f"{name}_d5")
    e5 = sreg(m, ON, t - (new << F), a.logit_bits + 2, f"{name}_e5")
    # stage 6: p = exp2_q(e)
    rd = exp2_rom(m, f"{name}_exp2_rom", F, O)
    p6 = reg(m, ON, exp2_q(m, rd, e5, F, O), f"{name}_p6", unsigned(O + 1))
    d6 = reg(m, ON, d5, f"{name}_d6")
    # stage 7: p * v
    pv = [reg(m, ON, p6 * v, f"{name}_pv{i}") for i, v in enumerate(v_late)]
    d7, p7 = reg(m, ON, d6, f"{name}_d7"), reg(m, ON, p6, f"{name}_p7")
    v7, f7, l7 = ctl[3]
    # stage 8: state update (first key: state = its contribution)
    ell = Signal(unsigned(a.softmax_sum_bits), name=f"{name}_l")
    acc = [Signal(signed(a.softmax_acc_bits), name=f"{name}_acc{i}") for i in range(len(pv))]
    with m.If(v7):
        m.d.sync += ell.eq(Mux(f7, 0, ell >> d7) + p7)
        m.d.sync += [acc[i].eq(Mux(f7, 0, acc[i] >> d7) + pv[i]) for i in range(len(pv))]
    return {"l": ell, "acc": acc, "upd_last": v7 & l7}


class AttentionEngine(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        a = hw.arith
        super().__init__(
            {
                "q": In(stream.Signature(attn_q_layout(hw))),
                "kv": In(stream.Signature(attn_kv_layout(hw))),
                "out": Out(stream.Signature(attn_out_layout(hw))),
                "logit_m": In(unsigned(a.mult_bits)),
                "logit_s": In(unsigned(SHIFT_BITS)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        hw, a = self._hw, self._hw.arith
        rows, dh = hw.attn_rows, a.head_dim
        qreg = [[Signal(signed(a.act_bits), name=f"q_{p}_{i}") for i in range(dh)]
                for p in range(rows)]  # fmt: skip
        nq = Signal(range(rows + 1))
        got_last = Signal()
        fin = Signal()
        kv = self.kv.payload
        ph_load, ph_stream = Signal(), Signal()
        take = self.kv.valid & self.kv.ready
        chain = self._chain(m, take, kv)
        states = self._rows(m, qreg, chain, fin)
        with m.FSM():
            with m.State("LOADQ"):
                m.d.comb += [ph_load.eq(1), self.q.ready.eq(1)]
                with m.If(self.q.valid):
                    for p in range(rows):
                        with m.If(nq == p):
                            m.d.sync += [qreg[p][i].eq(self.q.payload.q[i]) for i in range(dh)]
                    m.d.sync += nq.eq(nq + 1)
                    with m.If(nq == rows - 1):
                        m.d.sync += [nq.eq(0), got_last.eq(0)]
                        m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [ph_stream.eq(1), self.kv.ready.eq(~got_last)]
                with m.If(self.kv.valid & kv.last & ~got_last):
                    m.d.sync += got_last.eq(1)
                with m.If(fin):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(self._drain(m, states)):
                    m.next = "LOADQ"
        return m

    def _chain(self, m, take, kv):
        """Skew chain: entry j holds the key that entered j cycles ago (valid/first/last)."""
        a, rows = self._hw.arith, self._hw.attn_rows
        first = Signal(init=1, name="next_first")
        with m.If(take):
            m.d.sync += first.eq(kv.last)
        ent = []
        prev = {"v": take, "f": first, "l": kv.last, "k": kv.k, "val": kv.v}
        for j in range(rows + V_TAP):
            cur = {
                "v": reg(m, ON, prev["v"], f"ch{j}_valid"),
                "f": reg(m, ON, prev["f"], f"ch{j}_first"),
                "l": reg(m, ON, prev["l"], f"ch{j}_last"),
                "val": [reg(m, ON, prev["val"][i], f"ch{j}_v{i}") for i in range(a.head_dim)],
            }
            if j < rows:
                cur["k"] = [reg(m, ON, prev["k"][i], f"ch{j}_k{i}") for i in range(a.head_dim)]
            ent.append(cur)
            prev = cur
        return ent

    def _rows(self, m, qreg, chain, fin) -> list[dict]:
        rows = self._hw.attn_rows
        states = [self._row(m, p, qreg[p], chain[p], chain[p + V_TAP]) for p in range(rows)]
        m.d.comb += fin.eq(states[-1]["upd_last"])
        return states

    def _row(self, m, p, q, ent, vent):
        """One query row's pipeline: stages 1-4 compute the logit ``t`` of the key at chain
        position p, :func:`online_softmax_step` (stages 5-8) folds it into the row's state."""
        a = self._hw.arith
        ctl = delays(m, (ent["v"], ent["f"], ent["l"]), 1, 4, f"r{p}")
        prods = [reg(m, ON, q[i] * ent["k"][i], f"r{p}_prod{i}") for i in range(a.head_dim)]
        score = sreg(m, ON, sum(prods), a.score_bits, f"r{p}_score")
        prod = reg(m, ON, score * self.logit_m, f"r{p}_lp")
        t = sreg(m, ON, clamp(round_shift(prod, self.logit_s), a.logit_bits), a.logit_bits,
                 f"r{p}_t")  # fmt: skip
        # v from the chain tap p + V_TAP: two cycles after t, when the step multiplies by p
        return online_softmax_step(m, a, ctl[-1], t, vent["val"], f"r{p}")

    def _drain(self, m, states):
        """Each row in turn: o = normalize_attention(acc, l) by the :class:`DivRound` array
        (one lane per output element, 1 + b cycles), registered into ``out``; returns a
        signal that is high on the cycle the last row is handed over."""
        hw, a = self._hw, self._hw.arith
        b, dh = a.act_bits, a.head_dim
        m.submodules.div = div = DivRound(dh, signed(a.softmax_acc_bits), a.softmax_sum_bits, b,
                                          signed_out=True)  # fmt: skip
        row = Signal(range(hw.attn_rows + 1), name="drain_row")
        busy = Signal(name="div_busy")
        done = Signal(name="drain_done")
        ells = Array(s["l"] for s in states)
        accs = [Array(s["acc"][i] for s in states) for i in range(dh)]
        m.d.comb += [div.b.eq(ells[row]), *(div.a[i].eq(accs[i][row]) for i in range(dh))]
        ovalid = Signal(name="out_valid")
        m.d.comb += self.out.valid.eq(ovalid)
        with m.If(ovalid & self.out.ready):
            m.d.sync += ovalid.eq(0)
        with m.If(~busy & ~ovalid & (row < hw.attn_rows)):
            m.d.comb += div.start.eq(1)
            m.d.sync += busy.eq(1)
        with m.If(busy & ~div.busy):
            m.d.sync += [busy.eq(0), ovalid.eq(1), row.eq(row + 1)]
            m.d.sync += [self.out.payload.o[i].eq(div.o[i]) for i in range(dh)]
        with m.If((row == hw.attn_rows) & ~ovalid):
            m.d.comb += done.eq(1)
            m.d.sync += row.eq(0)
        return done
