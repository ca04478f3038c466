"""The accelerator's core: the sequencer that runs the compiled program on the units.

A run (``start``) reads the program header from beat 0 of the DRAM image and checks magic,
version and spec hash (else STATUS.bad_program and the run ends). Then, per frame: the task id
is checked (< tasks), one frame of pixels is received from ``s_axis`` (the frame check of
:func:`edgevit_hw.program.streams.receive`); a frame that fails either is dropped whole (its
STATUS bit set, FRAMES_DROPPED + 1) and the next frame follows. A good frame runs the program:
fetch an instruction (``insn_beats`` beats from beat ``(1 + pc) * insn_beats``), decode its
fields (widths and offsets from ``HwParams.isa``), start its engine, wait for it to finish.
A DRAM read answered with an error (``rd_error``) sets STATUS.axi_read_error; the instruction
in progress finishes on the data it got (its control fields were read cleanly), the reader is
flushed at the next fetch and the frame is dropped before its OUTPUT. An unknown opcode sets
STATUS.bad_program, drops the frame and ends the run. ``frames`` = 0 runs until reset. The
task id is read at a frame's first pixel: the host sets TASK before it sends the frame.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal
from edgevit_hw.rtl.actmem import ActMemories
from edgevit_hw.rtl.attention import AttentionEngine
from edgevit_hw.rtl.compute_unit import ComputeUnit
from edgevit_hw.rtl.counter import wide_counter
from edgevit_hw.rtl.dram import DramClient, DramWords
from edgevit_hw.rtl.engines import (
    AttentionFeeder,
    LayerNormEngine,
    LoadResidual,
    OutputEngine,
    RouteQueues,
)
from edgevit_hw.rtl.expert_queues import ExpertQueueBuilder
from edgevit_hw.rtl.layernorm import LayerNormUnit
from edgevit_hw.rtl.matmul_engine import MatmulEngine
from edgevit_hw.rtl.pixels import FrameReceiver, result_layout
from edgevit_hw.rtl.router import MoeRouter

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program import isa
from edgevit_hw.program.isa import Op
from edgevit_hw.program.regmap import COUNTED_UNITS, STATUS_FIELDS

STATUS_BIT = {f.name: f.bit for f in STATUS_FIELDS}
UNIT_BIT = {u: i for i, u in enumerate(COUNTED_UNITS)}


class Ins:
    """The decoded fields of the instruction register (comb, from ``HwParams.isa``)."""

    def __init__(self, hw: HwParams, prefix: str = "ins"):
        self.word = Signal(hw.isa.insn_bits, name=f"{prefix}_word")
        for f in hw.isa.fields:
            setattr(self, f.name, Signal(f.bits, name=f"{prefix}_{f.name}"))

    def decode(self, m: Module, hw: HwParams) -> None:
        for f in hw.isa.fields:
            m.d.comb += getattr(self, f.name).eq(self.word[f.offset : f.offset + f.bits])


class Core(Elaboratable):
    """Members (plain signals, wired by :class:`rtl.top.Top`): ``req`` / ``data`` /
    ``rd_error`` / ``flush`` / ``rd_idle`` (the AXI read master), the pixel and token streams
    of :class:`rtl.pixels.FrameReceiver` / :class:`OutputEngine`, and the control block's ``start``,
    ``task``, ``frames``, ``idle``, ``done``, ``status_set``, ``frame_ok``, ``frame_dropped``,
    ``frame_cycles``, ``busy``, ``stall``; ``pc`` is the instruction being run (debug)."""

    def __init__(self, hw: HwParams, req, data):
        self.hw = hw
        self.req, self.data = req, data
        self.rd_error, self.flush, self.rd_idle = Signal(), Signal(), Signal()
        self.rd_beat, self.rd_wait = Signal(), Signal()
        self.start, self.task, self.frames = Signal(), Signal(32), Signal(32)
        self.idle, self.done = Signal(), Signal()
        self.status_set = Signal(len(STATUS_FIELDS))
        self.frame_ok, self.frame_dropped = Signal(), Signal()
        self.frame_cycles = Signal(64)
        self.busy, self.stall = Signal(len(COUNTED_UNITS)), Signal(len(COUNTED_UNITS))
        self.pc = Signal(16)
        self.insn_start = Signal()
        self._combine = Signal()
        self.frame_task = Signal(32)  # TASK as it was at the frame's first pixel
        self.pix_bank = Signal()  # the pixel bank of the frame being run
        self.now = Signal(64)  # free-running cycle count
        self.fstart = Signal(64)  # the cycle of the running frame's first pixel
        self._frame_end = Signal()  # the running frame's last cycle: FRAME_CYCLES follows
        self._build()

    def _build(self) -> None:
        hw = self.hw
        self.ins = Ins(hw)
        self.nxt = Ins(hw, "nxt")  # the prefetched instruction, decoded
        self.mem = ActMemories(hw)
        self.cu, self.attn = ComputeUnit(hw), AttentionEngine(hw)
        self.ln, self.router, self.builder = (
            LayerNormUnit(hw),
            MoeRouter(hw),
            ExpertQueueBuilder(hw),
        )
        names = ("seq", "pf", "ldres", "ln", "attn", "mm")
        self.clients = {n: DramClient(hw, n) for n in names}
        c, mem, ins = self.clients, self.mem, self.ins
        self.pix = FrameReceiver(hw, mem)
        self.ldres = LoadResidual(hw, ins, c["ldres"], mem)
        self.lne = LayerNormEngine(hw, ins, c["ln"], mem, self.ln)
        self.atte = AttentionFeeder(hw, ins, c["attn"], mem, self.attn)
        self.rq = RouteQueues(hw, mem, self.router, self.builder)
        self.mm = MatmulEngine(hw, ins, self.frame_task, c["mm"], mem, self.cu, self.rq, self.nxt)
        self.mm.pix_bank = self.pix_bank
        self.out = OutputEngine(hw, ins, mem)

    def elaborate(self, platform):
        m = Module()
        sub = m.submodules
        sub.mem, sub.cu, sub.attn, sub.ln, sub.router = (
            self.mem,
            self.cu,
            self.attn,
            self.ln,
            self.router,
        )
        sub.builder, sub.pix, sub.ldres, sub.lne, sub.atte = (
            self.builder,
            self.pix,
            self.ldres,
            self.lne,
            self.atte,
        )
        sub.rq, sub.mm, sub.out = self.rq, self.mm, self.out
        sub.dram = dram = DramWords(self.hw, list(self.clients.values()), self.req, self.data)
        m.d.comb += dram.flush.eq(self.flush)
        self.ins.decode(m, self.hw)
        self._sequencer(m)
        # the matrix engine's loader may start the next instruction's weights early
        pf, nxt = self.pf, self.nxt
        m.d.comb += nxt.word.eq(pf["word"])
        nxt.decode(m, self.hw)
        m.d.comb += [self.mm.nxt_ok.eq(pf["valid"] & (pf["pc"] == self.pc + 1)),
                     self.mm.lreset.eq(self.flush | self.start)]  # fmt: skip
        self._counters(m)
        return m

    # -------------------------------------------------------------------- sequencer ----

    def _prefetch(self, m: Module) -> dict:
        """Fetches instruction pc + 1 while instruction pc runs (``go`` at its dispatch); FETCH
        takes it (``take``) when it is the one wanted. A flush forgets it."""
        hw, d = self.hw, self.clients["pf"]
        port, nb = hw.streams.port_bits, hw.isa.insn_beats
        pf = {n: Signal(name=f"pf_{n}") for n in ("go", "take", "valid", "busy")}
        pf["pc"], pf["word"] = Signal(16, name="pf_pc"), Signal(hw.isa.insn_bits, name="pf_word")
        left = Signal(range(nb + 1), name="pf_left")
        with m.FSM(name="prefetch"):
            with m.State("IDLE"):
                with m.If(pf["go"]):
                    m.d.sync += [pf["pc"].eq(self.pc + 1), pf["valid"].eq(0), left.eq(nb)]
                    m.next = "REQ"
            with m.State("REQ"):
                m.d.comb += pf["busy"].eq(1)
                d.request(m, (1 + pf["pc"]) * nb, nb)
                with m.If(self.flush):
                    m.next = "IDLE"
                with m.Elif(d.req_ready):
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [pf["busy"].eq(1), d.beat_ready.eq(1)]
                with m.If(d.beat_valid):
                    w = pf["word"]
                    m.d.sync += [w.eq((w >> port) | (d.beat << ((nb - 1) * port))),
                                 left.eq(left - 1)]  # fmt: skip
                    with m.If(left == 1):
                        m.d.sync += pf["valid"].eq(1)
                        m.next = "IDLE"
                with m.If(self.flush):
                    m.next = "IDLE"
        with m.If(pf["take"] | self.flush | self.start):
            m.d.sync += pf["valid"].eq(0)
        return pf

    def _sequencer(self, m: Module) -> None:
        hw = self.hw
        self.pf = self._prefetch(m)
        self.count = Signal(32)
        self.nframe = Signal(32)
        self.rd_err = Signal()
        self.run_frame = Signal()
        with m.If(self.rd_error):
            m.d.sync += self.rd_err.eq(1)
            m.d.comb += self.status_set[STATUS_BIT["axi_read_error"]].eq(1)
        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start):
                    m.d.sync += [self.nframe.eq(0), self.rd_err.eq(0)]
                    m.next = "HDR"
            self._fetch_states(m, "HDR", 0, "HDR_CHECK", "HDR_FLUSH")
            with m.State("HDR_CHECK"):
                self._header_check(m)
            with m.State("HDR_FLUSH"):
                self._flush(m, "HDR_DONE")
            with m.State("HDR_DONE"):
                m.d.comb += [self.status_set[STATUS_BIT["bad_program"]].eq(1), self.done.eq(1)]
                m.next = "IDLE"
            self._frame_states(m)
            self._fetch_states(
                m, "FETCH_REQ", (1 + self.pc) * hw.isa.insn_beats, "DISPATCH", "DROP_FLUSH"
            )
            with m.State("DISPATCH"):
                self._dispatch(m)
            with m.State("EXEC"):
                m.d.comb += self.run_frame.eq(1)
                with m.If(self._engine_done()):
                    m.d.sync += self.pc.eq(self.pc + 1)
                    m.next = "FETCH"

    def _fetch_states(self, m: Module, name: str, addr, then: str, flush: str) -> None:
        """``name``: request one instruction slot at beat ``addr``; ``name``_WAIT shifts its
        beats into the instruction register (first beat lowest)."""
        hw, d = self.hw, self.clients["seq"]
        port, nb = hw.streams.port_bits, hw.isa.insn_beats
        left = Signal(range(nb + 1), name=f"{name}_left")
        with m.State(name):
            d.request(m, addr, nb)
            m.d.sync += left.eq(nb)
            with m.If(d.req_ready):
                m.next = f"{name}_WAIT"
        with m.State(f"{name}_WAIT"):
            m.d.comb += d.beat_ready.eq(1)
            with m.If(d.beat_valid):
                word = self.ins.word
                m.d.sync += [
                    word.eq((word >> port) | (d.beat << ((nb - 1) * port))),
                    left.eq(left - 1),
                ]
                with m.If(left == 1):
                    m.next = then
            with m.If(self.rd_err | self.rd_error):
                m.next = flush

    def _header_check(self, m: Module) -> None:
        hw, w = self.hw, self.ins.word
        head = {k: w[32 * i : 32 * i + 32] for i, k in enumerate(isa.HEADER)}
        ok = (head["magic"] == isa.MAGIC) & (head["version"] == isa.VERSION)
        ok &= head["hash32"] == hw.hash32
        m.d.sync += self.count.eq(head["count"])
        with m.If(ok & ~self.rd_err):
            m.next = "FRAME"
        with m.Else():
            m.next = "HDR_DONE"

    def _flush(self, m: Module, then: str) -> None:
        flushed = Signal(name=f"flushed_{then.lower()}")
        m.d.comb += self.flush.eq(~flushed)
        m.d.sync += flushed.eq(1)
        with m.If(flushed & self.rd_idle):
            m.d.sync += flushed.eq(0)
            m.next = then

    def _frame_states(self, m: Module) -> None:
        res = self.pix.result
        entry = result_layout()(res.payload)
        with m.State("FRAME"):
            m.d.sync += self.rd_err.eq(0)
            with m.If((self.frames != 0) & (self.nframe == self.frames)):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
            with m.Elif(res.valid):
                m.d.comb += res.ready.eq(1)
                m.d.sync += [self.nframe.eq(self.nframe + 1), self.frame_task.eq(entry.task),
                             self.pix_bank.eq(entry.bank), self.fstart.eq(entry.start)]  # fmt: skip
                st = self.status_set
                m.d.comb += [
                    st[STATUS_BIT["short_frame"]].eq(entry.short),
                    st[STATUS_BIT["long_frame"]].eq(entry.long),
                    st[STATUS_BIT["bad_task"]].eq(entry.bad & ~entry.short & ~entry.long),
                ]
                with m.If(entry.short | entry.long | entry.bad):
                    m.d.comb += self.frame_dropped.eq(1)
                with m.Else():
                    m.d.sync += self.pc.eq(0)
                    m.next = "FETCH"
        with m.State("FETCH"):
            m.d.comb += self.run_frame.eq(1)
            pf = self.pf
            with m.If(self.rd_err):
                m.next = "DROP_FLUSH"
            with m.Elif(self.pc == self.count):
                m.d.comb += [self.frame_ok.eq(1), self.pix.release.eq(1)]
                m.d.comb += self._frame_end.eq(1)
                m.next = "FRAME"
            with m.Elif(pf["valid"] & (pf["pc"] == self.pc)):
                m.d.sync += self.ins.word.eq(pf["word"])
                m.d.comb += pf["take"].eq(1)
                m.next = "DISPATCH"
            with m.Elif(~pf["busy"]):
                m.next = "FETCH_REQ"
        with m.State("DROP_FLUSH"):
            self._flush(m, "DROP")
        with m.State("DROP"):
            m.d.comb += [self.frame_dropped.eq(1), self.pix.release.eq(1)]
            m.next = "FRAME"
        with m.State("BAD_OP"):
            m.d.comb += [
                self.frame_dropped.eq(1),
                self.done.eq(1),
                self.status_set[STATUS_BIT["bad_program"]].eq(1),
                self.pix.release.eq(1),
            ]
            m.next = "IDLE"

    def _starts(self):
        return {
            Op.LOAD_RES: [self.ldres.start],
            Op.MATMUL: [self.mm.start],
            Op.LAYERNORM: [self.lne.start],
            Op.ATTENTION: [self.atte.start],
            Op.ROUTE: [self.rq.start_route],
            Op.QUEUES: [self.rq.start_queues],
            Op.MOE_COMBINE: [self.mm.start],
            Op.OUTPUT: [self.out.start],
        }

    def _dispatch(self, m: Module) -> None:
        m.d.comb += [self.run_frame.eq(1), self.insn_start.eq(1)]
        with m.Switch(self.ins.op):
            for op, sigs in self._starts().items():
                with m.Case(op):
                    m.d.comb += [s.eq(1) for s in sigs]
                    m.d.comb += self.pf["go"].eq(self.pc + 1 < self.count)
                    m.next = "EXEC"
            with m.Default():
                m.next = "BAD_OP"
        with m.If(self.ins.op == Op.MOE_COMBINE):
            m.d.sync += self._combine.eq(1)
        with m.Else():
            m.d.sync += self._combine.eq(0)

    def _engine_done(self):
        return (
            self.ldres.done
            | self.mm.done
            | self.lne.done
            | self.atte.done
            | self.rq.done
            | self.out.done
        )

    # --------------------------------------------------------------------- counters ----

    def _counters(self, m: Module) -> None:
        now = self.insn_start & (self.ins.op == Op.MOE_COMBINE)
        m.d.comb += self.mm.combine.eq(self._combine | now)
        # a new run (the image may differ) or a read error: the attention word is read again
        m.d.comb += self.atte.invalidate.eq(self.start | self.rd_error)
        m.d.comb += self.now.eq(wide_counter(m, 64, Const(1, 1), Const(0, 1), "now"))
        self._frame_cycles(m)
        pix, rx = self.pix, Signal(32)
        with m.If(self.start):
            m.d.sync += rx.eq(0)
        with m.Elif(pix.received):
            m.d.sync += rx.eq(rx + 1)
        m.d.comb += [pix.task.eq(self.task), pix.now.eq(self.now), pix.enable.eq(~self.idle),
                     pix.want.eq((self.frames == 0) | (rx < self.frames)),
                     pix.release_bank.eq(self.pix_bank)]  # fmt: skip
        ops = self.cu.ops
        busy = {
            "compute": ops.valid & ops.ready,
            "attention": self.atte_busy(),
            "layernorm": self.ln.inp.valid | self.ln.out.valid,
            "router": self.router.inp.valid | self.router.out.valid,
            "queues": self.builder.out.valid,
            "weight_port": self.rd_beat,
        }
        stall = {
            "compute": self.mm.busy & ~(ops.valid & ops.ready),
            "attention": 0,
            "layernorm": self.ln.inp.valid & ~self.ln.inp.ready,
            "router": self.router.inp.valid & ~self.router.inp.ready,
            "queues": 0,
            "weight_port": self.rd_wait,
        }
        for u, i in UNIT_BIT.items():
            m.d.comb += [self.busy[i].eq(busy[u]), self.stall[i].eq(stall[u])]

    def _frame_cycles(self, m: Module) -> None:
        """``frame_cycles = now - fstart`` of the frame's last cycle, in two 32-bit steps (the
        halves' differences, then the high half's borrow): set two cycles after that cycle."""
        lo, hi, due = Signal(33, name="fc_lo"), Signal(32, name="fc_hi"), Signal(name="fc_due")
        m.d.sync += due.eq(self._frame_end)
        with m.If(self._frame_end):
            m.d.sync += [lo.eq(self.now[:32] - self.fstart[:32]),
                         hi.eq(self.now[32:] - self.fstart[32:])]  # fmt: skip
        with m.If(due):
            m.d.sync += self.frame_cycles.eq(Cat(lo[:32], hi - lo[32]))

    def atte_busy(self):
        return self.attn.q.valid | self.attn.kv.valid | self.attn.out.valid
