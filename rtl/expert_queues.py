"""Per-expert token queues (patch reordering), as golden.expert_queues orders them.

Input: the router's beats (one per token, tokens in order 0, 1, ..., ``last`` on the frame's
final token; only ``idx`` is used). For each token the k (token, slot) pairs are appended to
the queue of expert ``idx[slot]`` (k cycles, one write per cycle into a memory of
``experts * tokens`` entries -- the derived ``expert_queues`` buffer, expert e's queue at
``e * tokens``). After ``last`` the queues are emitted: expert 0's entries in token order,
then expert 1's, ...; empty experts emit nothing; ``last`` marks the frame's final entry
(there are tokens * k of them). Beats after the ``tokens``-th token of a frame set the sticky
``err`` bit and are dropped, so a malformed frame never overflows a queue.

Members: ``inp`` (sink, :func:`rtl.layouts.router_out_layout`), ``out`` (source,
:func:`rtl.layouts.queue_out_layout`), ``err``. Throughput: k + 1 cycles per input token,
2 cycles per emitted entry plus one per expert.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.layouts import queue_out_layout, router_out_layout

from edgevit_hw.core.derive import HwParams


class ExpertQueueBuilder(wiring.Component):
    def __init__(self, hw: HwParams):
        self._hw = hw
        super().__init__(
            {
                "inp": In(stream.Signature(router_out_layout(hw))),
                "out": Out(stream.Signature(queue_out_layout(hw))),
                "err": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        a = self._hw.arith
        E, K, N = a.experts, a.top_k, a.tokens
        toks, slots = self._hw.buffers.queue_tokens, self._hw.buffers.queue_slots
        entry = StructLayout({"token": unsigned(toks.bits), "slot": unsigned(slots.bits)})
        m.submodules.mem = mem = Memory(shape=entry, depth=toks.words, init=[])
        wr, rd = mem.write_port(), mem.read_port(domain="sync")
        counts = Array(Signal(range(N + 1), name=f"count{e}") for e in range(E))
        idx = Array(Signal(unsigned(a.expert_index_bits), name=f"qidx{r}") for r in range(K))
        tok = Signal(range(N + 1))
        slot = Signal(range(K + 1))
        last = Signal()
        e = Signal(range(E + 1))
        j = Signal(range(N + 1))
        sent = Signal(range(N * K + 1))
        m.d.comb += rd.en.eq(0)  # a read port's enable defaults to 1: read only when asked
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.inp.ready.eq(1)
                with m.If(self.inp.valid):
                    m.d.sync += [idx[r].eq(self.inp.payload.idx[r]) for r in range(K)]
                    m.d.sync += [last.eq(self.inp.payload.last), slot.eq(0)]
                    with m.If(tok == N):
                        m.d.sync += self.err.eq(1)
                        with m.If(self.inp.payload.last):
                            m.d.sync += [e.eq(0), j.eq(0), sent.eq(0)]
                            m.next = "SCAN"
                    with m.Else():
                        m.next = "WRITE"
            with m.State("WRITE"):
                ex = idx[slot]
                m.d.comb += [
                    wr.en.eq(1),
                    wr.addr.eq(ex * N + counts[ex]),
                    wr.data.token.eq(tok),
                    wr.data.slot.eq(slot),
                ]
                m.d.sync += [counts[ex].eq(counts[ex] + 1), slot.eq(slot + 1)]
                with m.If(slot == K - 1):
                    m.d.sync += tok.eq(tok + 1)
                    m.next = "IN"
                    with m.If(last):
                        m.d.sync += [e.eq(0), j.eq(0), sent.eq(0)]
                        m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(e == E):
                    m.d.sync += [tok.eq(0)] + [counts[x].eq(0) for x in range(E)]
                    m.next = "IN"
                with m.Elif(j < counts[e]):
                    m.d.comb += [rd.en.eq(1), rd.addr.eq(e * N + j)]
                    m.next = "DATA"
                with m.Else():
                    m.d.sync += [e.eq(e + 1), j.eq(0)]
            with m.State("DATA"):
                m.d.comb += [
                    self.out.valid.eq(1),
                    self.out.payload.expert.eq(e),
                    self.out.payload.token.eq(rd.data.token),
                    self.out.payload.slot.eq(rd.data.slot),
                    self.out.payload.last.eq(sent == tok * K - 1),
                ]
                with m.If(self.out.ready):
                    m.d.sync += [j.eq(j + 1), sent.eq(sent + 1)]
                    m.next = "SCAN"
        return m
