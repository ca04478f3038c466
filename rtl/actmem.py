"""On-chip activation memories of the top, one per program buffer (:class:`program.isa.Buf`).

Buffer ``b`` of ``HwParams.buffers`` with shape [rows, cols] is one memory of
``rows * words(b)`` words, ``words(b) = ceil(cols / L)``, a word being ``L =
streams.act_lanes`` elements of the buffer's derived width; element (row, col) is lane
``col % L`` of word ``row * words(b) + col // L``. L is a multiple of R, C and head_dim, so a
compute-unit output row (C lanes at a multiple of C), an operand segment and a head's q/k/v
vector each lie inside one word. Writes are element-granular (a lane mask).

Engines reach the memories through clients: a :class:`ReadClient` names a buffer, an address and
an enable each cycle and gets the word (lanes sign- or zero-extended to the client's width) one
cycle later; a :class:`WriteClient` names buffer, address, lanes and a lane mask. At most one
client uses a memory's port in a cycle (the sequencer runs one instruction at a time and an
instruction's engines touch distinct buffers); the lowest-numbered enabled client wins.
"""

from __future__ import annotations

import math

from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned
from amaranth.lib.data import ArrayLayout
from amaranth.lib.memory import Memory

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.isa import Buf


def row_words(hw: HwParams, buf: Buf) -> int:
    """Words of one row of ``buf``."""
    return math.ceil(getattr(hw.buffers, buf.buffer_name).shape[1] / hw.streams.act_lanes)


PIXEL_FRAMES = 2  # the pixel buffer holds two frames: one received while the other runs


def buf_depth(hw: HwParams, buf: Buf) -> int:
    """Words of ``buf``'s memory (the pixel buffer: :data:`PIXEL_FRAMES` frames)."""
    frames = PIXEL_FRAMES if buf == Buf.PIXELS else 1
    return frames * getattr(hw.buffers, buf.buffer_name).shape[0] * row_words(hw, buf)


ADDR_BITS = 16  # word addresses (m3vit's largest buffer: 129 rows x 12 words)


class ReadClient:
    """``buf``, ``addr``, ``en`` in; ``data`` (L lanes of ``bits``) valid the cycle after
    ``en`` and held until the next ``en``."""

    def __init__(self, hw: HwParams, name: str, bufs: tuple[Buf, ...], bits: int):
        self.bufs, self.bits = bufs, bits
        self.buf = Signal(Buf, name=f"{name}_buf")
        self.addr = Signal(ADDR_BITS, name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(ArrayLayout(signed(bits), hw.streams.act_lanes), name=f"{name}_data")


class WriteClient:
    """``buf``, ``addr``, ``data`` (L lanes), ``mask`` (one bit per lane), ``en``."""

    def __init__(self, hw: HwParams, name: str, bufs: tuple[Buf, ...], bits: int):
        lanes = hw.streams.act_lanes
        self.bufs = bufs
        self.buf = Signal(Buf, name=f"{name}_buf")
        self.addr = Signal(ADDR_BITS, name=f"{name}_addr")
        self.data = Signal(ArrayLayout(signed(bits), lanes), name=f"{name}_data")
        self.mask = Signal(lanes, name=f"{name}_mask")
        self.en = Signal(name=f"{name}_en")


class ActMemories(Elaboratable):
    """The memories and the client multiplexers. ``extra_reads[buf]`` adds read ports used by
    one client only (the attention engine reads k and v of the QKV buffer in one cycle)."""

    def __init__(self, hw: HwParams):
        self.hw = hw
        self.reads: list[ReadClient] = []
        self.writes: list[WriteClient] = []

    def read_client(self, name: str, bufs, bits: int) -> ReadClient:
        c = ReadClient(self.hw, name, tuple(bufs), bits)
        self.reads.append(c)
        return c

    def write_client(self, name: str, bufs, bits: int) -> WriteClient:
        c = WriteClient(self.hw, name, tuple(bufs), bits)
        self.writes.append(c)
        return c

    def elaborate(self, platform):
        m = Module()
        for buf in Buf:
            spec = getattr(self.hw.buffers, buf.buffer_name)
            elem = signed(spec.bits) if spec.signed else unsigned(spec.bits)
            mem = Memory(
                shape=ArrayLayout(elem, self.hw.streams.act_lanes),
                depth=buf_depth(self.hw, buf),
                init=[],
            )
            m.submodules[f"mem_{buf.buffer_name}"] = mem
            for c in [c for c in self.reads if buf in c.bufs]:
                self._read(m, mem, buf, c, spec.bits)
            self._write(m, mem, buf, [c for c in self.writes if buf in c.bufs], spec.bits)
        return m

    def _read(self, m: Module, mem: Memory, buf: Buf, c: ReadClient, bits: int) -> None:
        """Each (client, buffer) pair gets its own read port; the client's data is the port of
        the buffer it named at its last enable."""
        port = mem.read_port()
        sel = Signal(name=f"{buf.buffer_name}_sel_{id(c) % 9973}")
        m.d.comb += [port.addr.eq(c.addr), port.en.eq(c.en & (c.buf == buf))]
        with m.If(c.en):
            m.d.sync += sel.eq(c.buf == buf)
        with m.If(sel):
            for lane in range(self.hw.streams.act_lanes):
                m.d.comb += c.data[lane].eq(port.data[lane])

    def _write(self, m: Module, mem: Memory, buf: Buf, clients, bits: int) -> None:
        if not clients:
            return
        port = mem.write_port(granularity=1)  # one enable per lane
        first = True
        for c in clients:
            hit = c.en & (c.buf == buf)
            with m.If(hit) if first else m.Elif(hit):
                m.d.comb += [port.addr.eq(c.addr), port.en.eq(c.mask)]
                for lane in range(self.hw.streams.act_lanes):
                    m.d.comb += port.data[lane].eq(c.data[lane])
            first = False


__all__ = ["ActMemories", "ReadClient", "WriteClient", "row_words", "buf_depth"]
