"""The MATMUL engine of the top: runs one matrix job of the program on the compute unit.

Per job (``isa.MatMul``; MOE_COMBINE runs here too, as a K = 1 job with zero operands whose
MOE_RES epilogue computes ``residual_add(res, moe_sum, m, s)``). Three processes overlap:

* the **loader** fetches, per C-column slab, the C biases and requantization words (the GELU
  word once per job) into constant bank ``s % 2`` and the slab's ``K * slab_row_beats`` beats
  (pre-tiled: one k-row of C lanes per ``slab_row_beats`` beats) into weight-tile half
  ``s % 2``; it loads slab s + 1 while slab s computes (double buffer). Its requester puts a
  slab's three requests out back to back once the bank's previous slab has been taken in
  (before the bank is free), its consumer takes the answers in order into the bank once it is
  free (whole beats of constants when C is a multiple of the words per beat), so a slab's
  DRAM latency hides behind the previous slab's data. When the job's last
  slab is asked and loaded, the loader goes on to the **next instruction** if the sequencer
  has prefetched it and it is a matrix job with rows (so across experts, and into
  MOE_COMBINE): its first slab loads while this job's last one computes. The loader keeps its
  own copy of the job's fields and the banks their own GELU word; bank parity runs on across
  jobs, and ``lreset`` (a flush, a new run) abandons the loader's work;
* the **row producer** builds, per block of R rows, row table ``t % 2`` (compact rows, or
  expert ``index``'s queue entries for GATHER / SCATTER) and queues each row's destination for
  the side and writeback paths, one block ahead of the stream;
* the **stream** runs a block when its table and its slab's bank are full: K operand beats
  ``(x_k[R], w_k[C])``, x through a transposer (R source words of L lanes read into a fill
  register tile while the previous word's L columns shift out of the other; the next block's
  first word is read while this block's last word shifts out), and one epilogue ``cfg`` beat
  through a small queue (the epilogue takes it with the block's tile; the slab's bank is
  released with its last block's cfg).

The epilogue's output rows are written back (C lanes of the destination row); the RESIDUAL and
MoE modes get one ``side`` beat per row (residual and MoE-sum lanes, gate weight). Rows past
the job's count are padded (x = 0) and never written. A job of an expert no token chose is
skipped without reading its weights. The job is done when its last row is written.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib.data import StructLayout
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from edgevit_hw.rtl.actmem import row_words
from edgevit_hw.rtl.dram import requant_fields, word_span
from edgevit_hw.rtl.layouts import EPI_MODES, EpiClamp, EpiMode, Widths

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.isa import NONE, Buf, Flag, Op

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


def wb_entry_layout() -> StructLayout:
    """A row's writeback: valid (row < count), destination row, its slab's word / lane offset
    in the row and valid columns."""
    return StructLayout({"valid": 1, "dst": 16, "cword": 8, "coff": 8, "ncols": 8})


def side_entry_layout(hw: HwParams) -> StructLayout:
    """A row's side read: destination row (= token), gate slot, its slab's word / lane offset."""
    return StructLayout({"dst": 16, "slot": hw.arith.slot_bits, "cword": 8, "coff": 8})


class MatmulEngine(Elaboratable):
    """``start`` (pulse, with ``ins`` held stable) ... ``done`` (pulse). ``combine`` selects
    MOE_COMBINE. ``cu`` is the :class:`rtl.compute_unit.ComputeUnit`; ``queues`` the
    :class:`rtl.engines.RouteQueues` (queue memory, per-expert counts, gate weights).
    ``nxt`` is the sequencer's prefetched instruction (decoded like ``ins``), ``nxt_ok`` high
    while it holds instruction pc + 1; ``lreset`` abandons the loader's work (a read flush,
    a new run: the engine is idle then)."""

    def __init__(self, hw: HwParams, ins, task, dram, mem, cu, queues, nxt):
        self.hw, self.ins, self.task, self.dram = hw, ins, task, dram
        self.nxt, self.nxt_ok, self.lreset = nxt, Signal(), Signal()
        self.cu, self.queues = cu, queues
        w = Widths.of(hw)
        self.fill = mem.read_client("mm_fill", MM_SRC, w.x)
        self.side_res = mem.read_client("mm_res", (Buf.RESIDUAL,), w.res)
        self.side_part = mem.read_client("mm_part", (Buf.MOE_ACC,), w.moe_acc)
        self.wb = mem.write_client("mm_wb", MM_DST, w.out)
        self.start, self.combine = Signal(), Signal()
        self.done, self.busy = Signal(), Signal()
        self.ops_fire = Signal()
        self.pix_bank = Signal()  # which frame of the pixel buffer a PIXELS source reads

    def elaborate(self, platform):
        m = Module()
        self.w = Widths.of(self.hw)
        self.L = self.hw.streams.act_lanes
        self._regs(m)
        self._fifos(m)
        self._job(m)
        self._loader(m)
        self._rows(m)
        self._stream(m)
        self._side(m)
        self._writeback(m)
        self._reset_loader(m)
        return m

    # ------------------------------------------------------------------ job registers ----

    def _regs(self, m: Module) -> None:
        w, a = self.w, self.hw.arith
        C, R = w.cols, w.rows
        self.bias = [Array(Signal(signed(w.acc), name=f"bias{p}_{c}") for c in range(C))
                     for p in range(2)]  # fmt: skip
        self.rm = [Array(Signal(unsigned(w.mult), name=f"rm{p}_{c}") for c in range(C))
                   for p in range(2)]  # fmt: skip
        self.rs = [Array(Signal(8, name=f"rs{p}_{c}") for c in range(C)) for p in range(2)]
        self.bank_full = Array(Signal(name=f"bank_full{p}") for p in range(2))
        self.bank_asked = Array(Signal(name=f"bank_asked{p}") for p in range(2))
        self.table_full = Array(Signal(name=f"table_full{p}") for p in range(2))
        self.src_base = [Array(Signal(16, name=f"src_base{p}_{r}") for r in range(R))
                         for p in range(2)]  # fmt: skip
        self.src_ok = [Array(Signal(name=f"src_ok{p}_{r}") for r in range(R)) for p in range(2)]
        # the GELU word of the slab in each bank (the loader may be a job ahead)
        self.m2 = Array(Signal(unsigned(w.mult), name=f"m2_{p}") for p in range(2))
        self.s2 = Array(Signal(8, name=f"s2_{p}") for p in range(2))
        self.count, self.kk = Signal(16), Signal(16)
        # the job's combine flag and output columns, registered at its start (the core's
        # ``combine`` and the instruction fields come through the decoder)
        self.cmb, self.outc = Signal(name="mm_cmb"), Signal(16, name="mm_out")
        self.mode, self.clamp = Signal(EpiMode), Signal(EpiClamp)
        self.wmem = Memory(shape=unsigned(C * a.weight_bits), depth=2 * a.max_k, init=[])
        m.submodules.wmem = self.wmem
        self.go = Signal()  # pulse: the job has rows; the three processes start
        self.running = Signal()  # the job runs (RUN: after its go, before its done)
        # bank parity of the requester, the consumer and the stream: they run on across jobs
        self.r_par, self.c_par = Signal(name="r_par"), Signal(name="c_par")
        self.bpar = Signal(name="s_bpar")
        self.wb_add = Signal()
        self.wb_pending = Signal(16)
        self.stream_done = Signal()

    def _fifos(self, m: Module) -> None:
        depth = 4 * self.w.rows
        wb, side = wb_entry_layout(), side_entry_layout(self.hw)
        m.submodules.wbq = self.wbq = SyncFIFOBuffered(width=wb.size, depth=depth)
        m.submodules.sideq = self.sideq = SyncFIFOBuffered(width=side.size, depth=depth)

    def _side_mode(self):
        return (
            (self.mode == EpiMode.RESIDUAL)
            | (self.mode == EpiMode.MOE_ACC)
            | (self.mode == EpiMode.MOE_RES)
        )

    def _ncols(self, col0, out):
        C = self.w.cols
        return Mux(out - col0 < C, out - col0, C)

    # ----------------------------------------------------------------------- the job ----

    def _job(self, m: Module) -> None:
        with m.FSM(name="mm_job"):
            with m.State("IDLE"):
                with m.If(self.start):
                    self._init(m)
                    m.next = "INIT"
            with m.State("INIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.count == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.go.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.running.eq(1)]
                with m.If(self.stream_done & (self.wb_pending == 0)):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

    def _fields(self, ins, combine) -> dict:
        """The job of instruction ``ins`` (decoded fields; ``combine``: MOE_COMBINE): its rows
        ``count`` (an expert's queue length for GATHER / SCATTER), reduction ``kk`` and output
        columns ``out``."""
        a = self.hw.arith
        gathered = (ins.flags & (Flag.GATHER | Flag.SCATTER)) != 0
        return {
            "count": Mux(combine, a.tokens, Mux(gathered, self.queues.counts[ins.index], ins.rows)),
            "kk": Mux(combine, 1, ins.k),
            "out": Mux(combine, a.embed_dim, ins.out),
        }

    def _epi_mode(self, m: Module, epi, combine, name: str) -> tuple[Signal, Signal]:
        """``(mode, clamp)`` of epilogue field ``epi`` (MOE_RES for MOE_COMBINE)."""
        mode, clamp = Signal(EpiMode, name=f"{name}_mode"), Signal(EpiClamp, name=f"{name}_clamp")
        with m.Switch(epi):
            for e, (md, cl) in EPI_MODES.items():
                with m.Case(e):
                    m.d.comb += [mode.eq(md), clamp.eq(cl)]
        with m.If(combine):
            m.d.comb += [mode.eq(EpiMode.MOE_RES), clamp.eq(EpiClamp.RES)]
        return mode, clamp

    def _init(self, m: Module) -> None:
        f = self._fields(self.ins, self.combine)
        mode, clamp = self._epi_mode(m, self.ins.epi, self.combine, "job")
        m.d.sync += [
            self.count.eq(f["count"]),
            self.kk.eq(f["kk"]),
            self.cmb.eq(self.combine),
            self.outc.eq(f["out"]),
            self.mode.eq(mode),
            self.clamp.eq(clamp),
        ]
        m.d.sync += [t.eq(0) for t in self.table_full]

    # ------------------------------------------------------------------------ loader ----

    def _loader(self, m: Module) -> None:
        """Slab constants and weights into bank / half ``par``, one slab ahead.

        Two processes: the **requester** asks for a slab's biases, requantization words and
        weight tile back to back (three requests, one DRAM latency) as soon as the bank's
        previous slab has been taken in (``bank_asked`` clear), before the bank is empty: it
        asks for slab s + 2 while slab s + 1's data arrives and slab s computes, so the DRAM
        latency hides behind the data before it (two slabs' answers may wait in the reader).
        The **consumer** takes the answers in the same order (the reader answers in order)
        into the bank once the bank is empty (its slab's last cfg has gone; until then the
        answers wait in the reader's FIFO, whose credits hold further bursts back) and marks it
        full. ``bank_asked[p]``: bank p's requests are out. A full bank empties without the
        DRAM port (its slab computes from the banks and the activation memories), so the wait
        always ends; answers behind it (the sequencer's prefetch) wait with it.

        The loader runs on its own copy of a job's fields (``ld``), taken at the job's go, or
        ahead of it: when both processes are done with the running job's slabs and the
        sequencer holds the next instruction, a matrix job with rows (``pre``: the next go
        finds its loader started)."""
        self._load_job(m)
        ld, gelu = self.ld, self.ld["gelu"]
        r_col0, r_par = Signal(16, name="r_col0"), self.r_par
        wslab = Signal(32, name="l_wslab")
        self.qbase = Signal(32, name="l_qbase")  # the job's requantization words
        self.wbeats = Signal(32, name="l_wbeats")  # beats of a slab's weight tile
        rb = self.hw.streams.slab_row_beats
        with m.FSM(name="mm_request") as req:
            with m.State("IDLE"):
                with m.If(self.l_start):
                    m.d.sync += [r_col0.eq(0), wslab.eq(ld["a0"] + ld["step"]),
                                 self.qbase.eq(ld["a2"] + Mux(ld["cmb"], 0, ld["step"])),
                                 self.wbeats.eq(ld["kk"] * rb)]  # fmt: skip
                    with m.If(gelu):
                        m.next = "Q2"
                    with m.Else():
                        m.next = "NEXT"
            self._requests(m, r_col0, r_par, wslab)
        c_col0, c_par = Signal(16, name="c_col0"), self.c_par
        m.d.comb += self.dram.word_ready.eq(0)  # answers may arrive early: taken in Q2/BIAS/RQ
        with m.FSM(name="mm_consume") as cons:
            with m.State("IDLE"):
                with m.If(self.l_start):
                    m.d.sync += c_col0.eq(0)
                    with m.If(gelu):
                        m.next = "Q2"
                    with m.Else():
                        m.next = "NEXT"
            self._consume(m, c_col0, c_par)
        m.d.comb += self.l_idle.eq(req.ongoing("IDLE") & cons.ongoing("IDLE") & ~self.l_start)

    def _load_job(self, m: Module) -> None:
        """The loader's job registers ``ld``: from the instruction at the job's go (when not
        started ahead), or from the prefetched next instruction while this job runs."""
        nxt, ins, hw = self.nxt, self.ins, self.hw
        self.l_start = Signal(name="l_start")  # the loader's job registers are set: begin
        self.l_idle = Signal(name="l_idle")  # both loader processes are done
        self.pre = Signal(name="l_pre")  # the loader has started the next job
        nxt_cmb = nxt.op == Op.MOE_COMBINE
        held = Signal(name="l_nxt_held")  # the next instruction has been there a cycle
        m.d.sync += held.eq(self.nxt_ok)
        nxt_job = self.nxt_ok & held & ((nxt.op == Op.MATMUL) | nxt_cmb)
        ahead = (self.running & self.l_idle & ~self.pre & nxt_job
                 & (self._fields(nxt, nxt_cmb)["count"] != 0))  # fmt: skip
        now = self.go & ~self.pre
        # the source: the next instruction while a job runs, else this job's (at its go)
        src = {f.name: Mux(self.running, getattr(nxt, f.name), getattr(ins, f.name))
               for f in hw.isa.fields}  # fmt: skip
        cmb = Mux(self.running, nxt_cmb, self.combine)
        f = self._fields(SimpleNamespace(**src), cmb)
        mode, _ = self._epi_mode(m, src["epi"], cmb, "ld")
        # the weight step (TASK: task id * stride) of either instruction, each product formed
        # from registers into a register (the instructions are there a cycle before they load)
        steps = []
        for x, n in ((nxt, "nxt"), (ins, "ins")):
            steps.append(Signal(32, name=f"l_step_{n}"))
            m.d.sync += steps[-1].eq(Mux((x.flags & Flag.TASK) != 0, self.task[:8] * x.stride, 0))
        vals = {"a0": src["a0"], "a1": src["a1"], "a2": src["a2"], "a3": src["a3"],
                "step": Mux(self.running, *steps), "kk": f["kk"], "out": f["out"], "cmb": cmb,
                "gelu": (mode == EpiMode.GELU)}  # fmt: skip
        widths = {"step": 32, "kk": 16, "out": 16, "cmb": 1, "gelu": 1}
        self.ld = {k: Signal(widths.get(k, len(v)), name=f"ld_{k}") for k, v in vals.items()}
        with m.If(~self.lreset & (now | ahead)):
            m.d.sync += [self.ld[k].eq(v) for k, v in vals.items()]
            m.d.sync += self.l_start.eq(1)
        with m.Else():
            m.d.sync += self.l_start.eq(0)
        with m.If(ahead):
            m.d.sync += self.pre.eq(1)
        with m.If(self.go):
            m.d.sync += self.pre.eq(0)

    def _reset_loader(self, m: Module) -> None:
        """``lreset``: banks empty, parities 0, no job started ahead (last, so it wins)."""
        with m.If(self.lreset):
            m.d.sync += [f.eq(0) for f in (*self.bank_full, *self.bank_asked)]
            m.d.sync += [p.eq(0) for p in (self.r_par, self.c_par, self.bpar, self.pre)]

    @contextmanager
    def _lstate(self, m: Module, name: str):
        """A loader state: ``lreset`` returns the process to IDLE."""
        with m.State(name):
            yield
            with m.If(self.lreset):
                m.next = "IDLE"

    def _requests(self, m: Module, col0, par, wslab) -> None:
        """The requester's states after GO: the GELU word (Q2), then per slab: NEXT registers
        the slab's columns, PREP its two constant requests, so each request the DRAM port sees
        comes from registers."""
        ld, d, C = self.ld, self.dram, self.w.cols
        wide = self.hw.streams.bias_word_bits == 64
        n = Signal(16, name="r_n")  # the slab's columns, registered in NEXT
        no_bias, no_q = self._absent()
        reqs = {k: [Signal(32, name=f"r_{k}_{f}") for f in ("addr", "beats", "skip", "words")]
                for k in ("bias", "rq")}  # fmt: skip
        with self._lstate(m, "Q2"):
            d.request(m, *word_span(self.hw, ld["a3"], 0, 1), 1)
            with m.If(d.req_ready):
                m.next = "NEXT"
        with self._lstate(m, "NEXT"):
            m.d.sync += n.eq(self._ncols(col0, ld["out"]))
            with m.If(col0 >= ld["out"]):
                m.next = "IDLE"
            with m.Elif(~self.bank_asked[par]):
                m.d.sync += self.bank_asked[par].eq(1)
                m.next = "PREP"
        with self._lstate(m, "PREP"):
            first, cnt = (col0 * 2, n * 2) if wide else (col0, n)
            for k, fields in (("bias", self._const_span(ld["a1"], first, cnt)),
                              ("rq", self._const_span(self.qbase, col0, n))):  # fmt: skip
                m.d.sync += [r.eq(v) for r, v in zip(reqs[k], fields, strict=True)]
            m.next = "BIAS"
        for state, k, absent, then in (("BIAS", "bias", no_bias, "RQ"),
                                       ("RQ", "rq", no_q, "WEIGHTS")):  # fmt: skip
            with self._lstate(m, state):
                with m.If(absent):
                    m.next = then
                with m.Else():
                    d.request(m, *reqs[k])
                    with m.If(d.req_ready):
                        m.next = then
        with self._lstate(m, "WEIGHTS"):
            with m.If(~ld["cmb"]):
                d.request(m, wslab, self.wbeats)
            with m.If(ld["cmb"] | d.req_ready):
                m.d.sync += [wslab.eq(wslab + self.wbeats), par.eq(~par), col0.eq(col0 + C)]
                m.next = "NEXT"

    def _const_beats(self) -> bool:
        """Slab constants arrive a beat at a time (whole beats of words, every slab's first
        word on a beat boundary: C a multiple of the words per beat), else word by word."""
        wpb = self.hw.streams.words_per_beat
        return wpb > 1 and self.w.cols % wpb == 0

    def _const_span(self, base, first, cnt) -> tuple:
        """``(addr, beats, skip, words)`` of ``cnt`` constant words from word ``first`` of
        the segment at beat ``base`` (whole beats: ``words`` = 0, see :meth:`_const_beats`)."""
        if self._const_beats():
            sh = self.hw.streams.words_per_beat.bit_length() - 1
            return base + (first >> sh), (cnt + (1 << sh) - 1) >> sh, 0, 0
        return (*word_span(self.hw, base, first, cnt), cnt)

    def _absent(self):
        """``(no_bias, no_q)``: the job reads no biases / no requantization words."""
        ld = self.ld
        return ld["cmb"] | (ld["a1"] == NONE), ~ld["cmb"] & (ld["a2"] == NONE)

    def _consume(self, m: Module, col0, par) -> None:
        """The consumer's states after GO: the answers in request order into bank ``par``
        (constants the job has none of are zero)."""
        ld, d, C = self.ld, self.dram, self.w.cols
        wide = self.hw.streams.bias_word_bits == 64
        n = Signal(16, name="c_n")  # the slab's columns, registered in NEXT
        idx = Signal(16, name="l_idx")
        no_bias, no_q = self._absent()
        bias, rm, rs = (Array(x) for x in (self.bias, self.rm, self.rs))
        rb = self.hw.streams.slab_row_beats
        k, beat_i = Signal(16, name="l_k"), Signal(range(max(rb, 2)), name="l_beat")
        m2, s2 = Signal.like(self.m2[0], name="l_m2"), Signal.like(self.s2[0], name="l_s2")
        with self._lstate(m, "Q2"):
            m.d.comb += d.word_ready.eq(1)
            with m.If(d.word_valid):
                mm, ss = requant_fields(d.word)
                m.d.sync += [m2.eq(mm), s2.eq(ss)]
                m.next = "NEXT"
        with self._lstate(m, "NEXT"):
            m.d.sync += [idx.eq(0), k.eq(0), beat_i.eq(0), n.eq(self._ncols(col0, ld["out"]))]
            with m.If(col0 >= ld["out"]):
                m.next = "IDLE"
            with m.Elif(self.bank_asked[par] & ~self.bank_full[par]):
                for c in range(C):
                    m.d.sync += [bias[par][c].eq(0), rm[par][c].eq(0), rs[par][c].eq(0)]
                m.d.sync += [self.m2[par].eq(m2), self.s2[par].eq(s2)]
                m.next = "BIAS"
        beats = self._const_beats()
        wpb = self.hw.streams.words_per_beat
        sh = wpb.bit_length() - 1
        with self._lstate(m, "BIAS"):
            total = n * 2 if wide else n
            if beats:
                total = (total + wpb - 1) >> sh
            m.d.comb += [d.word_ready.eq(~no_bias), d.beat_ready.eq(~no_bias)]
            with m.If(no_bias):
                m.next = "RQ"
            with m.Elif(d.beat_valid if beats else d.word_valid):
                m.d.sync += idx.eq(idx + 1)
                if beats:
                    self._bias_beat(m, bias[par], idx, d.beat, wide)
                else:
                    self._bias_word(m, bias[par], idx, d.word, wide)
                with m.If(idx + 1 == total):
                    m.d.sync += idx.eq(0)
                    m.next = "RQ"
        with self._lstate(m, "RQ"):
            m.d.comb += [d.word_ready.eq(~no_q), d.beat_ready.eq(~no_q)]
            total = (n + wpb - 1) >> sh if beats else n
            with m.If(no_q):
                m.next = "WEIGHTS"
            with m.Elif(d.beat_valid if beats else d.word_valid):
                m.d.sync += idx.eq(idx + 1)
                if beats:  # words j of beat b: columns b * wpb + j
                    with m.Switch(idx):
                        for b in range(C // wpb):
                            with m.Case(b):
                                for j in range(wpb):
                                    mm, ss = requant_fields(d.beat[32 * j : 32 * (j + 1)])
                                    col = b * wpb + j
                                    m.d.sync += [rm[par][col].eq(mm), rs[par][col].eq(ss)]
                else:
                    mm, ss = requant_fields(d.word)
                    m.d.sync += [rm[par][idx].eq(mm), rs[par][idx].eq(ss)]
                with m.If(idx + 1 == total):
                    m.d.sync += idx.eq(0)
                    m.next = "WEIGHTS"
        self._weight_states(m, col0, par, k, beat_i)

    def _bias_beat(self, m: Module, bias, idx, beat, wide: bool) -> None:
        """Beat ``idx`` of the slab's biases: ``wpb`` (32-bit) or ``wpb / 2`` (64-bit)."""
        wpb, C = self.hw.streams.words_per_beat, self.w.cols
        per = wpb // 2 if wide else wpb
        bits = 64 if wide else 32
        with m.Switch(idx):
            for b in range(C // per):
                with m.Case(b):
                    for j in range(per):
                        v = beat[bits * j : bits * (j + 1)][: self.w.acc].as_signed()
                        m.d.sync += bias[b * per + j].eq(v)

    def _bias_word(self, m: Module, bias, idx, word, wide: bool) -> None:
        if not wide:
            m.d.sync += bias[idx].eq(word.as_signed())
            return
        lo = Signal(32, name="bias_lo")
        with m.If(~idx[0]):
            m.d.sync += lo.eq(word)
        with m.Else():
            m.d.sync += bias[idx >> 1].eq(Cat(lo, word)[: self.w.acc].as_signed())

    def _weight_states(self, m: Module, col0, par, k, beat_i) -> None:
        """The slab's weight tile: K rows of C lanes, each in slab_row_beats beats."""
        hw, d, a = self.hw, self.dram, self.hw.arith
        rb, per, wb = hw.streams.slab_row_beats, hw.streams.weights_per_beat, a.weight_bits
        C = self.w.cols
        held = Signal(max(1, (rb - 1) * per * wb))
        wp = self.wmem.write_port()
        ld = self.ld
        with self._lstate(m, "WEIGHTS"):
            m.d.comb += d.beat_ready.eq(~ld["cmb"])
            lanes = d.beat[: per * wb]
            addr = Mux(par, a.max_k, 0) + k
            with m.If(ld["cmb"]):
                self._slab_loaded(m, col0, par)
            with m.Elif(d.beat_valid):
                if rb > 1:
                    full = held | (lanes << ((rb - 1) * per * wb))
                    with m.If(beat_i == rb - 1):
                        m.d.comb += [wp.en.eq(1), wp.addr.eq(addr), wp.data.eq(full[: C * wb])]
                        m.d.sync += [k.eq(k + 1), beat_i.eq(0), held.eq(0)]
                    with m.Else():
                        shifted = lanes << (beat_i * (per * wb))
                        m.d.sync += [beat_i.eq(beat_i + 1), held.eq(held | shifted)]
                else:
                    m.d.comb += [wp.en.eq(1), wp.addr.eq(addr), wp.data.eq(lanes[: C * wb])]
                    m.d.sync += k.eq(k + 1)
                last_row = (k + 1 == ld["kk"]) & ((beat_i == rb - 1) if rb > 1 else 1)
                with m.If(last_row):
                    self._slab_loaded(m, col0, par)

    def _slab_loaded(self, m: Module, col0, par) -> None:
        m.d.sync += [self.bank_full[par].eq(1), self.bank_asked[par].eq(0), par.eq(~par),
                     col0.eq(col0 + self.w.cols)]  # fmt: skip
        m.next = "NEXT"

    # ------------------------------------------------------------------ row producer ----

    def _rows(self, m: Module) -> None:
        ins, a, R, C, L = self.ins, self.hw.arith, self.w.rows, self.w.cols, self.L
        wpr_src = per_buf(m, ins.src, {b: row_words(self.hw, b) for b in MM_SRC}, 16, "wpr_src")
        r = Signal(range(R + 1), name="r_r")
        pend, tpar = Signal(name="r_pend"), Signal(name="r_tpar")
        col0, cword = Signal(16, name="r_col0"), Signal(8, name="r_cword")
        coff, base = Signal(8, name="r_coff"), Signal(16, name="r_base")
        qd = self.queues
        i = base + r
        with m.FSM(name="mm_rows"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [col0.eq(0), cword.eq(0), coff.eq(0), base.eq(0), tpar.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += [r.eq(0), pend.eq(0)]
                with m.If(col0 >= self.outc):
                    m.next = "IDLE"
                with m.Elif(~self.table_full[tpar]):
                    m.next = "FILL"
            with m.State("FILL"):
                room = self.wbq.w_stream.ready & self.sideq.w_stream.ready
                with m.If((r < R) & room & ~pend):
                    m.d.comb += [qd.addr.eq(ins.index * a.tokens + i), qd.en.eq(1)]
                    m.d.sync += pend.eq(1)
                with m.If(pend):
                    entry = (tpar, r, i, wpr_src, cword, coff, self._ncols(col0, self.outc))
                    self._row_entry(m, *entry)
                    m.d.sync += [pend.eq(0), r.eq(r + 1)]
                    m.d.comb += self.wb_add.eq(1)
                with m.If((r == R) & ~pend):
                    m.d.sync += [self.table_full[tpar].eq(1), tpar.eq(~tpar), base.eq(base + R)]
                    with m.If(base + R >= self.count):
                        m.d.sync += [base.eq(0), col0.eq(col0 + C)]
                        with m.If(coff == L - C):
                            m.d.sync += [coff.eq(0), cword.eq(cword + 1)]
                        with m.Else():
                            m.d.sync += coff.eq(coff + C)
                    m.next = "WAIT"

    def _row_entry(self, m: Module, tpar, r, i, wpr_src, cword, coff, ncols) -> None:
        """Row ``r`` of the block (job row ``i``; the queue word read last cycle)."""
        ins, qd = self.ins, self.queues
        valid = i < self.count
        token = qd.token
        src = Mux((ins.flags & Flag.GATHER) != 0, token, i)
        dst = Mux((ins.flags & Flag.SCATTER) != 0, token, i + ins.row0)
        wb, side = Signal(wb_entry_layout()), Signal(side_entry_layout(self.hw))
        m.d.comb += [wb.valid.eq(valid), wb.dst.eq(Mux(self.cmb, i, dst)), wb.cword.eq(cword),
                     wb.coff.eq(coff), wb.ncols.eq(ncols), side.dst.eq(wb.dst),
                     side.slot.eq(qd.slot), side.cword.eq(cword), side.coff.eq(coff)]  # fmt: skip
        base, ok = Array(self.src_base)[tpar], Array(self.src_ok)[tpar]
        bank = row_words(self.hw, Buf.PIXELS) * self.hw.arith.patches
        offset = Mux((ins.src == Buf.PIXELS) & self.pix_bank, bank, 0)
        m.d.sync += [base[r].eq(src * wpr_src + offset), ok[r].eq(valid & ~self.cmb)]
        m.d.comb += [
            self.wbq.w_stream.valid.eq(1),
            self.wbq.w_stream.payload.eq(wb.as_value()),
            self.sideq.w_stream.valid.eq(self._side_mode()),
            self.sideq.w_stream.payload.eq(side.as_value()),
        ]

    # ------------------------------------------------------- operands (transposer) ----

    def _stream(self, m: Module) -> None:
        R, C = self.w.rows, self.w.cols
        col0, bpar, tpar = Signal(16, name="s_col0"), self.bpar, Signal(name="s_tpar")
        base = Signal(16, name="s_base")
        go = Signal(name="block_go")
        end = Signal(name="block_end")
        self.stream_on = Signal(name="stream_on")  # between the job's go and its last block
        with m.FSM(name="mm_stream"):
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [col0.eq(0), tpar.eq(0), base.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.stream_on.eq(1)
                with m.If(col0 >= self.outc):
                    m.next = "DONE"
                with m.Elif(self.bank_full[bpar] & self.table_full[tpar]):
                    m.next = "BLOCK"
            with m.State("DONE"):
                m.d.comb += self.stream_done.eq(1)
                with m.If(self.done):
                    m.next = "IDLE"
            with m.State("BLOCK"):
                m.d.comb += [go.eq(1), self.stream_on.eq(1)]
                with m.If(end):
                    m.d.sync += [self.table_full[tpar].eq(0), tpar.eq(~tpar), base.eq(base + R)]
                    with m.If(base + R >= self.count):  # its bank is released with its cfg
                        m.d.sync += [bpar.eq(~bpar), col0.eq(col0 + C), base.eq(0)]
                    m.next = "WAIT"
        self._operands(m, go, end, bpar, tpar, base + R >= self.count)

    def _operands(self, m: Module, go, end, bpar, tpar, slab_last) -> None:
        """The operand beats of the running block (``go``), x through the transposer.

        The **fill** side reads word ``fj`` (L columns) of the R rows of table ``f_tab`` into
        the fill tile, one row per cycle, whenever the tile is empty and that table is full;
        after the block's last word it moves on to the next table, so the next block's first
        word is read while this block's last word shifts out. The **shift** side sends one
        column (k) per beat and reloads from the fill tile in the cycle its last column goes
        out, so a block costs K beats with no bubble between words."""
        w, L, a = self.w, self.L, self.hw.arith
        R, C = w.rows, w.cols
        fill = [Signal(unsigned(w.x * L), name=f"fill_{r}") for r in range(R)]
        shift = [Signal(unsigned(w.x * L), name=f"shift_{r}") for r in range(R)]
        fj = Signal(16)  # word of table f_tab being filled (or held in the fill tile)
        f_tab = Signal(name="f_tab")  # the table (block) the fill side reads
        fr = Signal(range(R + 1))  # next row to read
        f_full = Signal()
        rd_pend, rd_row, rd_ok = Signal(), Signal(range(R)), Signal()
        left = Signal(range(L + 1))  # columns left in the shift registers
        k = Signal(16)
        cfg_sent = Signal()
        fc = self.fill
        src_base, src_ok = Array(self.src_base)[f_tab], Array(self.src_ok)[f_tab]
        running = self.stream_on & ~f_full & Array(self.table_full)[f_tab]
        with m.If(running & (fr < R)):
            m.d.comb += [
                fc.buf.eq(self.ins.src),
                fc.addr.eq(src_base[fr] + fj),
                fc.en.eq(src_ok[fr]),
            ]
            m.d.sync += [rd_pend.eq(1), rd_row.eq(fr), rd_ok.eq(src_ok[fr]), fr.eq(fr + 1)]
        with m.Else():
            m.d.sync += rd_pend.eq(0)
        with m.If(rd_pend):
            for r in range(R):
                with m.If(rd_row == r):
                    m.d.sync += fill[r].eq(Mux(rd_ok, fc.data.as_value(), 0))
            with m.If(rd_row == R - 1):
                m.d.sync += f_full.eq(1)
        ops = self.cu.ops
        ov = Signal()
        adv = ~ov | ops.ready
        m.d.comb += ops.valid.eq(ov)
        wr = self.wmem.read_port()
        xs = [Signal(signed(w.x), name=f"xs_{r}") for r in range(R)]
        first, last = Signal(), Signal()
        can = go & (left != 0)
        step = adv & can
        # after this cycle: columns sent k + step, the block has more (k_next < kk) and their
        # next word's columns: both cases formed from the registers, ``step`` picks (its
        # ready path meets one multiplexer, not an adder and a compare)
        more, cols = Signal(name="k_more"), Signal(range(L + 1), name="k_cols")
        rest0, rest1 = self.kk - k, (self.kk + ~k)[:16]  # kk - k, kk - k - 1
        m.d.comb += [
            more.eq(Mux(step, k + 1 < self.kk, k < self.kk)),
            cols.eq(Mux(step, Mux(rest1 < L, rest1, L), Mux(rest0 < L, rest0, L))),
        ]
        with m.If(adv):
            m.d.sync += ov.eq(can)
        m.d.comb += [wr.addr.eq(Mux(bpar, a.max_k, 0) + k), wr.en.eq(step)]
        with m.If(step):
            for r in range(R):
                m.d.sync += [xs[r].eq(shift[r][: w.x].as_signed()), shift[r].eq(shift[r] >> w.x)]
            m.d.sync += [
                left.eq(left - 1),
                k.eq(k + 1),
                first.eq(k == 0),
                last.eq(k == self.kk - 1),
            ]
        empty = (left == 0) | ((left == 1) & step)  # the shift tile is free after this cycle
        with m.If(go & empty & f_full & (f_tab == tpar) & more):
            m.d.sync += [left.eq(cols), f_full.eq(0), fr.eq(0)]
            m.d.sync += [shift[r].eq(fill[r]) for r in range(R)]
            with m.If((fj + 1) * L >= self.kk):  # the block's last word: on to the next block
                m.d.sync += [fj.eq(0), f_tab.eq(~f_tab)]
            with m.Else():
                m.d.sync += fj.eq(fj + 1)
        with m.If(self.go):
            m.d.sync += [fj.eq(0), f_tab.eq(0), fr.eq(0), f_full.eq(0)]
        wb = a.weight_bits
        m.d.comb += [ops.payload.x[r].eq(xs[r]) for r in range(R)]
        m.d.comb += [
            ops.payload.w[c].eq(Mux(self.cmb, 0, wr.data[c * wb : (c + 1) * wb].as_signed()))
            for c in range(C)
        ]
        m.d.comb += [ops.payload.first.eq(first), ops.payload.last.eq(last)]
        m.d.comb += self.ops_fire.eq(ops.valid & ops.ready)
        pushed = self._cfg(m, go, cfg_sent, bpar, slab_last)
        issued = (k == self.kk) & ~step
        m.d.comb += end.eq(go & issued & (cfg_sent | pushed))
        with m.If(end):
            m.d.sync += [k.eq(0), cfg_sent.eq(0), left.eq(0)]

    def _cfg(self, m: Module, go, cfg_sent, bpar, slab_last) -> None:
        """Each block queues its epilogue ``cfg`` (the constants bank and whether it is its
        slab's last block) when it starts; the epilogue takes it with the block's tile, after
        the block's operands are sent. The bank is released when its slab's last cfg goes."""
        cfg, C = self.cu.cfg, self.w.cols
        m.submodules.cfgq = q = SyncFIFOBuffered(width=2, depth=4)
        m.d.comb += [
            q.w_stream.valid.eq(go & ~cfg_sent),
            q.w_stream.payload.eq(Cat(bpar, slab_last)),
        ]
        with m.If(q.w_stream.valid & q.w_stream.ready):
            m.d.sync += cfg_sent.eq(1)
        qpar, qlast = q.r_stream.payload[0], q.r_stream.payload[1]
        m.d.comb += [cfg.valid.eq(q.r_stream.valid), q.r_stream.ready.eq(cfg.ready)]
        with m.If(cfg.valid & cfg.ready & qlast):
            m.d.sync += self.bank_full[qpar].eq(0)
        p = cfg.payload
        m.d.comb += [
            p.mode.eq(self.mode),
            p.clamp.eq(self.clamp),
            p.m2.eq(self.m2[qpar]),
            p.s2.eq(self.s2[qpar]),
        ]
        for c in range(C):
            m.d.comb += [
                p.bias[c].eq(Mux(qpar, self.bias[1][c], self.bias[0][c])),
                p.m[c].eq(Mux(qpar, self.rm[1][c], self.rm[0][c])),
                p.s[c].eq(Mux(qpar, self.rs[1][c], self.rs[0][c])),
            ]
        return q.w_stream.valid & q.w_stream.ready

    # ----------------------------------------------------------- side and writeback ----

    def _lane_window(self, m: Module, data, off, name: str, bits: int) -> list[Signal]:
        """C lanes of an L-lane word starting at lane ``off`` (a multiple of C)."""
        C, L = self.w.cols, self.L
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
        wpr_res, wpr_part = row_words(self.hw, Buf.RESIDUAL), row_words(self.hw, Buf.MOE_ACC)
        e = side_entry_layout(self.hw)(q.payload)
        dst, slot, word, off = e.dst, e.slot, e.cword, e.coff
        off_d = Signal(8, name="side_off")
        take = adv & q.valid
        m.d.comb += q.ready.eq(adv)
        with m.If(adv):
            m.d.sync += sv.eq(q.valid)
        with m.If(take):
            m.d.sync += off_d.eq(off)
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
        res = self._lane_window(m, self.side_res.data, off_d, "side_res", self.w.res)
        part = self._lane_window(m, self.side_part.data, off_d, "side_part", self.w.moe_acc)
        p = side.payload
        m.d.comb += [p.res[c].eq(res[c]) for c in range(self.w.cols)]
        m.d.comb += [p.part[c].eq(part[c]) for c in range(self.w.cols)]
        m.d.comb += p.gw.eq(Mux(self.cmb, 0, gwp.data))

    def _writeback(self, m: Module) -> None:
        C, L = self.w.cols, self.L
        out, q = self.cu.out, self.wbq.r_stream
        m.d.comb += [out.ready.eq(q.valid), q.ready.eq(out.valid)]
        e = wb_entry_layout()(q.payload)
        valid, dst, cword, coff, ncols = e.valid, e.dst, e.cword, e.coff, e.ncols
        dst_buf = Signal(Buf)
        m.d.comb += dst_buf.eq(Mux(self.cmb, Buf.RESIDUAL, self.ins.dst))
        wpr = per_buf(m, dst_buf, {b: row_words(self.hw, b) for b in MM_DST}, 16, "wpr_dst")
        wb = self.wb
        fire = out.valid & q.valid
        m.d.comb += [wb.buf.eq(dst_buf), wb.addr.eq(dst * wpr + cword), wb.en.eq(fire & valid)]
        with m.Switch(coff):
            for o in range(0, L, C):
                with m.Case(o):
                    for c in range(C):
                        m.d.comb += [
                            wb.data[o + c].eq(out.payload.y[c]),
                            wb.mask[o + c].eq(c < ncols),
                        ]
        m.d.sync += self.wb_pending.eq(self.wb_pending + self.wb_add - fire)


__all__ = ["MatmulEngine"]
