"""cocotb benches of rtl.axi_read.AxiReadMaster (against cocotbext-axi's AxiRamRead) and
rtl.axi_lite.AxiLiteRegs (through cocotbext-axi's AxiLiteMaster).

Read master: random requests (length 1, > 256, across 4 KB boundaries, a nonzero base) with
random pauses on AR and R and a consumer with random ready; every beat is compared with the
memory and ``last`` placement; the AR channel is checked against the AXI4 rules (<= 256 beats,
no 4 KB crossing, aligned, INCR) and the beats issued against the requests; SLVERR beats
(injected) must pulse ``error`` once each and still be delivered; ``flush`` at random points must
leave a prefix of the old request, answer every burst, and let the next request run exactly;
throughput and outstanding bursts with an always-ready consumer.

Register file: rw registers with byte strobes, unknown and read-only addresses, SPEC_ID, the
ap_ctrl_hs handshake with a modeled core (ap_start / ap_done / ap_idle / ap_ready,
auto_restart, start ignored while busy), ISR/IER/GIE and ``irq``, STATUS (w1c), the counters
(exact against the cycles the bench drove), CTRL.clear, the LO/HI latch.
"""

from __future__ import annotations

import itertools
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiRamRead, AxiReadBus
from edgevit_hw.rtl.axi_read import DEFAULT_DEPTH, burst_beats, read_data_layout, read_req_layout
from edgevit_hw.rtl.layouts import unpack
from edgevit_hw.sim.harness import Driver, bench_params, start

from edgevit_hw.program.regmap import COUNTED_UNITS, CTRL_FIELDS, registers

MEM_BYTES = 1 << 16
PAGE = 4096


def pauses(rng: random.Random, p: float):
    """Endless pause generator: True (pause this cycle) with probability ``p``."""
    return (rng.random() < p for _ in itertools.count())


class FaultyRam(AxiRamRead):
    """AxiRamRead answering SLVERR with zero data for the word addresses in ``bad``."""

    def __init__(self, *args, bad=(), **kwargs):
        self.bad = set(bad)
        super().__init__(*args, **kwargs)

    async def _read(self, address, length):
        if address in self.bad:
            raise OSError(f"injected read error at 0x{address:x}")
        return await super()._read(address, length)


class ReadProbe:
    """Samples the read master every cycle (ReadOnly): delivered beats with their cycle, error
    pulses, flush cycles, AR handshakes (checked against the AXI4 rules), R beats and bursts
    outstanding; ``problems`` collects every violation."""

    def __init__(self, dut, hw):
        self.dut, self.bb = dut, hw.streams.beat_bytes
        self.layout = read_data_layout(hw)
        self.cycle = 0
        self.beats: list[tuple[int, dict]] = []
        self.errors: list[int] = []
        self.flushes: list[tuple[int, bool]] = []  # (cycle, ARVALID then)
        self.ars: list[tuple[int, int, int]] = []  # (cycle, byte address, beats)
        self.r_beats = self.r_lasts = self.max_outstanding = self.waiting = 0
        self.max_held = 0  # beats issued and not delivered (before any flush)
        self.problems: list[str] = []

    async def run(self) -> None:
        while True:
            await ReadOnly()
            self.sample()
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    def sample(self) -> None:
        d = self.dut
        take = bool(d.data__valid.value) and bool(d.data__ready.value)
        if take:
            self.beats.append(
                (self.cycle, unpack(self.layout, d.data__payload.value.to_unsigned()))
            )
        if int(d.beat.value) != take:
            self.problems.append(f"cycle {self.cycle}: beat={d.beat.value}, handshake={take}")
        self._sample_waiting()
        if d.error.value:
            self.errors.append(self.cycle)
        if d.flush.value:
            self.flushes.append((self.cycle, bool(d.m_axi_arvalid.value)))
        if d.m_axi_arvalid.value and d.m_axi_arready.value:
            self._check_ar()
        if d.m_axi_rvalid.value:
            self._count_r()

    def _sample_waiting(self) -> None:
        d = self.dut
        if not d.waiting.value:
            return
        self.waiting += 1
        if d.data__valid.value or not d.data__ready.value or d.idle.value:
            self.problems.append(f"cycle {self.cycle}: waiting with valid/!ready/idle")

    def _check_ar(self) -> None:
        d = self.dut
        addr, n = int(d.m_axi_araddr.value), int(d.m_axi_arlen.value) + 1
        self.ars.append((self.cycle, addr, n))
        size, burst, cache = (int(d.m_axi_arsize.value), int(d.m_axi_arburst.value),
                              int(d.m_axi_arcache.value))  # fmt: skip
        if n > 256 or addr % PAGE + n * self.bb > PAGE or addr % self.bb:
            self.problems.append(f"burst 0x{addr:x} x {n} breaks the AXI4 rules")
        if (1 << size, burst, cache) != (self.bb, 1, 3):
            self.problems.append(f"burst 0x{addr:x}: arsize {size} arburst {burst} cache {cache}")
        if not self.flushes:
            held = sum(b for _, _, b in self.ars) - len(self.beats)
            self.max_held = max(self.max_held, held)

    def _count_r(self) -> None:
        if not self.dut.m_axi_rready.value:
            self.problems.append(f"cycle {self.cycle}: RREADY low (the bus was stalled)")
        self.r_beats += 1
        self.r_lasts += int(self.dut.m_axi_rlast.value)
        self.max_outstanding = max(self.max_outstanding, len(self.ars) - self.r_lasts)

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems[:10])


