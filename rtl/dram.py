"""The engines' side of the DRAM image: read requests and 32-bit words out of port beats.

An engine owns a :class:`DramClient` and uses it while it is the only engine reading DRAM (the
sequencer runs one instruction at a time). A request reads ``beats`` beats from beat ``addr``;
in word mode (``words`` > 0) the :class:`DramWords` unpacker skips the first ``skip`` 32-bit
lanes of the first beat and delivers the next ``words`` lanes one per cycle on ``word`` /
``word_valid`` (the consumer is always ready; trailing lanes of the last beat are dropped); in
beat mode (``words`` = 0) the beats go to the client as they are (``beat``, ``beat_valid``,
``beat_ready``). The helpers :func:`word_span` give the request of a word range.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Signal

from edgevit_hw.core.derive import HwParams

WORD = 32


class DramClient:
    def __init__(self, hw: HwParams, name: str):
        port = hw.streams.port_bits
        self.req_valid = Signal(name=f"{name}_req_valid")
        self.req_ready = Signal(name=f"{name}_req_ready")
        self.addr = Signal(32, name=f"{name}_addr")
        self.beats = Signal(32, name=f"{name}_beats")
        self.skip = Signal(8, name=f"{name}_skip")
        self.words = Signal(32, name=f"{name}_words")
        self.word = Signal(WORD, name=f"{name}_word")
        self.word_valid = Signal(name=f"{name}_word_valid")
        self.beat = Signal(port, name=f"{name}_beat")
        self.beat_valid = Signal(name=f"{name}_beat_valid")
        self.beat_ready = Signal(name=f"{name}_beat_ready")
        self.active = Signal(name=f"{name}_active")  # the client owns the DRAM port

    def request(self, m: Module, addr, beats, skip=0, words=0) -> None:
        """Comb: present a request (use inside the state that waits for ``req_ready``)."""
        m.d.comb += [
            self.req_valid.eq(1),
            self.addr.eq(addr),
            self.beats.eq(beats),
            self.skip.eq(skip),
            self.words.eq(words),
        ]


def word_span(hw: HwParams, base, first, count):
    """``(addr, beats, skip)`` of ``count`` 32-bit words from word ``first`` of the segment at
    beat ``base`` (words per beat is a power of two)."""
    wpb = hw.streams.words_per_beat
    sh = wpb.bit_length() - 1
    skip = first & (wpb - 1) if wpb > 1 else 0
    beats = (skip + count + wpb - 1) >> sh
    return base + (first >> sh), beats, skip


class DramWords(Elaboratable):
    """Muxes the clients onto the read master's ``req`` / ``data`` streams and unpacks words.

    ``req`` / ``data`` are the :class:`rtl.axi_read.AxiReadMaster` streams."""

    def __init__(self, hw: HwParams, clients: list[DramClient], req, data):
        self.hw, self.clients, self.req, self.data = hw, clients, req, data

    def elaborate(self, platform):
        m = Module()
        wpb = self.hw.streams.words_per_beat
        mode_words = Signal()
        skip, left = Signal(8), Signal(32)
        cur = Signal(self.hw.streams.port_bits)
        have = Signal()
        lane = Signal(range(max(wpb, 2)))
        word = Signal(WORD)
        with m.Switch(lane):
            for i in range(wpb):
                with m.Case(i):
                    m.d.comb += word.eq(cur[i * WORD : (i + 1) * WORD])
        for c in self.clients:
            with m.If(c.req_valid):
                m.d.comb += [
                    self.req.valid.eq(1),
                    self.req.payload.addr.eq(c.addr),
                    self.req.payload.beats.eq(c.beats),
                    c.req_ready.eq(self.req.ready),
                ]
                with m.If(self.req.ready):
                    m.d.sync += [mode_words.eq(c.words != 0), skip.eq(c.skip), left.eq(c.words)]
            m.d.comb += [c.beat.eq(self.data.payload.data), c.word.eq(word)]
        raw_ready = Signal()
        for c in self.clients:
            with m.If(c.active):
                m.d.comb += [
                    c.beat_valid.eq(self.data.valid & ~mode_words),
                    raw_ready.eq(c.beat_ready),
                ]
                m.d.comb += c.word_valid.eq(have & (skip == 0) & (left != 0))
        m.d.comb += self.data.ready.eq(Mux(mode_words, ~have, raw_ready))
        with m.If(mode_words & self.data.valid & ~have):
            m.d.sync += [cur.eq(self.data.payload.data), have.eq(1), lane.eq(0)]
        with m.If(have):
            with m.If(skip != 0):
                m.d.sync += skip.eq(skip - 1)
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == wpb - 1):
                m.d.sync += have.eq(0)
        return m
