"""The top's small engines: LOAD_RES, LAYERNORM, ATTENTION, ROUTE / QUEUES, OUTPUT.

Each engine takes a one-cycle ``start`` while the sequencer holds the decoded instruction
(``ins``) stable, and pulses ``done`` when its last result is written. Element streams walk a
buffer row-major with a :class:`Cursor` (word address and lane kept incrementally, so no
division by the lane count is built). Memory reads have one cycle of latency; a stage register
with the read port's enable held low under back-pressure keeps every stream lossless.
"""

from __future__ import annotations

from amaranth.hdl import (
    Array,
    Cat,
    Const,
    Elaboratable,
    Module,
    Mux,
    Signal,
    Value,
    signed,
    unsigned,
)
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory
from edgevit_hw.rtl.actmem import row_words
from edgevit_hw.rtl.dram import requant_fields, word_span

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.isa import Buf

ELEM_BUFS = (Buf.RESIDUAL, Buf.LN_OUT, Buf.ATTN_OUT, Buf.HIDDEN)


class Cursor:
    """Row-major walk over ``rows`` x ``cols`` elements of a buffer with ``wpr`` words per row
    and ``lanes`` lanes per word: ``addr``, ``lane``, ``col``, ``row``, ``last``, ``done``."""

    def __init__(self, name: str, rows: int, cols: int, wpr: int, lanes: int):
        self.rows, self.cols, self.wpr, self.lanes = rows, cols, wpr, lanes
        self.addr = Signal(16, name=f"{name}_addr")
        self.lane = Signal(range(lanes), name=f"{name}_lane")
        self.col = Signal(range(cols + 1), name=f"{name}_col")
        self.row = Signal(range(rows + 1), name=f"{name}_row")
        self.base = Signal(16, name=f"{name}_base")

    @property
    def done(self):
        return self.row == self.rows

    @property
    def last(self):
        return (self.row == self.rows - 1) & (self.col == self.cols - 1)

    @property
    def row_last(self):
        return self.col == self.cols - 1

    def reset(self, m: Module) -> None:
        m.d.sync += [
            self.addr.eq(0),
            self.lane.eq(0),
            self.col.eq(0),
            self.row.eq(0),
            self.base.eq(0),
        ]

    def step(self, m: Module) -> None:
        with m.If(self.col == self.cols - 1):
            nb = self.base + self.wpr
            m.d.sync += [
                self.col.eq(0),
                self.lane.eq(0),
                self.row.eq(self.row + 1),
                self.base.eq(nb),
                self.addr.eq(nb),
            ]
        with m.Else():
            m.d.sync += self.col.eq(self.col + 1)
            with m.If(self.lane == self.lanes - 1):
                m.d.sync += [self.lane.eq(0), self.addr.eq(self.addr + 1)]
            with m.Else():
                m.d.sync += self.lane.eq(self.lane + 1)


def one_hot_lane(m: Module, client, lane, value) -> None:
    """Comb: write ``value`` into lane ``lane`` of the client's word (mask one bit)."""
    for i in range(len(client.mask)):
        m.d.comb += client.data[i].eq(value)
    m.d.comb += client.mask.eq(Const(1, len(client.mask)) << lane)


# --------------------------------------------------------------------------- LOAD_RES ----