async def consume(dut, rng: random.Random, stall: float) -> None:
    """Drive ``data.ready`` high with probability ``1 - stall`` each cycle."""
    while True:
        dut.data__ready.value = int(rng.random() >= stall)
        await RisingEdge(dut.clk)


async def read_setup(dut, bad=(), ar_pause=0.0, r_pause=None, stall=0.3, seed=1):
    """Memory of random bytes behind the DUT, probe, consumer; returns (ram, probe, mem, rng)."""
    hw, _ = bench_params()
    rng = random.Random(seed)
    dut.flush.value = 0
    dut.base.value = 0
    ram = FaultyRam(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst,
                    reset_active_level=True, size=MEM_BYTES, bad=bad)  # fmt: skip
    mem = rng.randbytes(MEM_BYTES)
    ram.write(0, mem)
    ram.ar_channel.queue_occupancy_limit = 8
    ram.ar_channel.set_pause_generator(pauses(rng, ar_pause))
    ram.r_channel.set_pause_generator(r_pause if r_pause is not None else pauses(rng, 0.3))
    probe = ReadProbe(dut, hw)
    await start(dut)
    cocotb.start_soon(probe.run())
    cocotb.start_soon(consume(dut, rng, stall))
    return ram, probe, mem, rng


def expected(mem: bytes, base: int, bb: int, reqs, bad=()) -> list[dict]:
    """The beats of ``reqs`` [(addr, beats)] read from ``mem`` (0 where the address is bad)."""
    out = []
    for addr, n in reqs:
        for i in range(n):
            a = base + (addr + i) * bb
            data = 0 if a in bad else int.from_bytes(mem[a : a + bb], "little")
            out.append({"data": data, "last": int(i == n - 1)})
    return out


def compare(got: list[dict], want: list[dict], what: str) -> None:
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w]
    assert not bad, f"{what}: beat #{bad[0]} got {got[bad[0]]}, want {want[bad[0]]}"
    assert len(got) == len(want), f"{what}: {len(got)} beats, expected {len(want)}"


async def wait_for(dut, cond, max_cycles: int, what: str) -> None:
    for _ in range(max_cycles):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if cond():
            await RisingEdge(dut.clk)
            return
    raise AssertionError(f"timeout after {max_cycles} cycles waiting for {what}")


