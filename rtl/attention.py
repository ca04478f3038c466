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
rows. Row pipeline: :func:`logit_stages` cycles (products, the q.k adder tree with a register
every two levels, ``* logit_m``, the requantization in two halves by
:func:`rtl.hwmath.requant_parts` / :func:`rtl.hwmath.requant_finish`), then the 6 stages of
:func:`online_softmax_step`; V is tapped from a longer chain at position p + logit_stages +
:data:`V_LAG` so it meets its key's weight.
DRAIN: one sequential saturating divider array (3 + b cycles per row, one lane per output
element) emits the P output rows in order (``out`` stream, one row per beat).
Cycles per block of P rows: ``2P + N + logit_stages(DH) + 7 + P*(b + 4)`` (for DH = 32 or 64:
``2P + N + 14 + P*(b + 4)``). Synthesis measure (benchmarks/synth_rtl.py) at m3vit widths:
12 logic levels, the divider's step. The state-update loops split their shift by ``d`` around
the add (see :func:`online_softmax_step`); with the whole shift before the add, abc mapped it
as two wide LUTs (LUT + MUXF7/8/9 each) and the loop was 13.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.divider import DivRound
from edgevit_hw.rtl.hwmath import above_mask, csel_add, reg, requant_finish, requant_parts, sreg
from edgevit_hw.rtl.layouts import SHIFT_BITS, attn_kv_layout, attn_out_layout, attn_q_layout

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams

ON = Const(1, 1)
V_LAG = 4  # cycles from a key's logit t to the step's use of its value vector
TREE_STEP = 2  # adder-tree levels between registers of the q.k sum


def sum_tree(m: Module, vals: list, name: str) -> Value:
    """Sum of ``vals`` by a balanced adder tree with a register after every :data:`TREE_STEP`
    levels and after the last (:func:`tree_regs` registers in all)."""
    level = 0
    while len(vals) > 1:
        pairs = [vals[i] + vals[i + 1] for i in range(0, len(vals) - 1, 2)]
        vals = pairs + (vals[len(vals) - 1 :] if len(vals) % 2 else [])
        level += 1
        if level % TREE_STEP == 0 or len(vals) == 1:
            vals = [reg(m, ON, v, f"{name}{level}_{i}") for i, v in enumerate(vals)]
    return vals[0]


