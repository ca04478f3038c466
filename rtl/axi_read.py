"""AXI4 read master: read requests counted in beats of the weight port become INCR bursts.

Members (flat names; the top forwards them as its Verilog ports):

- ``req`` (sink, :func:`read_req_layout`): read ``beats`` beats starting at beat index
  ``addr`` (byte address ``base + addr * beat_bytes``). ``beats == 0`` is accepted and ignored.
- ``data`` (source, :func:`read_data_layout`): the beats of the requests in request order;
  ``last`` on the final beat of each request.
- ``base`` (in, 64): byte address of beat 0, sampled when a request is accepted. Its low
  ``log2(beat_bytes)`` bits are ignored (bursts are always beat-aligned).
- ``error`` (out): a one-cycle pulse for each received beat with ``RRESP != OKAY``, one cycle
  after the beat arrives from the bus (so never after the beat appears on ``data``). The beat is
  still delivered. Beats discarded by ``flush`` never pulse.
- ``flush`` (in): a one-cycle pulse abandoning every accepted request and every beat in flight:
  no further burst is issued for them, a request offered in the flush cycle is not accepted, the
  buffered beats are dropped (a beat taken from ``data`` in the flush cycle itself counts as
  delivered), beats still due on the bus are accepted and discarded. An address beat already
  presented (``ARVALID``) stays until accepted (AXI forbids retracting it); its data is
  discarded too. New requests are accepted from the next cycle on.
- ``idle`` (out): no accepted request left to issue, no beat in flight on the bus (discards
  included) and nothing buffered.
- ``waiting`` (out): a request is pending (accepted, beats still to be delivered),
  ``data.ready`` is high and no beat is offered: a stall cycle of the weight port.
- ``beat`` (out): a beat moves on ``data`` this cycle.
- ``m_axi_*``: the AXI4 read address and data channels. ``ARID`` is a constant 0 (``RID`` is
  ignored): one ID keeps the responses in order. ``ARSIZE`` = log2(beat_bytes), ``ARBURST`` =
  INCR, ``ARCACHE`` = 0b0011, ``ARPROT`` = 0. ``RREADY`` is constantly 1.

Burst policy: a burst has ``min(beats left, burst_beats, beats to the next 4 KB boundary)``
beats, ``burst_beats = min(256, depth // 4, 4096 / beat_bytes)`` (128 for the default depth of
:data:`DEFAULT_DEPTH` beats), so four maximal bursts fit in the data FIFO and are outstanding
together (up to :data:`BURST_SLOTS` shorter ones). Credits: a burst issues only when the FIFO
has room for a maximal burst beyond every beat in flight or buffered (so for all of its own
beats); ``RREADY`` therefore stays high and this master never stalls the bus. A request's
first burst follows the previous one's last burst without a gap (a stream of 1-beat requests
runs at one per cycle); its further bursts issue at most every other cycle (a cycle
recomputes the next burst's length), which costs nothing once a burst is 2 beats or longer;
the consumer sees one beat per cycle when the bus delivers one per cycle.

Pipeline (for logic depth; see benchmarks/synth_rtl.py): a request's first stage forms its
beat address ``base + addr`` (a 32-bit low half and its carry), the second (the splitter)
holds the next burst's length and final flag in registers (compares of a few low bits, never
a 32- or 64-bit carry chain behind another). Latency: ARVALID rises 3 cycles after the cycle a
request is accepted; a beat received in cycle t is offered on ``data`` in cycle t + 2 at the
earliest. Reset (``rst``, synchronous): no request, nothing in flight, ARVALID low.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import C, Cat, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from edgevit_hw.core.derive import HwParams

MAX_BURST = 256  # AXI4 INCR bursts: at most 256 beats
BOUNDARY = 4096  # AXI4: a burst never crosses a 4 KB boundary
DEFAULT_DEPTH = 512  # data FIFO beats: 4 bursts of 128 beats (1 BRAM36 at 64 bits)
BURST_SLOTS = 16  # bursts outstanding at most (one flag each: does it end its request?)
INCR, CACHE = 0b01, 0b0011  # ARBURST INCR; ARCACHE normal non-cacheable bufferable


def read_req_layout() -> StructLayout:
    """A read request: ``beats`` (>= 1) beats from beat index ``addr``."""
    return StructLayout({"addr": unsigned(32), "beats": unsigned(32)})


def read_data_layout(hw: HwParams) -> StructLayout:
    """One beat of ``port_bits``; ``last`` on the final beat of its request."""
    return StructLayout({"data": unsigned(hw.streams.port_bits), "last": 1})


def burst_beats(hw: HwParams, depth: int = DEFAULT_DEPTH) -> int:
    """Longest burst: ``min(256, depth // 4, 4096 / beat_bytes)`` beats."""
    return min(MAX_BURST, depth // 4, BOUNDARY // hw.streams.beat_bytes)


def _axi_members(bits: int) -> dict:
    return {
        "m_axi_arid": Out(1),
        "m_axi_araddr": Out(64),
        "m_axi_arlen": Out(8),
        "m_axi_arsize": Out(3),
        "m_axi_arburst": Out(2),
        "m_axi_arcache": Out(4),
        "m_axi_arprot": Out(3),
        "m_axi_arvalid": Out(1),
        "m_axi_arready": In(1),
        "m_axi_rid": In(1),
        "m_axi_rdata": In(bits),
        "m_axi_rresp": In(2),
        "m_axi_rlast": In(1),
        "m_axi_rvalid": In(1),
        "m_axi_rready": Out(1),
    }


class AxiReadMaster(wiring.Component):
    """See the module docstring. ``depth``: data FIFO beats (>= 4)."""

    def __init__(self, hw: HwParams, depth: int = DEFAULT_DEPTH):
        if depth < 4:
            raise ValueError(f"AxiReadMaster depth must be at least 4 beats, not {depth}")
        self._bits = hw.streams.port_bits
        self._shift = exact_log2(hw.streams.beat_bytes)
        self._depth = depth
        self._burst = burst_beats(hw, depth)
        super().__init__(
            {
                "req": In(stream.Signature(read_req_layout())),
                "data": Out(stream.Signature(read_data_layout(hw))),
                "base": In(64),
                "error": Out(1),
                "flush": In(1),
                "idle": Out(1),
                "waiting": Out(1),
                "beat": Out(1),
                **_axi_members(self._bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s = self._state()
        self._fifos(m, s)
        self._prepare(m, s)
        self._split(m, s)
        self._issue(m, s)
        self._receive(m, s)
        self._account(m, s)
        self._outputs(m, s)
        return m

    def _state(self) -> SimpleNamespace:
        """The registers and per-cycle strobes shared by the pieces below. Beat addresses
        (byte address >> shift) are kept as a low half ``lo`` (32 bits), a high half ``hi`` and
        a carry ``c`` not yet added to it: the address is ``(hi + c) << 32 | lo``."""
        beats = range(self._depth + 1)
        hbits = 64 - self._shift - 32
        return SimpleNamespace(
            # P: the next request, its address formed (base + addr) but not yet its first burst
            p_valid=Signal(),
            p_lo=Signal(32),
            p_c=Signal(),
            p_hi=Signal(hbits),
            p_left=Signal(32),
            p_page=Signal(self._page_bits() + 1),  # beats from p_lo to the 4 KB boundary
            # S: the request being split into bursts and its next burst (length, final)
            cmd_valid=Signal(),
            cmd_lo=Signal(32),
            cmd_c=Signal(),
            cmd_hi=Signal(hbits),
            cmd_left=Signal(32),  # its beats not yet issued
            cmd_page=Signal(self._page_bits() + 1),  # beats from cmd_lo to the boundary
            settle=Signal(),  # length / final are being recomputed after a burst
            length=Signal(range(self._burst + 1)),  # next burst's beats
            final=Signal(),  # the next burst ends its request
            ar_valid=Signal(),
            ar_addr=Signal(64 - self._shift),
            ar_len=Signal(8),
            credits=Signal(beats, init=self._depth),  # depth - in flight - buffered
            inflight=Signal(beats),  # beats issued (address beat loaded) and not received
            discard=Signal(beats),  # of those, the ones abandoned by a flush
            load=Signal(),  # S takes P's request this cycle
            issue=Signal(),
            rbeat=Signal(),
            drop=Signal(),
            pop=Signal(),
        )

    def _fifos(self, m: Module, s: SimpleNamespace) -> None:
        """Data FIFO (BRAM) and the per-burst 'ends its request' flags, both reset by flush."""
        s.fifo = SyncFIFOBuffered(width=self._bits + 1, depth=self._depth)
        s.ends = SyncFIFO(width=1, depth=BURST_SLOTS)
        m.submodules.fifo = ResetInserter(self.flush)(s.fifo)
        m.submodules.ends = ResetInserter(self.flush)(s.ends)

    def _prepare(self, m: Module, s: SimpleNamespace) -> None:
        """P takes a request when it is empty or S takes its request, and forms the beat
        address ``base + addr`` (its low half and carry): ``req.payload`` meets one 32-bit
        adder before a register (the caller registers it, e.g. :class:`rtl.dram.DramWords`)."""
        req, base = self.req.payload, self.base[self._shift :]
        pb = self._page_bits()
        m.d.comb += self.req.ready.eq((~s.p_valid | s.load) & ~self.flush)
        with m.If(self.flush):
            m.d.sync += s.p_valid.eq(0)
        with m.Elif(self.req.valid & self.req.ready):
            m.d.sync += [
                s.p_valid.eq(req.beats != 0),  # an empty request ends here
                Cat(s.p_lo, s.p_c).eq(base[:32] + req.addr),
                s.p_page.eq((1 << pb) - (base + req.addr)[:pb]),
                s.p_hi.eq(base[32:]),
                s.p_left.eq(req.beats),
            ]
        with m.Elif(s.load):
            m.d.sync += s.p_valid.eq(0)

    def _page_bits(self) -> int:
        return exact_log2(BOUNDARY >> self._shift)  # log2(beats per 4 KB)

    def _next_burst(self, to_page, left) -> tuple:
        """``(length, final)`` of the burst with ``to_page`` beats to the 4 KB boundary (a
        register, kept beside the address) and ``left`` beats to go: ``min(left,
        burst_beats, to_page)``, final when that is ``left``. Compares of a few bits:
        ``left`` > the page is a test of its high bits."""
        pb = self._page_bits()
        cap = Mux(to_page < self._burst, to_page, self._burst)
        low = left[: pb + 1]
        fits = ~left[pb + 1 :].any() & (low <= to_page) & (low <= self._burst)
        return Mux(fits, low, cap), fits

    def _split(self, m: Module, s: SimpleNamespace) -> None:
        """S takes P's request when it is free or issues its final burst (so requests follow
        each other without a gap); after a burst that does not end its request, one cycle
        (``settle``) recomputes the next burst from the advanced address and count."""
        m.d.comb += s.load.eq(s.p_valid & (~s.cmd_valid | (s.issue & s.final)) & ~self.flush)
        full = 1 << self._page_bits()  # beats of a whole 4 KB page
        p_len, p_final = self._next_burst(s.p_page, s.p_left)
        c_len, c_final = self._next_burst(s.cmd_page, s.cmd_left)
        with m.If(self.flush):
            m.d.sync += s.cmd_valid.eq(0)
        with m.Elif(s.load):
            m.d.sync += [
                s.cmd_valid.eq(1),
                s.cmd_lo.eq(s.p_lo),
                s.cmd_c.eq(s.p_c),
                s.cmd_hi.eq(s.p_hi),
                s.cmd_left.eq(s.p_left),
                s.cmd_page.eq(s.p_page),
                s.settle.eq(0),
                s.length.eq(p_len),
                s.final.eq(p_final),
            ]
        with m.Elif(s.issue):
            m.d.sync += s.cmd_valid.eq(~s.final)
            m.d.sync += [
                Cat(s.cmd_lo, s.cmd_c).eq(s.cmd_lo + s.length),
                s.cmd_hi.eq(s.cmd_hi + s.cmd_c),
                s.cmd_left.eq(s.cmd_left - s.length),
                # a burst that reaches the boundary starts the next page
                s.cmd_page.eq(Mux(s.cmd_page == s.length, full, s.cmd_page - s.length)),
                s.settle.eq(1),
            ]
        with m.Elif(s.settle):
            m.d.sync += [s.settle.eq(0), s.length.eq(c_len), s.final.eq(c_final)]

    def _issue(self, m: Module, s: SimpleNamespace) -> None:
        """The AR register. A burst issues when a maximal one would fit (credits >=
        burst_beats): a compare with a constant, so ``length`` stays off the issue path."""
        free = ~s.ar_valid | self.m_axi_arready
        room = (s.credits >= self._burst) & s.ends.w_rdy
        m.d.comb += s.issue.eq(s.cmd_valid & ~s.settle & free & room & ~self.flush)
        m.d.comb += [s.ends.w_en.eq(s.issue), s.ends.w_data.eq(s.final)]
        with m.If(s.issue):
            m.d.sync += [
                s.ar_valid.eq(1),
                s.ar_addr.eq(Cat(s.cmd_lo, s.cmd_hi + s.cmd_c)),
                s.ar_len.eq(s.length - 1),
            ]
        with m.Elif(self.m_axi_arready):
            m.d.sync += s.ar_valid.eq(0)

    def _receive(self, m: Module, s: SimpleNamespace) -> None:
        """R beats into the data FIFO (or discarded after a flush); error pulses."""
        keep = Signal()
        m.d.comb += [
            s.rbeat.eq(self.m_axi_rvalid),
            s.drop.eq(s.rbeat & (s.discard != 0)),
            keep.eq(s.rbeat & (s.discard == 0) & ~self.flush),
            s.fifo.w_en.eq(keep),
            s.fifo.w_data.eq(Cat(self.m_axi_rdata, self.m_axi_rlast & s.ends.r_data)),
            s.ends.r_en.eq(keep & self.m_axi_rlast),
        ]
        m.d.sync += self.error.eq(keep & (self.m_axi_rresp != 0))

    def _account(self, m: Module, s: SimpleNamespace) -> None:
        """credits = depth - in flight - buffered; a flush turns every beat in flight into a
        discard and empties the buffer."""
        issued = Mux(s.issue, s.length, 0)
        m.d.sync += s.inflight.eq(s.inflight + issued - s.rbeat)
        with m.If(self.flush):
            m.d.sync += [
                s.discard.eq(s.inflight - s.rbeat),
                s.credits.eq(self._depth - (s.inflight - s.rbeat)),
            ]
        with m.Else():
            m.d.sync += [
                s.discard.eq(s.discard - s.drop),
                s.credits.eq(s.credits - issued + s.pop + s.drop),
            ]

    def _outputs(self, m: Module, s: SimpleNamespace) -> None:
        ar_addr = Cat(C(0, self._shift), s.ar_addr)
        pending = s.p_valid | s.cmd_valid
        m.d.comb += [
            self.data.valid.eq(s.fifo.r_rdy),
            self.data.payload.eq(s.fifo.r_data),
            s.fifo.r_en.eq(self.data.ready),
            s.pop.eq(self.data.valid & self.data.ready),
            self.beat.eq(s.pop),
            self.idle.eq(~pending & (s.inflight == 0) & (s.fifo.level == 0)),
            self.waiting.eq(
                (pending | (s.inflight != s.discard)) & self.data.ready & ~self.data.valid
            ),
            self.m_axi_arid.eq(0),
            self.m_axi_araddr.eq(ar_addr),
            self.m_axi_arlen.eq(s.ar_len),
            self.m_axi_arsize.eq(self._shift),
            self.m_axi_arburst.eq(INCR),
            self.m_axi_arcache.eq(CACHE),
            self.m_axi_arprot.eq(0),
            self.m_axi_arvalid.eq(s.ar_valid),
            self.m_axi_rready.eq(1),
        ]