def random_requests(rng: random.Random, base: int, bb: int) -> list[tuple[int, int]]:
    """Length 1, > 256, across one and several 4 KB boundaries, ending on one, and random."""
    top = (MEM_BYTES - base) // bb  # beats available
    beat_of = lambda byte: (byte - base) // bb  # noqa: E731
    reqs = [(5, 1), (beat_of(3 * PAGE) - 3, 10), (beat_of(5 * PAGE) - 7, 700), (40, 257),
            (beat_of(7 * PAGE) - 16, 16), (beat_of(8 * PAGE), 1), (top - 300, 300)]  # fmt: skip
    for _ in range(24):
        n = rng.choice([1, 2, 3, rng.randint(4, 40), rng.randint(41, 600)])
        reqs.append((rng.randrange(0, top - n), n))
    rng.shuffle(reqs)
    return reqs


@cocotb.test()
async def axi_read_random(dut):
    """Random requests, pauses and ready; SLVERR injection; every beat, last, burst rule."""
    hw, seed = bench_params()
    bb = hw.streams.beat_bytes
    rng = random.Random(seed)
    base = 2 * PAGE + bb * rng.randrange(1, 64)
    reqs = random_requests(rng, base, bb)
    words = [base + (a + i) * bb for a, n in reqs for i in range(n)]
    bad = set(rng.sample(words, 8))
    dut._log.info(f"seed {seed}, base 0x{base:x}, {len(reqs)} requests, {len(words)} beats")
    ram, probe, mem, rng = await read_setup(dut, bad, ar_pause=0.3, seed=seed)
    dut.base.value = base
    want = expected(mem, base, bb, reqs, bad)
    driver = Driver(dut, "req", read_req_layout(), rng, 0.3)
    cocotb.start_soon(driver.send([{"addr": a, "beats": n} for a, n in reqs]))
    await wait_for(dut, lambda: len(probe.beats) >= len(want) and dut.idle.value, 20 * len(want),
                   "every beat")  # fmt: skip
    for _ in range(30):
        await RisingEdge(dut.clk)
    probe.check()
    compare([b for _, b in probe.beats], want, "random requests")
    assert sum(n for _, _, n in probe.ars) == len(words) == probe.r_beats, "beats issued"
    assert len(probe.errors) == sum(w in bad for w in words), f"error pulses: {probe.errors}"
    assert any(n == 256 or n == burst_beats(hw) for _, _, n in probe.ars), "no full burst"
    assert probe.max_held <= DEFAULT_DEPTH, f"{probe.max_held} beats held > FIFO depth"