def tree_regs(n: int) -> int:
    """Registers of :func:`sum_tree` over ``n`` values."""
    levels = (n - 1).bit_length()
    return -(-levels // TREE_STEP)


def logit_stages(head_dim: int) -> int:
    """Cycles from a key at a row's chain position to its logit ``t``: products, the q.k
    tree, ``score * logit_m``, the requantization's two halves."""
    return 1 + tree_regs(head_dim) + 1 + 2


def exp2_rom(m: Module, name: str, frac: int, out: int):
    """A combinational read port on the exp2_table(frac, out) ROM."""
    table = [int(v) for v in A.exp2_table(frac, out)]
    rom = Memory(shape=unsigned(out + 1), depth=len(table), init=table)
    m.submodules[name] = rom
    return rom.read_port(domain="comb")


def exp2_q(m: Module, rd, x, frac: int, out: int):
    """arithmetic.exp2_q for ``x <= 0``: ``T[x mod 2^F] >> min(-(x >> F), O + 1)``."""
    m.d.comb += rd.addr.eq(x[:frac])
    return rd.data >> exp2_shift(0, x >> frac, out)


def delays(m: Module, sigs: tuple, first: int, n: int, name: str) -> list[tuple]:
    """``[sigs, sigs delayed 1, ..., delayed n]`` by always-enabled registers named
    ``{name}_{v,f,l}{k}`` for k = first .. first + n - 1 (valid, first, last flags)."""
    out = [sigs]
    for k in range(first, first + n):
        out.append(
            tuple(reg(m, ON, x, f"{name}_{c}{k}") for x, c in zip(out[-1], "vfl", strict=True))
        )
    return out


def shr_by(v: Value, amount: Value, unit: int) -> Value:
    """``v >> (amount * unit)`` (arithmetic for a signed ``v``): one multiplexer over every
    value of ``amount``."""
    return Array(v >> (j * unit) for j in range(1 << len(amount)))[amount]


def exp2_shift(new, t_int, out: int) -> Value:
    """``min(new - t_int, O + 1)`` (the shift of exp2_q for ``x = t - new * 2^F``, whose
    integer part is ``t_int - new`` with ``t_int = t >> F``; ``new >= ceil(t / 2^F)``)."""
    neg = (new - t_int).as_unsigned()
    return Mux(neg > out + 1, out + 1, neg)[: (out + 1).bit_length() + 1]


def online_softmax_step(m: Module, a, ctl: tuple, t, v_late: list, name: str, v_lag: int = 2):
    """One key of arithmetic.online_softmax_ref for one query row, in 6 pipeline stages.

    Inputs: ``ctl = (valid, first, last)`` flags of the key and its logit ``t`` (signed
    ``a.logit_bits``) in the same cycle; its value vector ``v_late`` ``v_lag`` (<= 4) cycles
    later. With ``F`` = exp_frac_bits, ``O`` = exp_out_bits::

        c = ceil(t / 2^F);  new = c if first else max(mx, c);  d = 0 if first else new - mx
        p = exp2_q(t - new * 2^F);  l = floor(l / 2^d) + p;  acc = floor(acc / 2^d) + p * v

    (``d`` is saturated at max(softmax_acc_bits, softmax_sum_bits), where both floors are
    already 0 or -1, the same value). ``first`` starts a row (l = p, acc = p * v). Stages:
    1 ``c``, ``t >> F``; 2 the running max ``mx`` (a compare and a select: the only loop)
    and ``new - mx``; 3 ``d`` and the exp2 shift (:func:`exp2_shift`; ``t - new 2^F`` has the
    fraction bits of ``t``); 4 ``p`` (table read and shift); 5 ``p * v``; 6 the state.
    Returns ``{"l", "acc", "upd_last"}``: the state registers, updated 6 cycles after ``t``,
    and a flag high in the cycle a ``last`` key updates them (the row's result is final
    after it).

    The state loop splits its shift around the add: ``d = 4 a + b``, and each state
    register holds its value already divided by ``2^(4 a)`` of the key one stage behind
    (known a cycle early), so the loop is ``x' = floor((floor(x / 2^b) + p) / 2^(4 a'))``: a
    4:1 multiplexer, the add, an 8:1 multiplexer (by ``floor(floor(y / 2^i) / 2^j) =
    floor(y / 2^(i+j))``, and ``floor(y / 2^d) + p = floor((y + p 2^d) / 2^d)``). An empty
    slot shifts by 0 and adds 0. A row's first key clears the state the cycle before it is
    added (rows are separated by a DRAIN, so the previous result has been read).
    """
    F, O = a.exp_frac_bits, a.exp_out_bits
    ctl = delays(m, ctl, 1, 5, name)
    # stage 1: ceil and floor of t on the 2^F grid, its fraction
    t_int = t >> F
    c1 = reg(m, ON, t_int + (t[:F] != 0), f"{name}_c1", signed(a.logit_bits - F + 1))
    ti1, tf1 = reg(m, ON, t_int, f"{name}_ti1"), reg(m, ON, t[:F], f"{name}_tf1")
    # stage 2: running max on the ceil grid
    v1, f1, _ = ctl[1]
    mx = Signal(signed(a.logit_bits - F + 1), name=f"{name}_mx")
    gt = c1 > mx
    new = Mux(f1 | gt, c1, mx)
    with m.If(v1):
        m.d.sync += mx.eq(new)
    dd2 = reg(m, ON, Mux(f1 | ~gt, 0, c1 - mx), f"{name}_dd2", unsigned(a.logit_bits - F + 1))
    new2, ti2, tf2 = (reg(m, ON, x, f"{name}_{n}2") for x, n in ((new, "new"), (ti1, "ti"),
                                                                 (tf1, "tf")))  # fmt: skip
    # stage 3: rescale amount d and the exp2 shift
    dmax = max(a.softmax_acc_bits, a.softmax_sum_bits)
    d3 = reg(m, ON, Mux(dd2 > dmax, dmax, dd2)[: dmax.bit_length()], f"{name}_d3")
    sh3 = reg(m, ON, exp2_shift(new2, ti2, O), f"{name}_sh3")
    tf3 = reg(m, ON, tf2, f"{name}_tf3")
    # stage 4: p = exp2_q(t - new 2^F) = T[t mod 2^F] >> sh
    rd = exp2_rom(m, f"{name}_exp2_rom", F, O)
    m.d.comb += rd.addr.eq(tf3)
    p4 = reg(m, ON, rd.data >> sh3, f"{name}_p4", unsigned(O + 1))
    v3 = ctl[3][0]
    d4 = reg(m, ON, Mux(v3, d3, 0), f"{name}_d4")  # 0 for an empty slot
    # stage 5: p * v (v from the caller's v_lag, delayed to 4 cycles after t)
    for k in range(4 - v_lag):
        v_late = [reg(m, ON, v, f"{name}_vd{k}_{i}") for i, v in enumerate(v_late)]
    pv = [reg(m, ON, p4 * v, f"{name}_pv{i}") for i, v in enumerate(v_late)]
    v4, f4, _ = ctl[4]
    d5, p5 = reg(m, ON, d4, f"{name}_d5"), reg(m, ON, Mux(v4, p4, 0), f"{name}_p5")
    v5, _, l5 = ctl[5]
    # stage 6: state update (see above: fine shift by d5's low bits, add, coarse shift by the
    # next slot's d4 high bits; a row's first key finds the state cleared)
    ell = Signal(unsigned(a.softmax_sum_bits), name=f"{name}_l")
    acc = [Signal(signed(a.softmax_acc_bits), name=f"{name}_acc{i}") for i in range(len(pv))]

    def update(x, add, d, n: str) -> None:  # d: this key's shift (its low bits are left)
        # named wires: csel_add slices its operand, and a slice of an Array index would copy
        # the whole multiplexer into every slice
        fine, new = Signal(x.shape(), name=f"{name}_{n}f"), Signal(x.shape(), name=f"{name}_{n}n")
        m.d.comb += [fine.eq(shr_by(x, d[:2], 1)), new.eq(csel_add(fine, add, len(x)))]
        m.d.sync += x.eq(shr_by(new, d4[2:], 4))
        with m.If(v4 & f4):
            m.d.sync += x.eq(0)

    update(ell, p5, d5, "l")
    for i in range(len(pv)):
        update(acc[i], Mux(v5, pv[i], 0), d5, f"a{i}")
    return {"l": ell, "acc": acc, "upd_last": v5 & l5}


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
        for j in range(rows + self._v_tap()):
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
        rq = self._logit_shift(m)
        tap = self._v_tap()
        states = [self._row(m, p, qreg[p], chain[p], chain[p + tap], rq) for p in range(rows)]
        m.d.comb += fin.eq(states[-1]["upd_last"])
        return states

    def _v_tap(self) -> int:
        """Chain position offset of a row's value vectors: V_LAG cycles after its logit."""
        return logit_stages(self._hw.arith.head_dim) + V_LAG

    def _logit_shift(self, m) -> dict:
        """The 'logit' requantization's shift terms (``s - 1``, ``s == 0``, the fit mask),
        registered from ``logit_s`` (constant during a block) for every row."""
        a = self._hw.arith
        pw = a.score_bits + a.mult_bits + 1
        return {
            "s1": reg(m, ON, self.logit_s - 1, "logit_s1", unsigned(SHIFT_BITS)),
            "zero": reg(m, ON, self.logit_s == 0, "logit_zero"),
            "hmask": reg(m, ON, above_mask(self.logit_s, a.logit_bits, pw), "logit_hmask"),
        }

    def _row(self, m, p, q, ent, vent, rq):
        """One query row's pipeline: :func:`logit_stages` cycles compute the logit ``t`` of the
        key at chain position p, :func:`online_softmax_step` (6 more) folds it into the row's
        state."""
        a = self._hw.arith
        ctl = delays(m, (ent["v"], ent["f"], ent["l"]), 1, logit_stages(a.head_dim), f"r{p}")
        prods = [reg(m, ON, q[i] * ent["k"][i], f"r{p}_prod{i}") for i in range(a.head_dim)]
        score = sum_tree(m, prods, f"r{p}_sum")
        prod = reg(m, ON, score * self.logit_m, f"r{p}_lp", signed(len(rq["hmask"])))
        parts = requant_parts(m, prod, rq["s1"], rq["zero"], rq["hmask"], a.logit_bits,
                              f"r{p}_rq")  # fmt: skip
        half = {k: reg(m, ON, v, f"r{p}_rq{k}") for k, v in parts.items()}
        t = sreg(m, ON, requant_finish(**half, bits=a.logit_bits), a.logit_bits, f"r{p}_t")
        # v from the chain tap p + _v_tap(): V_LAG cycles after t, when the step needs it
        return online_softmax_step(m, a, ctl[-1], t, vent["val"], f"r{p}", v_lag=V_LAG)

    def _drain(self, m, states):
        """Each row in turn: o = normalize_attention(acc, l) by the :class:`DivRound` array
        (one lane per output element, DivRound.LATENCY + b cycles), registered into ``out``;
        returns a signal that is high on the cycle the last row is handed over."""
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