class LoadResidual(Elaboratable):
    """LOAD_RES: tokens x embed_dim 32-bit words from ``a0`` into the residual buffer: a whole
    DRAM beat (``c`` words, ``c`` lanes of one memory word) per cycle when ``c`` divides both
    L and embed_dim, else one word per cycle."""

    def __init__(self, hw: HwParams, ins, dram, mem):
        self.hw, self.ins, self.dram = hw, ins, dram
        self.wr = mem.write_client("ldres", (Buf.RESIDUAL,), hw.arith.res_bits)
        self.start, self.done = Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        a, d, st = self.hw.arith, self.dram, self.hw.streams
        L, wpb = st.act_lanes, st.words_per_beat
        c = wpb if L % wpb == 0 and a.embed_dim % wpb == 0 else 1
        # a cursor over groups of c elements: group lane g is lanes g*c .. g*c + c - 1
        cur = Cursor("ldres", a.tokens, a.embed_dim // c, row_words(self.hw, Buf.RESIDUAL), L // c)
        n = a.tokens * a.embed_dim
        with m.FSM(name="ldres"):
            with m.State("IDLE"):
                with m.If(self.start):
                    cur.reset(m)
                    m.next = "REQ"
            with m.State("REQ"):
                if c > 1:
                    d.request(m, self.ins.a0, n // c)
                else:
                    d.request(m, *word_span(self.hw, self.ins.a0, 0, n), n)
                with m.If(d.req_ready):
                    m.next = "WORDS"
            with m.State("WORDS"):
                m.d.comb += d.beat_ready.eq(1)
                with m.If(d.beat_valid if c > 1 else d.word_valid):
                    m.d.comb += [
                        self.wr.buf.eq(Buf.RESIDUAL),
                        self.wr.addr.eq(cur.addr),
                        self.wr.en.eq(1),
                    ]
                    if c > 1:
                        words = [d.beat[32 * i : 32 * (i + 1)].as_signed() for i in range(c)]
                        m.d.comb += [self.wr.data[i].eq(words[i % c]) for i in range(L)]
                        m.d.comb += self.wr.mask.eq(Const((1 << c) - 1, L) << (cur.lane * c))
                    else:
                        one_hot_lane(m, self.wr, cur.lane, d.word.as_signed())
                    cur.step(m)
                    with m.If(cur.last):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        return m


# -------------------------------------------------------------------------- LAYERNORM ----


class LayerNormEngine(Elaboratable):
    """LAYERNORM: gamma [D] (32-bit words), beta [D] (64-bit), eps (64-bit) and the requant
    word from DRAM, gamma and beta into L-lane words (element ``i`` at lane ``i mod L`` of word
    ``i div L``, as the activation rows): a whole beat of elements per cycle when a beat's
    ``c`` elements divide L (:meth:`per_beat`), else one 32-bit word per cycle; then every
    token row of the residual buffer through the LayerNorm unit, ``W = ceil(D / L)`` words per
    row and one residual word per beat, and the unit's words into LN_OUT (whole words, the
    unit's lane mask). Cycles: ``ceil(D / c_g) + ceil(D / c_b) + 3`` parameter beats or words
    (word by word: ``D`` and ``2D``; the four requests go out back to back, so one DRAM
    latency), then the unit's ``N*W + W + ceil(log2 L) + FILL`` (rtl/layernorm.py) and one
    feed register."""

    def __init__(self, hw: HwParams, ins, dram, mem, unit):
        self.hw, self.ins, self.dram, self.unit = hw, ins, dram, unit
        a = hw.arith
        self.rd = mem.read_client("ln_src", (Buf.RESIDUAL,), a.res_bits)
        self.wr = mem.write_client("ln_dst", (Buf.LN_OUT,), a.act_bits)
        self.start, self.done = Signal(), Signal()

    def per_beat(self, words: int) -> int:
        """Elements of ``words`` 32-bit words a DRAM beat fills at once (0: word by word)."""
        c = self.hw.streams.words_per_beat // words
        return c if c and self.hw.streams.act_lanes % c == 0 else 0

    def elaborate(self, platform):
        m = Module()
        a, L = self.hw.arith, self.hw.streams.act_lanes
        W = row_words(self.hw, Buf.RESIDUAL)
        self.g = Memory(shape=ArrayLayout(signed(a.ln_gamma_bits), L), depth=W, init=[])
        self.b = Memory(shape=ArrayLayout(signed(a.bias_bits), L), depth=W, init=[])
        m.submodules.g, m.submodules.b = self.g, self.b
        self.m_, self.s_ = Signal(a.mult_bits), Signal(8)
        self.eps = Signal(a.ln_var_bits)
        m.d.comb += [self.unit.eps.eq(self.eps), self.unit.m.eq(self.m_), self.unit.s.eq(self.s_)]
        self.go = Signal()
        self.we = {"G": Signal(name="ln_g_we"), "B": Signal(name="ln_b_we")}
        self.vals = {
            n: [Signal(signed(32 * w), name=f"ln_{n}_{k}") for k in range(self.per_beat(w) or 1)]
            for n, w in (("G", 1), ("B", 2))
        }
        self._params(m)
        for n, mem in (("G", self.g), ("B", self.b)):
            self._lane_writer(m, mem, self.we[n], self.vals[n])
        self._feed(m)
        self._drain(m)
        return m

    def _params(self, m: Module) -> None:
        """The four requests back to back (the reader answers them in order), then their
        data: gamma, beta, eps, the requantization word."""
        ins, d, D = self.ins, self.dram, self.hw.arith.embed_dim
        loads = (("G", ins.a0, D), ("B", ins.a1, 2 * D), ("E", ins.a3, 2), ("Q", ins.a2, 1))
        i, lo = Signal(16), Signal(32)
        with m.FSM(name="ln_params"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "G_REQ"
            for n, (name, base, count) in enumerate(loads):
                fast = name in ("G", "B") and self.per_beat(count // D) > 0
                beats = -(-count // self.hw.streams.words_per_beat)
                nxt = [f"{x[0]}_REQ" for x in loads[1:]] + ["G_W"]
                with m.State(f"{name}_REQ"):
                    m.d.sync += i.eq(0)
                    if fast:
                        d.request(m, base, beats)
                    else:
                        d.request(m, *word_span(self.hw, base, 0, count), count)
                    with m.If(d.req_ready):
                        m.next = nxt[n]
                with m.State(f"{name}_W"):
                    m.d.comb += d.beat_ready.eq(fast)
                    with m.If(d.beat_valid if fast else d.word_valid):
                        m.d.sync += [i.eq(i + 1), lo.eq(d.word)]
                        if fast:
                            self._param_beat(m, name, d.beat)
                        else:
                            self._param_word(m, name, i, lo, d.word)
                        with m.If(i == (beats if fast else count) - 1):
                            m.d.sync += i.eq(0)
                            m.next = f"{loads[n + 1][0]}_W" if n + 1 < len(loads) else "RUN"
            with m.State("RUN"):
                m.d.comb += self.go.eq(1)
                with m.If(self.done):
                    m.next = "IDLE"

    def _param_beat(self, m: Module, name: str, beat) -> None:
        """A beat of gamma (32-bit) or beta (64-bit) elements, all to their lanes."""
        vals, w = self.vals[name], 32 if name == "G" else 64
        m.d.comb += self.we[name].eq(1)
        m.d.comb += [v.eq(beat[k * w : (k + 1) * w]) for k, v in enumerate(vals)]

    def _param_word(self, m: Module, name: str, i, lo, word) -> None:
        """One parameter word (``i`` counts the load's 32-bit words; ``lo`` holds the last)."""
        a = self.hw.arith
        if name == "G":
            m.d.comb += [self.we["G"].eq(1), self.vals["G"][0].eq(word.as_signed())]
        elif name == "B":
            m.d.comb += [self.we["B"].eq(i[0]), self.vals["B"][0].eq(Cat(lo, word).as_signed())]
        elif name == "E":
            with m.If(i[0]):
                m.d.sync += self.eps.eq(Cat(lo, word)[: a.ln_var_bits])
        else:
            mm, ss = requant_fields(word)
            m.d.sync += [self.m_.eq(mm), self.s_.eq(ss)]

    def _lane_writer(self, m: Module, mem: Memory, we, vals: list) -> None:
        """On ``we``, the ``c = len(vals)`` elements into the next ``c`` lanes of ``mem``
        (``c`` divides L): elements arrive in order from 0 (after ``start``), element ``i`` to
        lane ``i mod L`` of word ``i div L``."""
        L, W = self.hw.streams.act_lanes, row_words(self.hw, Buf.RESIDUAL)
        c = len(vals)
        port = mem.write_port(granularity=1)
        lane, word = Signal(range(L)), Signal(range(W))
        m.d.comb += [port.addr.eq(word), port.en.eq(Mux(we, Const((1 << c) - 1, L) << lane, 0))]
        m.d.comb += [port.data[k].eq(vals[k % c]) for k in range(L)]
        with m.If(self.start):
            m.d.sync += [lane.eq(0), word.eq(0)]
        with m.Elif(we & (lane == L - c)):
            m.d.sync += [lane.eq(0), word.eq(word + 1)]
        with m.Elif(we):
            m.d.sync += lane.eq(lane + c)

    def _feed(self, m: Module) -> None:
        a, W = self.hw.arith, row_words(self.hw, Buf.RESIDUAL)
        inp = self.unit.inp
        gr, br = self.g.read_port(), self.b.read_port()
        w, base, row = Signal(range(W)), Signal(16), Signal(range(a.tokens + 1))
        v, last = Signal(), Signal()
        adv = ~v | inp.ready
        more = self.go & (row < a.tokens)
        issue = more & adv
        with m.If(self.start):
            m.d.sync += [w.eq(0), base.eq(0), row.eq(0)]
        with m.If(adv):
            m.d.sync += v.eq(more)
        m.d.comb += [
            self.rd.buf.eq(Buf.RESIDUAL),
            self.rd.addr.eq(base + w),
            self.rd.en.eq(issue),
            gr.addr.eq(w),
            gr.en.eq(issue),
            br.addr.eq(w),
            br.en.eq(issue),
        ]
        with m.If(issue):
            m.d.sync += last.eq(w == W - 1)
            with m.If(w == W - 1):
                m.d.sync += [w.eq(0), base.eq(base + W), row.eq(row + 1)]
            with m.Else():
                m.d.sync += w.eq(w + 1)
        full, part = self.unit.masks()
        p = inp.payload
        m.d.comb += [inp.valid.eq(v), p.mask.eq(Mux(last, part, full)), p.last.eq(last)]
        m.d.comb += [p.x.eq(self.rd.data), p.g.eq(gr.data), p.b.eq(br.data)]

    def _drain(self, m: Module) -> None:
        a, W = self.hw.arith, row_words(self.hw, Buf.LN_OUT)
        out = self.unit.out
        w, base, row = Signal(range(W)), Signal(16), Signal(range(a.tokens))
        with m.If(self.start):
            m.d.sync += [w.eq(0), base.eq(0), row.eq(0)]
        m.d.comb += out.ready.eq(1)
        with m.If(out.valid):
            m.d.comb += [
                self.wr.buf.eq(Buf.LN_OUT),
                self.wr.addr.eq(base + w),
                self.wr.en.eq(1),
                self.wr.mask.eq(out.payload.mask),
                self.wr.data.eq(out.payload.y),
            ]
            with m.If(w == W - 1):
                m.d.sync += [w.eq(0), base.eq(base + W), row.eq(row + 1)]
                with m.If(row == a.tokens - 1):
                    m.d.comb += self.done.eq(1)
            with m.Else():
                m.d.sync += w.eq(w + 1)


# -------------------------------------------------------------------------- ATTENTION ----


def head_table(m: Module, hw: HwParams, head, col0: int, name: str):
    """(word, lane offset) of head ``head``'s vector at column ``col0 + head*dh`` of a row."""
    a, L = hw.arith, hw.streams.act_lanes
    word, off = Signal(16, name=f"{name}_word"), Signal(range(L), name=f"{name}_off")
    with m.Switch(head):
        for h in range(a.heads):
            c = col0 + h * a.head_dim
            with m.Case(h):
                m.d.comb += [word.eq(c // L), off.eq(c % L)]
    return word, off


def vec_window(m: Module, hw: HwParams, data, off, name: str) -> list[Signal]:
    """head_dim lanes of a word from lane ``off`` (a multiple of head_dim)."""
    a, L = hw.arith, hw.streams.act_lanes
    dh = a.head_dim
    out = [Signal(signed(a.act_bits), name=f"{name}_{i}") for i in range(dh)]
    with m.Switch(off):
        for o in range(0, L, dh):
            with m.Case(o):
                m.d.comb += [out[i].eq(data[o + i]) for i in range(dh)]
    return out


class AttentionFeeder(Elaboratable):
    """ATTENTION (head ``index``, rows ``row0 ..``, at most P): the logit requant word, P query
    rows (zeros past ``rows``), then every token's (k, v) into the attention engine; its P
    output rows go to ATTN_OUT (the first ``rows`` of them). The requant word is kept with its
    address: the blocks of a head read the same word, so only the first one waits for DRAM
    (``invalidate``, at the start of a run, forgets it)."""

    def __init__(self, hw: HwParams, ins, dram, mem, unit):
        self.hw, self.ins, self.dram, self.unit = hw, ins, dram, unit
        a = hw.arith
        self.rq = mem.read_client("at_qk", (Buf.QKV,), a.act_bits)
        self.rv = mem.read_client("at_v", (Buf.QKV,), a.act_bits)
        self.wr = mem.write_client("at_out", (Buf.ATTN_OUT,), a.act_bits)
        self.start, self.done, self.invalidate = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        a, hw = self.hw.arith, self.hw
        lm, ls = Signal(a.mult_bits), Signal(8)
        m.d.comb += [self.unit.logit_m.eq(lm), self.unit.logit_s.eq(ls)]
        d, ins = self.dram, self.ins
        go = Signal()
        held, held_addr = Signal(), Signal.like(ins.a2, name="attn_rq_addr")
        with m.If(self.invalidate):
            m.d.sync += held.eq(0)
        with m.FSM(name="attn"):
            with m.State("IDLE"):
                with m.If(self.start & held & (held_addr == ins.a2)):
                    m.next = "RUN"
                with m.Elif(self.start):
                    m.d.sync += [held.eq(0), held_addr.eq(ins.a2)]
                    m.next = "REQ"
            with m.State("REQ"):
                addr, beats, skip = word_span(hw, ins.a2, 0, 1)
                d.request(m, addr, beats, skip, 1)
                with m.If(d.req_ready):
                    m.next = "WORD"
            with m.State("WORD"):
                with m.If(d.word_valid):
                    mm, ss = requant_fields(d.word)
                    m.d.sync += [lm.eq(mm), ls.eq(ss), held.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += go.eq(1)
                with m.If(self.done):
                    m.next = "IDLE"
        self._feed(m, go)
        self._drain(m)
        return m

    def _feed(self, m: Module, go) -> None:
        hw, a, ins = self.hw, self.hw.arith, self.ins
        P, N, D = hw.attn_rows, a.tokens, a.embed_dim
        wpr = row_words(hw, Buf.QKV)
        qw, qo = head_table(m, hw, ins.index, 0, "aq")
        kw, ko = head_table(m, hw, ins.index, D, "ak")
        vw, vo = head_table(m, hw, ins.index, 2 * D, "av")
        j = Signal(16)  # q rows 0..P-1, then keys P..P+N-1
        base = Signal(16)
        v, isq, zero, last = Signal(), Signal(), Signal(), Signal()
        qs, kv = self.unit.q, self.unit.kv
        ready = Mux(isq, qs.ready, kv.ready)
        adv = ~v | ready
        more = go & (j < P + N)
        issue = adv & more
        with m.If(self.start):
            m.d.sync += [j.eq(0), base.eq(0)]
        with m.If(adv):
            m.d.sync += v.eq(more)
        inq = j < P
        row_addr = Mux(inq, (ins.row0 + j) * wpr + qw, base + kw)
        m.d.comb += [
            self.rq.buf.eq(Buf.QKV),
            self.rq.addr.eq(row_addr),
            self.rq.en.eq(issue),
            self.rv.buf.eq(Buf.QKV),
            self.rv.addr.eq(base + vw),
            self.rv.en.eq(issue & ~inq),
        ]
        with m.If(issue):
            m.d.sync += [
                j.eq(j + 1),
                isq.eq(inq),
                zero.eq(inq & (j >= ins.rows)),
                last.eq(j == P + N - 1),
            ]
            with m.If(~inq):
                m.d.sync += base.eq(base + wpr)
        qv = vec_window(m, hw, self.rq.data, Mux(isq, qo, ko), "aqk")
        vv = vec_window(m, hw, self.rv.data, vo, "av")
        m.d.comb += [qs.valid.eq(v & isq), kv.valid.eq(v & ~isq), kv.payload.last.eq(last)]
        for i in range(a.head_dim):
            m.d.comb += [
                qs.payload.q[i].eq(Mux(zero, 0, qv[i])),
                kv.payload.k[i].eq(qv[i]),
                kv.payload.v[i].eq(vv[i]),
            ]

    def _drain(self, m: Module) -> None:
        hw, a, ins = self.hw, self.hw.arith, self.ins
        P, L, dh = hw.attn_rows, hw.streams.act_lanes, a.head_dim
        wpr = row_words(hw, Buf.ATTN_OUT)
        ow, oo = head_table(m, hw, ins.index, 0, "ao")
        p = Signal(range(P + 1))
        out = self.unit.out
        with m.If(self.start):
            m.d.sync += p.eq(0)
        m.d.comb += out.ready.eq(1)
        wr = self.wr
        m.d.comb += [
            wr.buf.eq(Buf.ATTN_OUT),
            wr.addr.eq((ins.row0 + p) * wpr + ow),
            wr.en.eq(out.valid & (p < ins.rows)),
        ]
        with m.Switch(oo):
            for o in range(0, L, dh):
                with m.Case(o):
                    for i in range(dh):
                        m.d.comb += [wr.data[o + i].eq(out.payload.o[i]), wr.mask[o + i].eq(1)]
        with m.If(out.valid):
            m.d.sync += p.eq(p + 1)
            with m.If(p == P - 1):
                m.d.comb += self.done.eq(1)


# ------------------------------------------------------------------- ROUTE / QUEUES ----


class RouteQueues(Elaboratable):
    """ROUTE: every token's gate logits through the router; its top-k gate weights go to the
    gate-weight memory (token * k + slot) and its choices to the queue builder. QUEUES: the
    builder's entries into the queue memory (expert e's i-th entry at e * tokens + i) and the
    per-expert ``counts``; then the MoE sums are cleared. ``addr`` / ``en`` -> ``token``,
    ``slot`` (next cycle) and ``gw_port`` are read by the matmul engine."""

    def __init__(self, hw: HwParams, mem, router, builder):
        self.hw, self.router, self.builder = hw, router, builder
        a = hw.arith
        self.rd = mem.read_client("route_in", (Buf.GATE_LOGITS,), a.logit_bits)
        self.clr = mem.write_client("moe_clear", (Buf.MOE_ACC,), 1)
        self.start_route, self.start_queues, self.done = Signal(), Signal(), Signal()
        self.counts = Array(Signal(a.count_bits, name=f"count_{e}") for e in range(a.experts))
        self.addr, self.en = Signal(16), Signal()
        self.token, self.slot = Signal(a.token_index_bits), Signal(a.slot_bits)
        self.qmem = Memory(
            shape=unsigned(a.token_index_bits + a.slot_bits), depth=a.experts * a.tokens, init=[]
        )
        self.gwmem = Memory(
            shape=unsigned(a.gate_weight_word_bits), depth=a.tokens * a.top_k, init=[]
        )
        self.gw_port = self.gwmem.read_port()

    def elaborate(self, platform):
        m = Module()
        a = self.hw.arith
        m.submodules.qmem, m.submodules.gwmem = self.qmem, self.gwmem
        qr = self.qmem.read_port()
        m.d.comb += [
            qr.addr.eq(self.addr),
            qr.en.eq(self.en),
            self.token.eq(qr.data),
            self.slot.eq(qr.data >> a.token_index_bits),
        ]
        self._route(m)
        self._queues(m)
        return m

    def _route(self, m: Module) -> None:
        a, hw = self.hw.arith, self.hw
        N = a.tokens
        wpr = row_words(hw, Buf.GATE_LOGITS)
        n, base = Signal(16), Signal(16)
        v, last = Signal(), Signal()
        inp = self.router.inp
        adv = ~v | inp.ready
        on = Signal()
        with m.If(self.start_route):
            m.d.sync += [n.eq(0), base.eq(0), on.eq(1)]
        issue = adv & on & (n < N)
        with m.If(adv):
            m.d.sync += v.eq(on & (n < N))
        m.d.comb += [self.rd.buf.eq(Buf.GATE_LOGITS), self.rd.addr.eq(base), self.rd.en.eq(issue)]
        with m.If(issue):
            m.d.sync += [n.eq(n + 1), base.eq(base + wpr), last.eq(n == N - 1)]
        m.d.comb += [inp.valid.eq(v), inp.payload.last.eq(last)]
        m.d.comb += [inp.payload.t[e].eq(self.rd.data[e]) for e in range(a.experts)]
        # router out -> gate weights (k cycles) -> queue builder
        out, qin = self.router.out, self.builder.inp
        slot, tok = Signal(range(a.top_k + 1)), Signal(16)
        gwp = self.gwmem.write_port()
        with m.If(self.start_route):
            m.d.sync += [slot.eq(0), tok.eq(0)]
        with m.If(out.valid & (slot < a.top_k)):
            m.d.comb += [gwp.en.eq(1), gwp.addr.eq(tok * a.top_k + slot)]
            with m.Switch(slot):
                for k in range(a.top_k):
                    with m.Case(k):
                        m.d.comb += gwp.data.eq(out.payload.w[k])
            m.d.sync += slot.eq(slot + 1)
        m.d.comb += [
            qin.payload.eq(out.payload),
            qin.valid.eq(out.valid & (slot == a.top_k)),
            out.ready.eq(qin.ready & (slot == a.top_k)),
        ]
        with m.If(out.valid & out.ready):
            m.d.sync += [slot.eq(0), tok.eq(tok + 1)]
            with m.If(tok == N - 1):
                m.d.sync += on.eq(0)
                m.d.comb += self.done.eq(1)

    def _queues(self, m: Module) -> None:
        a, hw = self.hw.arith, self.hw
        out = self.builder.out
        on, clearing = Signal(), Signal()
        caddr = Signal(16)
        depth = a.tokens * row_words(hw, Buf.MOE_ACC)
        qw = self.qmem.write_port()
        with m.If(self.start_queues):
            m.d.sync += [on.eq(1), caddr.eq(0)]
            m.d.sync += [c.eq(0) for c in self.counts]
        m.d.comb += out.ready.eq(on & ~clearing)
        e = out.payload.expert
        with m.If(out.valid & out.ready):
            m.d.comb += [
                qw.en.eq(1),
                qw.addr.eq(e * a.tokens + self.counts[e]),
                qw.data.eq(Cat(out.payload.token, out.payload.slot)),
            ]
            m.d.sync += self.counts[e].eq(self.counts[e] + 1)
            with m.If(out.payload.last):
                m.d.sync += clearing.eq(1)
        with m.If(clearing):
            m.d.comb += [
                self.clr.buf.eq(Buf.MOE_ACC),
                self.clr.addr.eq(caddr),
                self.clr.en.eq(1),
                self.clr.mask.eq(-1),
            ]
            m.d.sync += caddr.eq(caddr + 1)
            with m.If(caddr == depth - 1):
                m.d.sync += [clearing.eq(0), on.eq(0)]
                m.d.comb += self.done.eq(1)


# ----------------------------------------------------------------------------- OUTPUT ----


class OutputEngine(Elaboratable):
    """OUTPUT: the ``src`` buffer's tokens x embed_dim elements, row-major,
    ``streams.tokens_per_beat`` per ``m_axis`` beat (lane j: element j of the beat, two's
    complement in ``token_bits``), ``tlast`` on the last. The count divides a token and an
    activation word, so a beat is one lane group of one word."""

    def __init__(self, hw: HwParams, ins, mem):
        self.hw, self.ins = hw, ins
        self.rd = mem.read_client("out_src", ELEM_BUFS, hw.arith.res_bits)
        self.tdata = Signal(hw.streams.m_axis_bits)
        self.tvalid, self.tready, self.tlast = Signal(), Signal(), Signal()
        self.start, self.done = Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        a, hw, s = self.hw.arith, self.hw, self.hw.streams
        per, groups = s.tokens_per_beat, s.act_lanes // s.tokens_per_beat
        wpr = Signal(16)
        with m.Switch(self.ins.src):
            for b in ELEM_BUFS:
                with m.Case(b):
                    m.d.comb += wpr.eq(row_words(hw, b))
        cur = Cursor("out", a.tokens, a.embed_dim // per, 0, groups)  # a lane group per step
        cur.wpr = wpr
        on, v, group, last = Signal(), Signal(), Signal(range(groups)), Signal()
        adv = ~v | self.tready
        with m.If(self.start):
            cur.reset(m)
            m.d.sync += on.eq(1)
        issue = adv & on & ~cur.done
        with m.If(adv):
            m.d.sync += v.eq(on & ~cur.done)
        m.d.comb += [self.rd.buf.eq(self.ins.src), self.rd.addr.eq(cur.addr), self.rd.en.eq(issue)]
        with m.If(issue):
            m.d.sync += [group.eq(cur.lane), last.eq(cur.last)]
            cur.step(m)
        with m.Switch(group):
            for g in range(groups):
                with m.Case(g):
                    elems = [Value.cast(self.rd.data[g * per + j])[: s.token_bits]
                             for j in range(per)]  # fmt: skip
                    m.d.comb += self.tdata.eq(Cat(*elems))
        m.d.comb += [self.tvalid.eq(v), self.tlast.eq(last)]
        with m.If(v & self.tready & last):
            m.d.sync += on.eq(0)
            m.d.comb += self.done.eq(1)
        return m
