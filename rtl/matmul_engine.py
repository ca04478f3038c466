"""The MATMUL engine of the top: runs one matrix job of the program on the compute unit.

Per job (``isa.MatMul``; MOE_COMBINE runs here too, as a K = 1 job with zero operands whose
MOE_RES epilogue computes ``residual_add(res, moe_sum, m, s)``), for each C-column slab:

1. constants: C biases and C requantization words of the slab (and the GELU word once per
   job) from DRAM into the epilogue's ``cfg`` registers;
2. weights: the slab's ``K * slab_row_beats`` beats (pre-tiled, one k-row of C lanes per
   ``slab_row_beats`` beats) into the weight tile memory, row k at address k;
3. for each block of R rows: the row table (compact rows, or expert ``index``'s queue entries
   for GATHER / SCATTER), then K operand beats ``(x_k[R], w_k[C])``: x comes through a
   transposer -- R source words of L lanes are read (R cycles) into a fill register tile while
   the previous word's L columns shift out of the other, one column per cycle;
4. the epilogue's output rows are written back (C lanes of the destination row); the RESIDUAL
   and MoE modes get one ``side`` beat per row (residual and MoE-sum lanes, gate weight).

Rows past the job's count are padded (x = 0) and never written. A job of an expert no token
chose is skipped without reading its weights. The slab's last row is written before the next
slab's constants load (the epilogue's constants are per tile, held in shared registers).
"""

from __future__ import annotations

from amaranth.hdl import Array, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from edgevit_hw.rtl.actmem import row_words
from edgevit_hw.rtl.dram import word_span
from edgevit_hw.rtl.layouts import EPI_MODES, EpiClamp, EpiMode, Widths

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.image import RQ_SHIFT
from edgevit_hw.program.isa import NONE, Buf, Flag

MM_SRC = (Buf.PIXELS, Buf.LN_OUT, Buf.ATTN_OUT, Buf.HIDDEN)
MM_DST = (Buf.RESIDUAL, Buf.LN_OUT, Buf.QKV, Buf.ATTN_OUT, Buf.HIDDEN, Buf.MOE_ACC, Buf.GATE_LOGITS)


def per_buf(m: Module, buf, table: dict, shape, name: str) -> Signal:
    """A constant per buffer, selected by the dynamic ``buf``."""
    out = Signal(shape, name=name)
    with m.Switch(buf):
        for b, v in table.items():
            with m.Case(b):
                m.d.comb += out.eq(v)
    return out


