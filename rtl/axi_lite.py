"""Control and status registers: an AXI4-Lite slave implementing edgevit_hw.program.regmap.

Every offset is decoded from :func:`edgevit_hw.program.regmap.registers` (never retyped); the
address bus has :func:`addr_bits` bits (the low two are ignored: 32-bit registers). Unknown
addresses read 0 and ignore writes; every response is OKAY. AW and W may arrive in any order
(each is held until its partner comes); WSTRB selects the bytes written (an action bit such as
CTRL.ap_start acts only when its byte is strobed). One write and one read per two cycles at
most; RDATA is registered.

Core-facing members:

- ``start`` (out): one-cycle pulse (registered), the cycle after one where CTRL.ap_start and
  ``idle`` are both 1; ap_start then clears and ap_ready is set (ap_ctrl_hs). Writing
  ap_start = 1 while ``idle`` is 0 (or in the cycle of the ``start`` pulse) is ignored: no start
  is queued. Writing 0 never clears a pending ap_start. The core must drop ``idle`` no later
  than the cycle after the ``start`` pulse.
- ``done`` (in): pulse at the end of a run: sets CTRL.ap_done and ISR.done; sets ap_start again
  when CTRL.auto_restart is 1 (the run restarts once ``idle`` is 1).
- ``idle`` (in): no run in progress; CTRL.ap_idle reads it.
- CTRL.ap_done and CTRL.ap_ready are sticky and cleared by a read of CTRL (an event in the cycle
  of that read survives it). ISR bits (done, ready) are set on the events whatever IER says and
  cleared by writing 1. ``irq`` (out) = GIE.enable & (ISR & IER != 0), registered (1 cycle).
- ``dram_base`` (out, 64), ``task`` (out, 32), ``frames`` (out, 32): the rw registers.
- ``clear`` (out): one-cycle pulse, one cycle after a write of CTRL with ``clear`` = 1. In the same
  cycle FRAMES_OK, FRAMES_DROPPED, STATUS, CYCLES and every busy/stall counter become 0
  (events of that cycle are lost, except STATUS bits set in it).
- ``status_set`` (in, one bit per regmap.STATUS_FIELDS): pulses OR-ed into the sticky STATUS
  bits (w1c; a set wins over a clear in the same cycle).
- ``frame_ok``, ``frame_dropped`` (in): pulses counted in FRAMES_OK / FRAMES_DROPPED (32 bits).
- ``frame_cycles`` (in, 64): shown in FRAME_CYCLES.
- ``busy``, ``stall`` (in, one bit per regmap.COUNTED_UNITS in order): each cycle the bit is 1,
  the 64-bit counter {UNIT}_BUSY / {UNIT}_STALL increments. CYCLES counts every cycle.

64-bit values (CYCLES, FRAME_CYCLES, the counters): reading ``_LO`` returns the low half and
latches the high half, which ``_HI`` then returns (one latch per register), so a LO-then-HI pair
is consistent. Each 64-bit counter is two 32-bit halves, the high one incremented in the cycle the
low one wraps (:func:`rtl.counter.wide_counter`): exact in every cycle, with no carry chain
longer than 32 bits. DRAM_BASE_HI (rw) reads the register itself. SPEC_ID reads ``hw.hash32``.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from edgevit_hw.rtl.counter import wide_counter

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.regmap import (
    COUNTED_UNITS,
    CTRL_FIELDS,
    IRQ_FIELDS,
    STATUS_FIELDS,
    WORD,
    Field,
    registers,
)

RW_REGS = ("DRAM_BASE_LO", "DRAM_BASE_HI", "TASK", "FRAMES", "GIE", "IER")  # plain storage


def addr_bits(hw: HwParams) -> int:
    """Width of ``s_axil_awaddr`` / ``s_axil_araddr``: enough for the highest offset."""
    return max(r.offset for r in registers(hw)).bit_length()


def fields_width(fields: tuple[Field, ...]) -> int:
    """Bits from 0 up to the highest field."""
    return max(f.bit + f.width for f in fields)


def _bit(fields: tuple[Field, ...], name: str) -> int:
    return next(f.bit for f in fields if f.name == name)


def _axil_members(abits: int) -> dict:
    return {
        "s_axil_awaddr": In(abits),
        "s_axil_awprot": In(3),
        "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(32),
        "s_axil_wstrb": In(4),
        "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2),
        "s_axil_bvalid": Out(1),
        "s_axil_bready": In(1),
        "s_axil_araddr": In(abits),
        "s_axil_arprot": In(3),
        "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(32),
        "s_axil_rresp": Out(2),
        "s_axil_rvalid": Out(1),
        "s_axil_rready": In(1),
    }


def _core_members() -> dict:
    n = len(COUNTED_UNITS)
    return {
        "start": Out(1),
        "dram_base": Out(64),
        "task": Out(32),
        "frames": Out(32),
        "clear": Out(1),
        "irq": Out(1),
        "idle": In(1),
        "done": In(1),
        "status_set": In(fields_width(STATUS_FIELDS)),
        "frame_ok": In(1),
        "frame_dropped": In(1),
        "frame_cycles": In(64),
        "busy": In(n),
        "stall": In(n),
    }


class AxiLiteRegs(wiring.Component):
    """See the module docstring."""

    def __init__(self, hw: HwParams):
        self._hash32 = hw.hash32
        self._regs = {r.name: r for r in registers(hw)}
        self._abits = addr_bits(hw)
        super().__init__({**_axil_members(self._abits), **_core_members()})

    def elaborate(self, platform):
        m = Module()
        wr = self._write_channel(m)
        rd = self._read_channel(m)
        regs = self._storage(m, wr)
        values = {"SPEC_ID": Const(self._hash32, 32), **regs}
        values.update(self._control(m, wr, rd, regs["GIE"], regs["IER"]))
        values.update(self._status(m, wr))
        values.update(self._counters(m, rd))
        self._read_mux(m, rd, values)
        return m

    def _hit(self, port: SimpleNamespace, name: str) -> Value:
        """``port`` (a write or read strobe) addresses register ``name`` this cycle."""
        return port.en & (port.word == self._regs[name].offset // WORD)

    def _write_channel(self, m: Module) -> SimpleNamespace:
        """Hold AW and W until both are in, then write once B is free. Returns the write strobe
        ``en``, register ``word``, ``data`` and byte ``mask`` (from WSTRB)."""
        aw_full, w_full, bvalid = Signal(), Signal(), Signal()
        word = Signal(self._abits - 2)
        data, strb = Signal(32), Signal(4)
        en = Signal()
        m.d.comb += [
            self.s_axil_awready.eq(~aw_full),
            self.s_axil_wready.eq(~w_full),
            self.s_axil_bvalid.eq(bvalid),
            self.s_axil_bresp.eq(0),
            en.eq(aw_full & w_full & (~bvalid | self.s_axil_bready)),
        ]
        with m.If(en):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bvalid.eq(1)]
        with m.Elif(self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        with m.If(self.s_axil_awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), word.eq(self.s_axil_awaddr[2:])]
        with m.If(self.s_axil_wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), data.eq(self.s_axil_wdata), strb.eq(self.s_axil_wstrb)]
        mask = Cat(*(b.replicate(8) for b in strb))
        return SimpleNamespace(en=en, word=word, data=data, strb=strb, mask=mask)

    def _read_channel(self, m: Module) -> SimpleNamespace:
        """Accept an address when R is free. Returns the read strobe ``en`` and ``word``."""
        rvalid = Signal()
        en = Signal()
        m.d.comb += [
            self.s_axil_arready.eq(~rvalid),
            self.s_axil_rvalid.eq(rvalid),
            self.s_axil_rresp.eq(0),
            en.eq(self.s_axil_arvalid & ~rvalid),
        ]
        with m.If(en):
            m.d.sync += rvalid.eq(1)
        with m.Elif(self.s_axil_rready):
            m.d.sync += rvalid.eq(0)
        return SimpleNamespace(en=en, word=self.s_axil_araddr[2:])

    def _storage(self, m: Module, wr: SimpleNamespace) -> dict[str, Value]:
        """The plain rw registers (byte-masked writes) and the outputs they drive."""
        widths = {"GIE": 1, "IER": fields_width(IRQ_FIELDS)}
        regs = {n: Signal(widths.get(n, 32), name=n.lower()) for n in RW_REGS}
        for name, reg in regs.items():
            with m.If(self._hit(wr, name)):
                m.d.sync += reg.eq((reg & ~wr.mask) | (wr.data & wr.mask))
        m.d.comb += [
            self.dram_base.eq(Cat(regs["DRAM_BASE_LO"], regs["DRAM_BASE_HI"])),
            self.task.eq(regs["TASK"]),
            self.frames.eq(regs["FRAMES"]),
        ]
        return regs

    def _control(self, m, wr, rd, gie: Value, ier: Value) -> dict[str, Value]:
        """CTRL (ap_ctrl_hs handshake, clear, auto_restart), ISR and ``irq``."""
        c = SimpleNamespace(
            ap_start=Signal(), ap_done=Signal(), ap_ready=Signal(), auto_restart=Signal()
        )
        isr = Signal(fields_width(IRQ_FIELDS))
        go = Signal()
        m.d.comb += go.eq(c.ap_start & self.idle)
        m.d.sync += self.start.eq(go)
        self._ctrl_write(m, wr, c, go)
        ctrl_read = self._hit(rd, "CTRL")
        for flag, event in ((c.ap_done, self.done), (c.ap_ready, go)):
            with m.If(event):
                m.d.sync += flag.eq(1)
            with m.Elif(ctrl_read):
                m.d.sync += flag.eq(0)
        events = _place(IRQ_FIELDS, {"done": self.done, "ready": go})[: len(isr)]
        w1c = Mux(self._hit(wr, "ISR"), (wr.data & wr.mask)[: len(isr)], 0)
        m.d.sync += isr.eq((isr & ~w1c) | events)
        m.d.sync += self.irq.eq(gie & (isr & ier).any())
        fields = {**vars(c), "ap_idle": self.idle}
        return {"CTRL": _place(CTRL_FIELDS, fields), "ISR": isr}

    def _ctrl_write(self, m: Module, wr: SimpleNamespace, c: SimpleNamespace, go: Value) -> None:
        """ap_start: cleared by the start; set by done with auto_restart, or by a write of 1
        while idle and no start pulse is out (the core drops ``idle`` the cycle after it).
        clear: a registered pulse. auto_restart: stored."""
        byte0 = self._hit(wr, "CTRL") & wr.strb[0]
        bit = {f.name: wr.data[f.bit] for f in CTRL_FIELDS}
        with m.If(go):
            m.d.sync += c.ap_start.eq(0)
        with m.Elif(self.done & c.auto_restart):
            m.d.sync += c.ap_start.eq(1)
        with m.Elif(byte0 & bit["ap_start"] & self.idle & ~self.start):
            m.d.sync += c.ap_start.eq(1)
        with m.If(byte0):
            m.d.sync += c.auto_restart.eq(bit["auto_restart"])
        m.d.sync += self.clear.eq(byte0 & bit["clear"])

    def _status(self, m: Module, wr: SimpleNamespace) -> dict[str, Value]:
        """STATUS: sticky bits set by ``status_set``, cleared by writing 1 or by ``clear``."""
        status = Signal(len(self.status_set))
        sets = _place(
            STATUS_FIELDS, {f.name: self.status_set[i] for i, f in enumerate(STATUS_FIELDS)}
        )
        w1c = Mux(self._hit(wr, "STATUS"), (wr.data & wr.mask)[: len(status)], 0)
        keep = Mux(self.clear, 0, status & ~w1c)
        m.d.sync += status.eq(keep | sets[: len(status)])
        return {"STATUS": status}

    def _counters(self, m: Module, rd: SimpleNamespace) -> dict[str, Value]:
        """FRAMES_OK/DROPPED (32 bits), CYCLES and the unit counters (64 bits), all cleared by
        ``clear``; the LO/HI views of every 64-bit value."""
        out = {}
        for name, inc in (("FRAMES_OK", self.frame_ok), ("FRAMES_DROPPED", self.frame_dropped)):
            out[name] = self._count(m, name, 32, inc)
        wide = [("CYCLES", Const(1))]
        for i, unit in enumerate(COUNTED_UNITS):
            wide += [
                (f"{unit.upper()}_BUSY", self.busy[i]),
                (f"{unit.upper()}_STALL", self.stall[i]),
            ]
        values = {name: self._count(m, name, 64, inc) for name, inc in wide}
        values["FRAME_CYCLES"] = self.frame_cycles
        for name, value in values.items():
            out.update(self._halves(m, rd, name, value))
        return out

    def _count(self, m: Module, name: str, width: int, inc: Value) -> Value:
        """Halves of at most 32 bits (:func:`rtl.counter.wide_counter`), ``inc`` on their
        clock enables: the count stays exact in every cycle."""
        return wide_counter(m, width, inc, self.clear, name.lower())

    def _halves(self, m: Module, rd: SimpleNamespace, name: str, value: Value) -> dict:
        """``{NAME_LO: low half, NAME_HI: high half latched by the LO read}``."""
        hi = Signal(32, name=f"{name.lower()}_hi")
        with m.If(self._hit(rd, f"{name}_LO")):
            m.d.sync += hi.eq(value[32:])
        return {f"{name}_LO": value[:32], f"{name}_HI": hi}

    def _read_mux(self, m: Module, rd: SimpleNamespace, values: dict[str, Value]) -> None:
        """RDATA <= the addressed register (0 for unknown addresses) on each accepted read."""
        if set(values) != set(self._regs):
            raise AssertionError(f"registers vs values: {set(values) ^ set(self._regs)}")
        with m.If(rd.en):
            with m.Switch(rd.word):
                for name, value in values.items():
                    with m.Case(self._regs[name].offset // WORD):
                        m.d.sync += self.s_axil_rdata.eq(value)
                with m.Default():
                    m.d.sync += self.s_axil_rdata.eq(0)


def _place(fields: tuple[Field, ...], values: dict[str, Value]) -> Value:
    """A register word with ``values[f.name]`` at each field's bit (absent fields read 0)."""
    word = Const(0, 32)
    for f in fields:
        if f.name in values:
            word = word | (values[f.name].as_unsigned() << f.bit)
    return word[:32]