@cocotb.test()
async def axi_read_flush(dut):
    """Flush at random points (right after the request, while beats stream, while idle): the
    delivered beats are a prefix of the old request, every burst is answered, no address beat
    of the old request follows the flush (but the one already presented), the next request is
    exact."""
    hw, seed = bench_params()
    bb = hw.streams.beat_bytes
    ram, probe, mem, rng = await read_setup(dut, ar_pause=0.3, seed=seed + 1)
    top = MEM_BYTES // bb
    driver = Driver(dut, "req", read_req_layout(), rng, 0.0)
    delays = [0, 1, 2, 3, -1] + [rng.randint(4, 500) for _ in range(11)]  # -1: while idle
    for rnd, delay in enumerate(delays):
        old = (rng.randrange(0, top // 2 - 1500), rng.randint(200, 1500))
        new = (rng.randrange(top // 2, top - 300), rng.randint(1, 300))  # no overlap
        first = len(probe.beats)
        if delay >= 0:
            await driver.send([{"addr": old[0], "beats": old[1]}])
            for _ in range(delay):
                await RisingEdge(dut.clk)
        await pulse(dut, "flush")
        flush_cycle, _ = probe.flushes[-1]
        await driver.send([{"addr": new[0], "beats": new[1]}])
        await wait_for(dut, lambda: dut.idle.value, 40 * new[1] + 3000, f"round {rnd} idle")
        got = probe.beats[first:]
        before = [b for c, b in got if c <= flush_cycle]
        if delay >= 0:
            compare(before, expected(mem, 0, bb, [old])[: len(before)], f"round {rnd} old")
        else:
            assert not before, "beats from nowhere"
        compare([b for c, b in got if c > flush_cycle], expected(mem, 0, bb, [new]),
                f"round {rnd} new")  # fmt: skip
        check_no_old_bursts(probe, flush_cycle, old, bb)
        held = probe.flushes[-1][1]
        dut._log.info(f"round {rnd}: flush after {delay} cycles (ARVALID {held:d}), "
                      f"{len(before)} old beats kept")  # fmt: skip
    probe.check()
    assert sum(n for _, _, n in probe.ars) == probe.r_beats, "a burst was left unanswered"
    assert not probe.errors, "error pulses without RRESP errors"


def check_no_old_bursts(probe: ReadProbe, flush_cycle: int, old, bb: int) -> None:
    """After the flush only the address beat presented at the flush may be of ``old``."""
    lo, hi = old[0] * bb, (old[0] + old[1]) * bb
    after = [a for c, a, _ in probe.ars if c > flush_cycle and lo <= a < hi]
    held = probe.flushes[-1][1]
    assert len(after) <= int(held), f"bursts of the flushed request issued after it: {after}"


async def pulse(dut, name: str) -> None:
    """Drive ``name`` high for exactly one cycle."""
    await RisingEdge(dut.clk)
    getattr(dut, name).value = 1
    await RisingEdge(dut.clk)
    getattr(dut, name).value = 0


@cocotb.test()
async def axi_read_throughput(dut):
    """Always-ready consumer, no pauses after an 80-cycle R stall (a long first latency): the
    master fills the FIFO with bursts (>= 4 outstanding, never more beats than the FIFO),
    counts the stall in ``waiting``, then streams one beat per cycle."""
    hw, seed = bench_params()
    bb = hw.streams.beat_bytes
    stall_r = itertools.chain([True] * 80, itertools.repeat(False))
    ram, probe, mem, rng = await read_setup(dut, r_pause=stall_r, stall=0.0, seed=seed + 2)
    n = 2000
    reqs = [(3, n)] + [(5000 + 3 * i, 1 + i % 2) for i in range(128)]  # 192 beats
    cocotb.start_soon(Driver(dut, "req", read_req_layout(), rng, 0.0).send(
        [{"addr": a, "beats": b} for a, b in reqs]))  # fmt: skip
    want = expected(mem, 0, bb, reqs)
    await wait_for(dut, lambda: probe.beats, 200, "the first beat")
    early = probe.max_outstanding  # during the R stall: credit-limited
    await wait_for(dut, lambda: len(probe.beats) >= len(want) and dut.idle.value, 10 * len(want),
                   "every beat")  # fmt: skip
    probe.check()
    compare([b for _, b in probe.beats], want, "throughput")
    full = DEFAULT_DEPTH // burst_beats(hw)
    assert early == full, f"{early} bursts outstanding during the stall, expected {full}"
    long_span = probe.beats[n - 1][0] - probe.beats[0][0] + 1
    short_span = probe.beats[-1][0] - probe.beats[n][0] + 1  # one request per cycle
    dut._log.info(
        f"{n} beats in {long_span} cycles; 128 requests of 1-2 beats in {short_span} cycles; "
        f"{early} bursts outstanding in the stall, {probe.max_outstanding} at most; "
        f"{probe.waiting} waiting cycles"
    )
    assert long_span <= n + 4, f"{n} beats took {long_span} cycles"
    assert short_span <= 192 + 4, f"short requests: {short_span} cycles for 192 beats"
    assert probe.max_held <= DEFAULT_DEPTH, f"{probe.max_held} beats held > FIFO depth"
    assert probe.waiting >= 60, f"{probe.waiting} waiting cycles during an 80-cycle stall"


# ------------------------------------------------------------------------ register file ----


class Core:
    """Models the core behind the register file, sampling every cycle: a run lasts ``run``
    cycles after a ``start`` pulse (``idle`` low); ``done`` pulses ``lag`` cycles before
    ``idle`` rises. Counts starts (``busy_starts``: those while not idle) and ``clear`` pulses."""

    def __init__(self, dut, run: int = 30, lag: int = 4):
        self.dut, self.run_cycles, self.lag = dut, run, lag
        self.starts = self.busy_starts = self.clears = 0
        for name in ("done", "frame_ok", "frame_dropped", "status_set", "busy", "stall",
                     "frame_cycles"):  # fmt: skip
            getattr(dut, name).value = 0
        dut.idle.value = 1

    async def run(self) -> None:
        d, left = self.dut, 0
        while True:
            await ReadOnly()
            started = bool(d.start.value)
            self.clears += int(d.clear.value)
            await RisingEdge(d.clk)
            self.starts += started
            self.busy_starts += started and left > 0
            left = self.run_cycles + self.lag if started else max(left - 1, 0)
            d.done.value = int(left == self.lag and not started)
            d.idle.value = int(left == 0)


async def lite_setup(dut, seed: int):
    """AxiLiteMaster with random pauses on all five channels; the core model running."""
    rng = random.Random(seed)
    core = Core(dut)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst,
                         reset_active_level=True)  # fmt: skip
    for ch in (axil.write_if.aw_channel, axil.write_if.w_channel, axil.write_if.b_channel,
               axil.read_if.ar_channel, axil.read_if.r_channel):  # fmt: skip
        ch.set_pause_generator(pauses(rng, 0.4))
    await start(dut)
    cocotb.start_soon(core.run())
    regs = {r.name: r.offset for r in registers(bench_params()[0])}
    return axil, core, regs, rng


def ctrl_bits(value: int) -> dict[str, int]:
    return {f.name: (value >> f.bit) & 1 for f in CTRL_FIELDS}


def ctrl_word(**bits: int) -> int:
    return sum(v << f.bit for f in CTRL_FIELDS for k, v in bits.items() if f.name == k)


@cocotb.test()
async def axi_lite_rw(dut):
    """rw registers (full and byte-strobed writes, pipelined), their outputs, read-only and
    unknown addresses, SPEC_ID."""
    hw, seed = bench_params()
    axil, core, regs, rng = await lite_setup(dut, seed)
    vals = {n: rng.getrandbits(32) for n in ("DRAM_BASE_LO", "DRAM_BASE_HI", "TASK", "FRAMES")}
    vals.update(GIE=1, IER=3)
    events = [axil.init_write(regs[n], v.to_bytes(4, "little")) for n, v in vals.items()]
    for e in events:
        await e.wait()
    byte = rng.getrandbits(8)
    await axil.write(regs["TASK"] + 2, bytes([byte]))  # WSTRB = 0b0100
    vals["TASK"] = (vals["TASK"] & ~0xFF0000) | byte << 16
    await axil.write(regs["FRAMES"], b"\x11\x22")  # WSTRB = 0b0011
    vals["FRAMES"] = (vals["FRAMES"] & ~0xFFFF) | 0x2211
    top = max(regs.values()) + 4
    for addr in (top, 0xFC, regs["SPEC_ID"], regs["FRAMES_OK"], regs["CYCLES_HI"]):
        await axil.write_dword(addr, 0xFFFFFFFF)
    for name, v in vals.items():
        got = await axil.read_dword(regs[name])
        assert got == v, f"{name}: read 0x{got:x}, wrote 0x{v:x}"
    for addr in (top, 0xF0, 0xFC):
        assert await axil.read_dword(addr) == 0, f"unknown 0x{addr:x} reads nonzero"
    assert await axil.read_dword(regs["SPEC_ID"]) == hw.hash32
    assert await axil.read_dword(regs["FRAMES_OK"]) == 0
    assert int(dut.dram_base.value) == vals["DRAM_BASE_HI"] << 32 | vals["DRAM_BASE_LO"]
    assert (int(dut.task.value), int(dut.frames.value)) == (vals["TASK"], vals["FRAMES"])
    assert core.starts == 0, "a start without ap_start"


@cocotb.test()
async def axi_lite_ctrl(dut):
    """ap_start/ap_done/ap_idle/ap_ready, start ignored while busy or unstrobed,
    auto_restart, ISR/IER/GIE and irq."""
    hw, seed = bench_params()
    axil, core, regs, rng = await lite_setup(dut, seed)
    ctrl = regs["CTRL"]
    assert ctrl_bits(await axil.read_dword(ctrl))["ap_idle"] == 1
    await axil.write_dword(regs["GIE"], 1)
    await axil.write_dword(regs["IER"], 1)  # done only
    await axil.write_dword(ctrl, ctrl_word(auto_restart=1))
    await axil.write(ctrl + 1, b"\xff")  # WSTRB = 0b0010: byte 0 (auto_restart) untouched
    bits = ctrl_bits(await axil.read_dword(ctrl))
    assert bits["auto_restart"] == 1 and core.starts == 0, bits
    await axil.write_dword(ctrl, ctrl_word(ap_start=1))
    bits = ctrl_bits(await axil.read_dword(ctrl))
    assert core.starts == 1 and bits["ap_idle"] == 0 and bits["ap_ready"] == 1, bits
    assert bits["ap_start"] == 0 and bits["ap_done"] == 0, bits
    assert ctrl_bits(await axil.read_dword(ctrl))["ap_ready"] == 0, "ap_ready not cleared on read"
    await axil.write_dword(ctrl, ctrl_word(ap_start=1))  # busy: ignored
    await wait_for(dut, lambda: dut.irq.value, 200, "irq after done")
    assert await axil.read_dword(regs["ISR"]) == 3  # both events, IER masks only irq
    bits = ctrl_bits(await axil.read_dword(ctrl))
    assert bits["ap_done"] == 1 and bits["ap_idle"] == 1, bits
    assert ctrl_bits(await axil.read_dword(ctrl))["ap_done"] == 0, "ap_done not cleared on read"
    await axil.write_dword(regs["ISR"], 1)
    await settle(dut)
    assert not dut.irq.value and await axil.read_dword(regs["ISR"]) == 2
    assert core.starts == 1, "a start written while busy was queued"
    assert core.busy_starts == 0, "start pulsed while the core was busy"
    await axil.write_dword(regs["IER"], 2)
    await settle(dut)
    assert dut.irq.value, "irq for ready with IER.ready"
    await axil.write_dword(regs["GIE"], 0)
    await settle(dut)
    assert not dut.irq.value, "irq with GIE off"
    await auto_restart(dut, axil, core, ctrl)


async def settle(dut, cycles: int = 3) -> None:
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    await ReadOnly()
    await RisingEdge(dut.clk)


async def auto_restart(dut, axil, core, ctrl: int) -> None:
    """With auto_restart the runs follow each other; clearing it stops after the current."""
    n0 = core.starts
    await axil.write_dword(ctrl, ctrl_word(ap_start=1, auto_restart=1))
    await wait_for(dut, lambda: core.starts >= n0 + 4, 1000, "4 automatic restarts")
    await axil.write_dword(ctrl, 0)
    n1 = core.starts
    for _ in range(200):
        await RisingEdge(dut.clk)
    assert core.starts <= n1 + 1, "runs continued after auto_restart was cleared"
    assert dut.idle.value, "core still running"
    assert core.busy_starts == 0, "start pulsed while the core was not idle"


@cocotb.test()
async def axi_lite_counters(dut):
    """Busy/stall counters exact against the driven bits, CYCLES against the clear pulse,
    FRAMES_OK/DROPPED, STATUS w1c, CTRL.clear, the LO/HI latch."""
    hw, seed = bench_params()
    axil, core, regs, rng = await lite_setup(dut, seed)
    n = len(COUNTED_UNITS)
    counts = await drive_events(dut, rng, n, 300)
    for i, unit in enumerate(COUNTED_UNITS):
        for kind, k in (("BUSY", i), ("STALL", n + i)):
            got = await read64(axil, regs, f"{unit.upper()}_{kind}")
            assert got == counts[k], f"{unit} {kind}: {got}, drove {counts[k]}"
    assert await axil.read_dword(regs["FRAMES_OK"]) == counts[2 * n]
    assert await axil.read_dword(regs["FRAMES_DROPPED"]) == counts[2 * n + 1]
    assert await axil.read_dword(regs["STATUS"]) == 0b10101
    await axil.write_dword(regs["STATUS"], 0b00100)
    assert await axil.read_dword(regs["STATUS"]) == 0b10001
    await latch_check(dut, axil, regs, rng)
    await clear_check(dut, axil, core, regs)


async def drive_events(dut, rng: random.Random, n: int, cycles: int) -> list[int]:
    """Random busy/stall bits and frame pulses for ``cycles`` cycles; STATUS bits 0, 2, 4.
    Returns the ones driven: busy[n], stall[n], frame_ok, frame_dropped."""
    counts = [0] * (2 * n + 2)
    for c in range(cycles):
        bits = [rng.random() < 0.5 for _ in range(2 * n + 2)]
        dut.busy.value = sum(b << i for i, b in enumerate(bits[:n]))
        dut.stall.value = sum(b << i for i, b in enumerate(bits[n : 2 * n]))
        dut.frame_ok.value, dut.frame_dropped.value = int(bits[2 * n]), int(bits[2 * n + 1])
        dut.status_set.value = (1, 4, 16, 0)[c % 4] if c < 12 else 0
        counts = [k + b for k, b in zip(counts, bits, strict=True)]
        await RisingEdge(dut.clk)
    for name in ("busy", "stall", "frame_ok", "frame_dropped", "status_set"):
        getattr(dut, name).value = 0
    return counts


async def read64(axil, regs, name: str) -> int:
    lo = await axil.read_dword(regs[f"{name}_LO"])
    return (await axil.read_dword(regs[f"{name}_HI"])) << 32 | lo


async def latch_check(dut, axil, regs, rng: random.Random) -> None:
    """FRAME_CYCLES: HI returns the high half as it was when LO was read."""
    first = rng.getrandbits(64) | 1 << 63
    dut.frame_cycles.value = first
    lo = await axil.read_dword(regs["FRAME_CYCLES_LO"])
    dut.frame_cycles.value = first ^ (0xFFFF << 40)
    hi = await axil.read_dword(regs["FRAME_CYCLES_HI"])
    assert hi << 32 | lo == first, f"FRAME_CYCLES read 0x{hi:x}{lo:08x}, was 0x{first:x}"
    lo = await axil.read_dword(regs["FRAME_CYCLES_LO"])
    hi = await axil.read_dword(regs["FRAME_CYCLES_HI"])
    assert hi << 32 | lo == first ^ (0xFFFF << 40), "the latch did not follow a new LO read"


async def clear_check(dut, axil, core, regs) -> None:
    """CTRL.clear: one ``clear`` pulse, counters/STATUS/frames 0, CYCLES counts from it."""
    dut.busy.value = 1
    clear_at, reads = [], {}
    cocotb.start_soon(watch_lite(dut, clear_at, reads))
    await axil.write_dword(regs["CTRL"], ctrl_word(clear=1))
    got = [await axil.read_dword(regs[n]) for n in ("FRAMES_OK", "FRAMES_DROPPED", "STATUS")]
    assert got == [0, 0, 0], f"after clear: {got}"
    assert core.clears == 1 and len(clear_at) == 1, f"clear pulses: {clear_at}"
    busy_name = f"{COUNTED_UNITS[0].upper()}_BUSY"
    for name in ("CYCLES", busy_name):  # busy held 1: counts like CYCLES
        got = await read64(axil, regs, name)
        want = reads[regs[f"{name}_LO"]][-1] - clear_at[0] - 1
        assert got == want, f"{name} {got}, expected {want} (cycles since the clear)"
    dut.busy.value = 0
    assert await read64(axil, regs, f"{COUNTED_UNITS[0].upper()}_STALL") == 0


async def watch_lite(dut, clear_at: list, reads: dict) -> None:
    """Record the cycle of each ``clear`` pulse and of each accepted read (by address)."""
    cycle = 0
    while True:
        await ReadOnly()
        if dut.clear.value:
            clear_at.append(cycle)
        if dut.s_axil_arvalid.value and dut.s_axil_arready.value:
            reads.setdefault(int(dut.s_axil_araddr.value), []).append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