class MatmulEngine(Elaboratable):
    """``start`` (pulse, with ``ins`` held stable) ... ``done`` (pulse). ``combine`` selects
    MOE_COMBINE. ``cu`` is the :class:`rtl.compute_unit.ComputeUnit`; ``qread(addr)`` /
    ``qdata`` the expert queue memory, ``counts`` the queue lengths, ``gw_port`` the gate
    weight memory's read port."""

    def __init__(self, hw: HwParams, ins, task, dram, mem, cu, queues):
        self.hw, self.ins, self.task, self.dram, self.cu, self.queues = (
            hw,
            ins,
            task,
            dram,
            cu,
            queues,
        )
        w = Widths.of(hw)
        self.fill = mem.read_client("mm_fill", MM_SRC, w.x)
        self.side_res = mem.read_client("mm_res", (Buf.RESIDUAL,), w.res)
        self.side_part = mem.read_client("mm_part", (Buf.MOE_ACC,), w.moe_acc)
        self.wb = mem.write_client("mm_wb", MM_DST, w.out)
        self.start, self.combine = Signal(), Signal()
        self.done, self.busy = Signal(), Signal()
        self.ops_fire = Signal()

    def elaborate(self, platform):
        m = Module()
        hw = self.hw
        self.w = Widths.of(hw)
        self.L = hw.streams.act_lanes
        self._regs(m)
        self._fifos(m)
        self._fsm(m)
        self._stream(m)
        self._side(m)
        self._writeback(m)
        return m

    # ------------------------------------------------------------------ job registers ----

    def _regs(self, m: Module) -> None:
        w, a = self.w, self.hw.arith
        C, R = w.cols, w.rows
        self.bias = Array(Signal(signed(w.acc), name=f"bias_{c}") for c in range(C))
        self.rm = Array(Signal(unsigned(w.mult), name=f"rm_{c}") for c in range(C))
        self.rs = Array(Signal(8, name=f"rs_{c}") for c in range(C))
        self.m2, self.s2 = Signal(unsigned(w.mult)), Signal(8)
        self.col0 = Signal(16)
        self.cword = Signal(16)  # col0 // L
        self.coff = Signal(range(self.L))  # col0 % L (a multiple of C)
        self.wb_add = Signal()
        self.count = Signal(16)
        self.row_base = Signal(16)
        self.kk = Signal(16)  # K of the job
        self.step = Signal(32)
        self.wslab = Signal(32)
        self.mode, self.clamp = Signal(EpiMode), Signal(EpiClamp)
        self.src_base = Array(Signal(16, name=f"src_base_{r}") for r in range(R))
        self.src_ok = Array(Signal(name=f"src_ok_{r}") for r in range(R))
        self.wmem = Memory(shape=unsigned(C * a.weight_bits), depth=a.max_k, init=[])
        m.submodules.wmem = self.wmem
        self.block_go = Signal()  # the stream process runs one block
        self.block_end = Signal()  # ... and says it has issued every operand and the cfg
        self.wb_pending = Signal(16)
        self.ncols = Signal(range(C + 1))  # valid columns of the slab

    def _fifos(self, m: Module) -> None:
        a = self.hw.arith
        depth = 4 * self.w.rows
        # wb entry: valid, dst row; side entry: dst row, slot
        m.submodules.wbq = self.wbq = SyncFIFOBuffered(width=17, depth=depth)
        m.submodules.sideq = self.sideq = SyncFIFOBuffered(width=16 + a.slot_bits, depth=depth)

    def _side_mode(self):
        return (
            (self.mode == EpiMode.RESIDUAL)
            | (self.mode == EpiMode.MOE_ACC)
            | (self.mode == EpiMode.MOE_RES)
        )

    # ---------------------------------------------------------------------------- FSM ----

    def _fsm(self, m: Module) -> None:
        ins, hw, C = self.ins, self.hw, self.w.cols
        gathered = (ins.flags & (Flag.GATHER | Flag.SCATTER)) != 0
        self.wpr_src = per_buf(m, ins.src, {b: row_words(hw, b) for b in MM_SRC}, 16, "wpr_src")
        self.n = Signal(16)
        m.d.comb += self.n.eq(Mux(self._out() - self.col0 < C, self._out() - self.col0, C))
        m.d.comb += self.ncols.eq(self.n)
        with m.FSM(name="mm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    self._init(m, gathered)
                    m.next = "INIT"
            with m.State("INIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.count == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Elif((self.mode == EpiMode.GELU) & ~self.combine):
                    m.next = "Q2"
                with m.Else():
                    m.next = "BIAS"
            self._q2_states(m)
            self._const_states(m)
            self._weight_states(m)
            self._block_states(m, gathered)
            with m.State("SLAB_END"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.wb_pending == 0):
                    m.d.sync += [self.col0.eq(self.col0 + C), self.row_base.eq(0)]
                    with m.If(self.coff == self.L - C):
                        m.d.sync += [self.coff.eq(0), self.cword.eq(self.cword + 1)]
                    with m.Else():
                        m.d.sync += self.coff.eq(self.coff + C)
                    with m.If(self.col0 + C >= self._out()):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BIAS"

    def _out(self):
        return Mux(self.combine, self.hw.arith.embed_dim, self.ins.out)

    def _init(self, m: Module, gathered) -> None:
        ins, a = self.ins, self.hw.arith
        counts = self.queues.counts
        count = Mux(self.combine, a.tokens, Mux(gathered, counts[ins.index], ins.rows))
        step = Mux((ins.flags & Flag.TASK) != 0, self.task[:8] * ins.stride, 0)
        m.d.sync += [
            self.count.eq(count),
            self.step.eq(step),
            self.col0.eq(0),
            self.cword.eq(0),
            self.coff.eq(0),
            self.row_base.eq(0),
            self.kk.eq(Mux(self.combine, 1, ins.k)),
            self.wslab.eq(ins.a0 + step),
        ]
        mode = Signal(EpiMode)
        clamp = Signal(EpiClamp)
        with m.Switch(ins.epi):
            for epi, (md, cl) in EPI_MODES.items():
                with m.Case(epi):
                    m.d.comb += [mode.eq(md), clamp.eq(cl)]
        m.d.sync += [
            self.mode.eq(Mux(self.combine, EpiMode.MOE_RES, mode)),
            self.clamp.eq(Mux(self.combine, EpiClamp.RES, clamp)),
        ]

    def _word_fields(self, word):
        return word[:RQ_SHIFT], word[RQ_SHIFT : RQ_SHIFT + 8]

    def _q2_states(self, m: Module) -> None:
        d = self.dram
        with m.State("Q2"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            addr, beats, skip = word_span(self.hw, self.ins.a3, 0, 1)
            d.request(m, addr, beats, skip, 1)
            with m.If(d.req_ready):
                m.next = "Q2_WAIT"
        with m.State("Q2_WAIT"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            with m.If(d.word_valid):
                mm, ss = self._word_fields(d.word)
                m.d.sync += [self.m2.eq(mm), self.s2.eq(ss)]
                m.next = "BIAS"

    def _const_states(self, m: Module) -> None:
        """BIAS then RQ: the slab's biases and requantization words (zero when absent)."""
        ins, d, C = self.ins, self.dram, self.w.cols
        wide = self.hw.streams.bias_word_bits == 64
        n = self.n
        idx = Signal(16)
        no_bias = self.combine | (ins.a1 == NONE)
        no_q = ~self.combine & (ins.a2 == NONE)
        qaddr = ins.a2 + Mux(self.combine, 0, self.step)
        with m.State("BIAS"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            m.d.sync += idx.eq(0)
            for c in range(C):
                m.d.sync += self.bias[c].eq(0)
            with m.If(no_bias):
                m.next = "RQ"
            with m.Else():
                first, cnt = (self.col0 * 2, n * 2) if wide else (self.col0, n)
                addr, beats, skip = word_span(self.hw, ins.a1, first, cnt)
                d.request(m, addr, beats, skip, cnt)
                with m.If(d.req_ready):
                    m.next = "BIAS_WAIT"
        with m.State("BIAS_WAIT"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            total = n * 2 if wide else n
            with m.If(d.word_valid):
                m.d.sync += idx.eq(idx + 1)
                self._bias_word(m, idx, d.word, wide)
                with m.If(idx == total - 1):
                    m.next = "RQ"
        with m.State("RQ"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            m.d.sync += idx.eq(0)
            for c in range(C):
                m.d.sync += [self.rm[c].eq(0), self.rs[c].eq(0)]
            with m.If(no_q):
                m.next = "WEIGHTS"
            with m.Else():
                addr, beats, skip = word_span(self.hw, qaddr, self.col0, n)
                d.request(m, addr, beats, skip, n)
                with m.If(d.req_ready):
                    m.next = "RQ_WAIT"
        with m.State("RQ_WAIT"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            with m.If(d.word_valid):
                mm, ss = self._word_fields(d.word)
                m.d.sync += [idx.eq(idx + 1), self.rm[idx].eq(mm), self.rs[idx].eq(ss)]
                with m.If(idx == n - 1):
                    m.next = "WEIGHTS"

    def _bias_word(self, m: Module, idx, word, wide: bool) -> None:
        if not wide:
            m.d.sync += self.bias[idx].eq(word.as_signed())
            return
        acc = self.w.acc
        lo = Signal(32, name="bias_lo")
        with m.If(~idx[0]):
            m.d.sync += lo.eq(word)
        with m.Else():
            full = (word.as_signed() << 32) | lo
            m.d.sync += self.bias[idx >> 1].eq(full[:acc].as_signed())

    def _weight_states(self, m: Module) -> None:
        """The slab's weight tile: K rows of C lanes, each in slab_row_beats beats."""
        hw, d, a = self.hw, self.dram, self.hw.arith
        rb, per, wb = hw.streams.slab_row_beats, hw.streams.weights_per_beat, a.weight_bits
        C = self.w.cols
        k = Signal(16)
        beat_i = Signal(range(max(rb, 2)))
        held = Signal(max(1, (rb - 1) * per * wb))
        wp = self.wmem.write_port()
        with m.State("WEIGHTS"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1)]
            m.d.sync += [k.eq(0), beat_i.eq(0)]
            with m.If(self.combine):
                m.next = "ROWS"
            with m.Else():
                d.request(m, self.wslab, self.kk * rb)
                with m.If(d.req_ready):
                    m.next = "WEIGHTS_WAIT"
        with m.State("WEIGHTS_WAIT"):
            m.d.comb += [self.busy.eq(1), d.active.eq(1), d.beat_ready.eq(1)]
            lanes = d.beat[: per * wb]
            with m.If(d.beat_valid):
                if rb > 1:
                    full = held | (lanes << ((rb - 1) * per * wb))
                    with m.If(beat_i == rb - 1):
                        m.d.comb += [wp.en.eq(1), wp.addr.eq(k), wp.data.eq(full[: C * wb])]
                        m.d.sync += [k.eq(k + 1), beat_i.eq(0), held.eq(0)]
                    with m.Else():
                        shifted = lanes << (beat_i * (per * wb))
                        m.d.sync += [beat_i.eq(beat_i + 1), held.eq(held | shifted)]
                else:
                    m.d.comb += [wp.en.eq(1), wp.addr.eq(k), wp.data.eq(lanes[: C * wb])]
                    m.d.sync += k.eq(k + 1)
                last_row = (k == self.kk - 1) & ((beat_i == rb - 1) if rb > 1 else 1)
                with m.If(last_row):
                    m.d.sync += self.wslab.eq(self.wslab + self.kk * rb)
                    m.next = "ROWS"

    # -------------------------------------------------------------------- row blocks ----

    def _block_states(self, m: Module, gathered) -> None:
        ins, a, R = self.ins, self.hw.arith, self.w.rows
        r = Signal(range(R + 1))
        pend = Signal()  # a queue read is in flight for row r - 1
        wpr_src = self.wpr_src
        qd = self.queues
        with m.State("ROWS"):
            m.d.comb += self.busy.eq(1)
            i = self.row_base + r
            room = self.wbq.w_stream.ready & self.sideq.w_stream.ready
            with m.If(r < R):
                with m.If(room & ~pend):
                    m.d.comb += [qd.addr.eq(ins.index * a.tokens + i), qd.en.eq(1)]
                    m.d.sync += [pend.eq(1)]
            with m.If(pend):
                self._row_entry(m, r, i, gathered, wpr_src)
                m.d.sync += [pend.eq(0), r.eq(r + 1)]
                m.d.comb += self.wb_add.eq(1)
            with m.If((r == R) & ~pend):
                m.d.sync += r.eq(0)
                m.next = "BLOCK"
        with m.State("BLOCK"):
            m.d.comb += [self.busy.eq(1), self.block_go.eq(1)]
            with m.If(self.block_end):
                m.d.sync += self.row_base.eq(self.row_base + R)
                with m.If(self.row_base + R >= self.count):
                    m.next = "SLAB_END"
                with m.Else():
                    m.next = "ROWS"

    def _row_entry(self, m: Module, r, i, gathered, wpr_src) -> None:
        """Row ``r`` of the block (job row ``i``; the queue word read last cycle)."""
        ins, qd = self.ins, self.queues
        valid = i < self.count
        token = qd.token
        src = Mux((ins.flags & Flag.GATHER) != 0, token, i)
        dst = Mux((ins.flags & Flag.SCATTER) != 0, token, i + ins.row0)
        dst = Mux(self.combine, i, dst)
        with m.Switch(r):
            for rr in range(self.w.rows):
                with m.Case(rr):
                    m.d.sync += [
                        self.src_base[rr].eq(src * wpr_src),
                        self.src_ok[rr].eq(valid & ~self.combine),
                    ]
        m.d.comb += [
            self.wbq.w_stream.valid.eq(1),
            self.wbq.w_stream.payload.eq(Mux(valid, 1 << 16, 0) | dst[:16]),
            self.sideq.w_stream.valid.eq(self._side_mode()),
            self.sideq.w_stream.payload.eq(dst[:16] | (qd.slot << 16)),
        ]
        del gathered

    # ------------------------------------------------------- operands (transposer) ----

    def _stream(self, m: Module) -> None:
        w, L, a = self.w, self.L, self.hw.arith
        R, C = w.rows, w.cols
        fill = [Signal(unsigned(w.x * L), name=f"fill_{r}") for r in range(R)]
        shift = [Signal(unsigned(w.x * L), name=f"shift_{r}") for r in range(R)]
        fj = Signal(16)  # word being filled
        fr = Signal(range(R + 1))  # next row to read
        f_full = Signal()
        rd_pend, rd_row, rd_ok = Signal(), Signal(range(R)), Signal()
        left = Signal(range(L + 1))  # columns left in the shift registers
        k = Signal(16)
        cfg_sent = Signal()
        fc = self.fill
        # fill: R reads of word fj, one per cycle
        with m.If(self.block_go & ~f_full & (fj * L < self.kk) & (fr < R)):
            m.d.comb += [
                fc.buf.eq(self.ins.src),
                fc.addr.eq(self.src_base[fr] + fj),
                fc.en.eq(self.src_ok[fr]),
            ]
            m.d.sync += [rd_pend.eq(1), rd_row.eq(fr), rd_ok.eq(self.src_ok[fr]), fr.eq(fr + 1)]
        with m.Else():
            m.d.sync += rd_pend.eq(0)
        with m.If(rd_pend):
            for r in range(R):
                with m.If(rd_row == r):
                    m.d.sync += fill[r].eq(Mux(rd_ok, fc.data.as_value(), 0))
            with m.If(rd_row == R - 1):
                m.d.sync += f_full.eq(1)
        # operand stage
        ops = self.cu.ops
        ov = Signal()
        adv = ~ov | ops.ready
        m.d.comb += ops.valid.eq(ov)
        wr = self.wmem.read_port()
        xs = [Signal(signed(w.x), name=f"xs_{r}") for r in range(R)]
        first, last = Signal(), Signal()
        can = self.block_go & (left != 0)
        with m.If(adv):
            m.d.sync += ov.eq(can)
        m.d.comb += [wr.addr.eq(k), wr.en.eq(adv & can)]
        with m.If(adv & can):
            for r in range(R):
                m.d.sync += [xs[r].eq(shift[r][: w.x].as_signed()), shift[r].eq(shift[r] >> w.x)]
            m.d.sync += [
                left.eq(left - 1),
                k.eq(k + 1),
                first.eq(k == 0),
                last.eq(k == self.kk - 1),
            ]
        with m.Elif(self.block_go & (left == 0) & f_full & ~rd_pend):
            rest = self.kk - fj * L
            m.d.sync += [left.eq(Mux(rest < L, rest, L)), f_full.eq(0), fj.eq(fj + 1), fr.eq(0)]
            m.d.sync += [shift[r].eq(fill[r]) for r in range(R)]
        wb = a.weight_bits
        m.d.comb += [ops.payload.x[r].eq(xs[r]) for r in range(R)]
        m.d.comb += [
            ops.payload.w[c].eq(Mux(self.combine, 0, wr.data[c * wb : (c + 1) * wb].as_signed()))
            for c in range(C)
        ]
        m.d.comb += [ops.payload.first.eq(first), ops.payload.last.eq(last)]
        m.d.comb += self.ops_fire.eq(ops.valid & ops.ready)
        self._cfg(m, cfg_sent)
        issued = (k == self.kk) & ~(adv & can)
        end = self.block_go & issued & (cfg_sent | (self.cu.cfg.valid & self.cu.cfg.ready))
        m.d.comb += self.block_end.eq(end)
        with m.If(end):
            m.d.sync += [k.eq(0), fj.eq(0), fr.eq(0), cfg_sent.eq(0), left.eq(0), f_full.eq(0)]

    def _cfg(self, m: Module, cfg_sent) -> None:
        cfg, C = self.cu.cfg, self.w.cols
        m.d.comb += cfg.valid.eq(self.block_go & ~cfg_sent)
        with m.If(cfg.valid & cfg.ready):
            m.d.sync += cfg_sent.eq(1)
        p = cfg.payload
        m.d.comb += [
            p.mode.eq(self.mode),
            p.clamp.eq(self.clamp),
            p.m2.eq(self.m2),
            p.s2.eq(self.s2),
        ]
        for c in range(C):
            m.d.comb += [p.bias[c].eq(self.bias[c]), p.m[c].eq(self.rm[c]), p.s[c].eq(self.rs[c])]

    # ----------------------------------------------------------- side and writeback ----

    def _lane_window(self, m: Module, data, name: str, bits: int) -> list[Signal]:
        """C lanes of an L-lane word starting at lane ``col0 % L`` (a multiple of C)."""
        C, L = self.w.cols, self.L
        off = Signal(range(L), name=f"{name}_off")
        m.d.comb += off.eq(self.coff)
        out = [Signal(signed(bits), name=f"{name}_{c}") for c in range(C)]
        with m.Switch(off):
            for o in range(0, L, C):
                with m.Case(o):
                    m.d.comb += [out[c].eq(data[o + c]) for c in range(C)]
        return out

    def _side(self, m: Module) -> None:
        a = self.hw.arith
        side, q = self.cu.side, self.sideq.r_stream
        sv = Signal()
        adv = ~sv | side.ready
        m.d.comb += side.valid.eq(sv)
        word = self.cword
        wpr_res, wpr_part = row_words(self.hw, Buf.RESIDUAL), row_words(self.hw, Buf.MOE_ACC)
        dst = q.payload[:16]
        slot = q.payload[16:]
        take = adv & q.valid
        m.d.comb += q.ready.eq(adv)
        with m.If(adv):
            m.d.sync += sv.eq(q.valid)
        gwp = self.queues.gw_port
        m.d.comb += [
            self.side_res.buf.eq(Buf.RESIDUAL),
            self.side_res.addr.eq(dst * wpr_res + word),
            self.side_res.en.eq(take),
            self.side_part.buf.eq(Buf.MOE_ACC),
            self.side_part.addr.eq(dst * wpr_part + word),
            self.side_part.en.eq(take),
            gwp.addr.eq(dst * a.top_k + slot),
            gwp.en.eq(take),
        ]
        res = self._lane_window(m, self.side_res.data, "side_res", self.w.res)
        part = self._lane_window(m, self.side_part.data, "side_part", self.w.moe_acc)
        p = side.payload
        m.d.comb += [p.res[c].eq(res[c]) for c in range(self.w.cols)]
        m.d.comb += [p.part[c].eq(part[c]) for c in range(self.w.cols)]
        m.d.comb += p.gw.eq(Mux(self.combine, 0, gwp.data))

    def _writeback(self, m: Module) -> None:
        C, L = self.w.cols, self.L
        out, q = self.cu.out, self.wbq.r_stream
        m.d.comb += [out.ready.eq(q.valid), q.ready.eq(out.valid)]
        valid, dst = q.payload[16], q.payload[:16]
        dst_buf = Signal(Buf)
        m.d.comb += dst_buf.eq(Mux(self.combine, Buf.RESIDUAL, self.ins.dst))
        wpr = per_buf(m, dst_buf, {b: row_words(self.hw, b) for b in MM_DST}, 16, "wpr_dst")
        wb = self.wb
        fire = out.valid & q.valid
        m.d.comb += [wb.buf.eq(dst_buf), wb.addr.eq(dst * wpr + self.cword), wb.en.eq(fire & valid)]
        with m.Switch(self.coff):
            for o in range(0, L, C):
                with m.Case(o):
                    for c in range(C):
                        m.d.comb += [
                            wb.data[o + c].eq(out.payload.y[c]),
                            wb.mask[o + c].eq(c < self.ncols),
                        ]
        m.d.sync += self.wb_pending.eq(self.wb_pending + self.wb_add - fire)


__all__ = ["MatmulEngine"]
