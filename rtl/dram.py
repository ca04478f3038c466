"""The engines' side of the DRAM image: read requests and 32-bit words out of port beats.

An engine owns a :class:`DramClient`; :class:`DramWords` queues the clients' requests and routes
each request's beats back to its client. A request reads ``beats`` beats from beat ``addr``;
in word mode (``words`` > 0) the :class:`DramWords` unpacker skips the first ``skip`` 32-bit
lanes of the first beat and delivers the next ``words`` lanes one per cycle on ``word`` /
``word_valid`` (the consumer is always ready; trailing lanes of the last beat are dropped); in
beat mode (``words`` = 0) the beats go to the client as they are (``beat``, ``beat_valid``,
``beat_ready``). The helpers :func:`word_span` give the request of a word range.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Mux, ResetInserter, Signal
from amaranth.lib.data import StructLayout
from amaranth.lib.fifo import SyncFIFOBuffered
from edgevit_hw.rtl.axi_read import read_data_layout
from edgevit_hw.rtl.skid import ReadyCut, SkidBuffer

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.image import RQ_SHIFT

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
        # a client that may have answers arriving while it cannot take them drives this low
        self.word_ready = Signal(init=1, name=f"{name}_word_ready")
        self.beat = Signal(port, name=f"{name}_beat")
        self.beat_valid = Signal(name=f"{name}_beat_valid")
        self.beat_ready = Signal(name=f"{name}_beat_ready")

    def request(self, m: Module, addr, beats, skip=0, words=0) -> None:
        """Comb: present a request (use inside the state that waits for ``req_ready``)."""
        m.d.comb += [
            self.req_valid.eq(1),
            self.addr.eq(addr),
            self.beats.eq(beats),
            self.skip.eq(skip),
            self.words.eq(words),
        ]


def requant_fields(word):
    """``(m, s)`` of a requantization word ``m | s << RQ_SHIFT`` (program.image)."""
    return word[:RQ_SHIFT], word[RQ_SHIFT : RQ_SHIFT + 8]


def word_span(hw: HwParams, base, first, count):
    """``(addr, beats, skip)`` of ``count`` 32-bit words from word ``first`` of the segment at
    beat ``base`` (words per beat is a power of two)."""
    wpb = hw.streams.words_per_beat
    sh = wpb.bit_length() - 1
    skip = first & (wpb - 1) if wpb > 1 else 0
    beats = (skip + count + wpb - 1) >> sh
    return base + (first >> sh), beats, skip


class DramWords(Elaboratable):
    """Puts the clients' requests on the read master's ``req`` stream (lowest index first,
    through a skid buffer: one cycle, and ``req_ready`` is a register's) and
    routes its ``data`` back: each accepted request leaves a tag (client, word mode, skip,
    words) in an in-order queue, and the beats of the request at its head go to that client
    (the read master answers requests in order; ``last`` ends each one). The beats pass a
    :class:`rtl.skid.ReadyCut` (no added latency): the read master's ``data.ready`` is a
    register, so no client's ready logic reaches its FIFO and credit counters. Several clients may
    have requests in flight (the sequencer prefetches the next instruction while an engine
    reads its operands). ``flush`` drops every tag (the read master discards the beats).

    ``req`` / ``data`` are the :class:`rtl.axi_read.AxiReadMaster` streams."""

    TAGS = 8

    def __init__(self, hw: HwParams, clients: list[DramClient], req, data):
        self.hw, self.clients, self.req, self.data = hw, clients, req, data
        self.flush = Signal()

    def elaborate(self, platform):
        m = Module()
        n = len(self.clients)
        idb = max(1, (n - 1).bit_length())
        fifo = SyncFIFOBuffered(width=idb + 1 + 8 + 32, depth=self.TAGS)
        m.submodules.tags = tags = ResetInserter(self.flush)(fifo)
        m.submodules.cut = cut = ResetInserter(self.flush)(ReadyCut(read_data_layout(self.hw)))
        m.d.comb += [
            cut.i.valid.eq(self.data.valid),
            cut.i.payload.eq(self.data.payload),
            self.data.ready.eq(cut.i.ready),
        ]
        self._requests(m, tags, idb)
        self._route(m, tags, idb, cut.o)
        return m

    def _requests(self, m: Module, tags, idb: int) -> None:
        """The first client with a request (lowest index) enters a skid buffer (registered
        ``ready`` and payload, so no client's request logic reaches the read master or the
        tag queue); from there it goes to the read master and leaves its tag."""
        lay = StructLayout({"who": idb, "addr": 32, "beats": 32, "wmode": 1, "skip": 8,
                            "words": 32})  # fmt: skip
        m.submodules.skid = skid = ResetInserter(self.flush)(SkidBuffer(lay))
        first = True
        for i, c in enumerate(self.clients):
            with m.If(c.req_valid) if first else m.Elif(c.req_valid):
                p = skid.i.payload
                m.d.comb += [
                    skid.i.valid.eq(~self.flush),
                    c.req_ready.eq(skid.i.ready & ~self.flush),
                    p.who.eq(i),
                    p.addr.eq(c.addr),
                    p.beats.eq(c.beats),
                    p.wmode.eq(c.words != 0),
                    p.skip.eq(c.skip),
                    p.words.eq(c.words),
                ]
            first = False
        q = skid.o.payload
        go = skid.o.valid & tags.w_stream.ready
        m.d.comb += [
            self.req.valid.eq(go),
            self.req.payload.addr.eq(q.addr),
            self.req.payload.beats.eq(q.beats),
            skid.o.ready.eq(self.req.ready & tags.w_stream.ready),
            tags.w_stream.valid.eq(go & self.req.ready),
            tags.w_stream.payload.eq(Cat(q.who, q.wmode, q.skip, q.words)),
        ]

    def _route(self, m: Module, tags, idb: int, data) -> None:
        wpb = self.hw.streams.words_per_beat
        head = tags.r_stream
        # the head tag is copied into registers and popped at once (the queue's read side
        # sees only ``loaded``, a register); ``loaded`` clears when its request ends
        who, wmode = Signal(idb, name="tag_who"), Signal(name="tag_wmode")
        loaded, skip, left = Signal(), Signal(8), Signal(32)
        spent = Signal(init=1, name="left_zero")  # left == 0, registered (off the ready path)
        cur, have, cur_last = Signal(self.hw.streams.port_bits), Signal(), Signal()
        lane = Signal(range(max(wpb, 2)))
        word = Signal(WORD)
        with m.Switch(lane):
            for i in range(wpb):
                with m.Case(i):
                    m.d.comb += word.eq(cur[i * WORD : (i + 1) * WORD])
        m.d.comb += head.ready.eq(~loaded)
        with m.If(head.valid & ~loaded):
            m.d.sync += [loaded.eq(1), who.eq(head.payload[:idb]), wmode.eq(head.payload[idb]),
                         skip.eq(head.payload[idb + 1 : idb + 9]),
                         left.eq(head.payload[idb + 9 :]),
                         spent.eq(head.payload[idb + 9 :] == 0)]  # fmt: skip
        raw_ready, word_ready = Signal(), Signal()
        for i, c in enumerate(self.clients):
            mine = loaded & (who == i)
            m.d.comb += [c.beat.eq(data.payload.data), c.word.eq(word)]
            m.d.comb += c.beat_valid.eq(mine & ~wmode & data.valid)
            m.d.comb += c.word_valid.eq(mine & wmode & have & (skip == 0) & ~spent)
            with m.If(mine):
                m.d.comb += [raw_ready.eq(c.beat_ready), word_ready.eq(c.word_ready)]
        # a lane moves on when its word is taken, skipped or past the request's words
        adv = Signal()
        m.d.comb += adv.eq(have & ((skip != 0) | spent | word_ready))
        # word mode: the next beat of the same request loads in the cycle of the last word
        free = ~have | ((lane == wpb - 1) & adv & ~cur_last)
        ready = loaded & Mux(wmode, free, raw_ready)
        take = ready & data.valid
        m.d.comb += data.ready.eq(ready)
        pop = Signal()
        with m.If(take & ~wmode & data.payload.last):
            m.d.comb += pop.eq(1)
        with m.If(adv):
            with m.If(skip != 0):
                m.d.sync += skip.eq(skip - 1)
            with m.Elif(~spent):
                m.d.sync += [left.eq(left - 1), spent.eq(left == 1)]
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == wpb - 1):
                m.d.sync += have.eq(0)
                m.d.comb += pop.eq(cur_last)
        with m.If(take & wmode):
            m.d.sync += [cur.eq(data.payload.data), have.eq(1), lane.eq(0),
                         cur_last.eq(data.payload.last)]  # fmt: skip
        with m.If(pop):
            m.d.sync += loaded.eq(0)
        with m.If(self.flush):
            m.d.sync += [loaded.eq(0), have.eq(0)]
