"""cocotb bench of the whole accelerator (rtl.top.Top) through its AXI ports, bit for bit.

cocotbext-axi models every bus: ``AxiRamRead`` holds the DRAM image (at a nonzero base, random
pauses on AR and R; :class:`sim.bench_axi.FaultyRam` answers SLVERR where a test injects a read
error), ``AxiStreamSource`` / ``AxiStreamSink`` carry pixels and tokens with random pauses, and
``AxiLiteMaster`` drives the register map (offsets from the generated ``regmap``). The case file
(``EVH_CASE``, written by the pytest side) lists frames in order, each with its task, its beats
and either the golden tokens or the STATUS bit that must drop it. Good frames must equal the
golden model exactly; every dropped frame must set its bit and leave the next frames intact.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiReadBus,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)
from edgevit_hw.rtl.actmem import row_words
from edgevit_hw.sim.bench_axi import FaultyRam, pauses
from edgevit_hw.sim.harness import bench_params
from edgevit_hw.sim.top_case import load_case

from edgevit_hw.program import regmap
from edgevit_hw.program.interpreter import Interpreter
from edgevit_hw.program.isa import Buf, written
from edgevit_hw.program.streams import beat_bytes, receive

BASE = 0x10000  # byte address of the image in the bench's DRAM (nonzero on purpose)


class Regs:
    def __init__(self, lite: AxiLiteMaster, hw):
        self.lite = lite
        self.off = {r.name: r.offset for r in regmap.registers(hw)}

    async def read(self, name: str) -> int:
        return int.from_bytes((await self.lite.read(self.off[name], 4)).data, "little")

    async def read64(self, name: str) -> int:
        lo = await self.read(f"{name}_LO")
        return lo | (await self.read(f"{name}_HI")) << 32

    async def write(self, name: str, value: int) -> None:
        await self.lite.write(self.off[name], int(value).to_bytes(4, "little"))


def status_mask(name: str) -> int:
    return next(f.mask for f in regmap.STATUS_FIELDS if f.name == name)


class Bench:
    def __init__(self, dut, hw, case: dict, seed: int):
        self.dut, self.hw, self.case = dut, hw, case
        rng = random.Random(seed)
        image = case["image"]
        size = 1 << (BASE + len(image)).bit_length()
        clk, rst = dut.aclk, dut.aresetn
        self.ram = FaultyRam(
            AxiReadBus.from_prefix(dut, "m_axi"), clk, rst, reset_active_level=False, size=size
        )
        self.ram.write(BASE, image)
        self.ram.ar_channel.set_pause_generator(pauses(rng, 0.2))
        self.ram.r_channel.set_pause_generator(pauses(rng, 0.2))
        self.src = AxiStreamSource(
            AxiStreamBus.from_prefix(dut, "s_axis"), clk, rst, reset_active_level=False
        )
        self.sink = AxiStreamSink(
            AxiStreamBus.from_prefix(dut, "m_axis"), clk, rst, reset_active_level=False
        )
        self.src.set_pause_generator(pauses(rng, 0.2))
        self.sink.set_pause_generator(pauses(rng, 0.2))
        lite = AxiLiteMaster(
            AxiLiteBus.from_prefix(dut, "s_axil"), clk, rst, reset_active_level=False
        )
        self.regs = Regs(lite, hw)

    async def reset(self) -> None:
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 8)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    async def start(self, frames: int, task: int) -> None:
        r = self.regs
        await r.write("DRAM_BASE_LO", BASE & 0xFFFFFFFF)
        await r.write("DRAM_BASE_HI", BASE >> 32)
        await r.write("FRAMES", frames)
        await r.write("TASK", task)
        await r.write("CTRL", regmap.CTRL_FIELDS[0].mask)  # ap_start

    async def send(self, beats: np.ndarray) -> None:
        frame = AxiStreamFrame(beat_bytes(beats))
        await self.src.send(frame)
        await self.src.wait()

    def tokens(self, frame) -> np.ndarray:
        a, bits = self.hw.arith, self.hw.streams.token_bits
        raw = np.frombuffer(bytes(frame.tdata), np.uint8).astype(np.int64)
        if bits == 16:
            raw = raw[0::2] | (raw[1::2] << 8)
        vals = np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw)
        return vals.reshape(a.tokens, a.embed_dim)

    async def expect_tokens(self, i: int, want: np.ndarray, cycles: int) -> None:
        frame = await with_timeout(self.sink.recv(), cycles * 10, "ns")
        got = self.tokens(frame)
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)
            n, d = bad[0]
            raise AssertionError(
                f"frame {i}: {len(bad)} output elements differ; first at token"
                f" {n}, column {d}: rtl {got[n, d]}, golden {want[n, d]}"
            )

    async def expect_drop(self, i: int, bit: str, dropped: int, cycles: int) -> None:
        for _ in range(cycles // 200):
            await ClockCycles(self.dut.aclk, 200)
            if await self.regs.read("FRAMES_DROPPED") == dropped:
                break
        else:
            raise AssertionError(f"frame {i}: never dropped (expected STATUS.{bit})")
        status = await self.regs.read("STATUS")
        assert status & status_mask(bit), f"frame {i}: STATUS 0x{status:x} lacks {bit}"
        await self.regs.write("STATUS", status)  # write 1 to clear
        assert await self.regs.read("STATUS") == 0, "STATUS bits did not clear"


class Tracer:
    """Compares the RTL's activation memories with the program interpreter after every
    instruction of one frame, and names the first instruction where they part ways."""

    def __init__(self, dut, hw, case: dict, frame: dict):
        self.dut, self.hw, self.labels = dut, hw, case["labels"]
        interp = Interpreter(case["image"], hw)
        patches = receive(frame["beats"], hw).patches
        self.insns = interp.insns
        self.snaps = (
            {b: m.bufs[b].copy() for b in written(i)}
            for i, m in zip(interp.insns, interp.steps(patches, frame["task"]), strict=True)
        )
        self.error: str | None = None
        self.checked = 0

    def read(self, buf: Buf) -> np.ndarray:
        spec = getattr(self.hw.buffers, buf.buffer_name)
        rows, cols = spec.shape
        lanes, wpr = self.hw.streams.act_lanes, row_words(self.hw, buf)
        mem = getattr(self.dut.core.mem, f"mem_{buf.buffer_name}")
        out = np.zeros((rows, wpr * lanes), np.int64)
        mask = (1 << spec.bits) - 1
        for r in range(rows):
            for w in range(wpr):
                word = int(mem[r * wpr + w].value)
                for lane in range(lanes):
                    v = (word >> (lane * spec.bits)) & mask
                    if spec.signed and v >> (spec.bits - 1):
                        v -= 1 << spec.bits
                    out[r, w * lanes + lane] = v
        return out[:, :cols]

    async def run(self) -> None:
        pc = self.dut.core.pc
        last = 0
        for snap in self.snaps:
            while int(pc.value) == last:
                await RisingEdge(self.dut.aclk)
            self.checked = last + 1
            for buf, want in snap.items():
                got = self.read(buf)
                if not np.array_equal(got, want):
                    bad = np.argwhere(got != want)
                    r, c = bad[0]
                    self.error = (
                        f"RTL and interpreter part ways at instruction {last}"
                        f" ({self.labels[last]}: {self.insns[last]}): {len(bad)}"
                        f" elements of {buf.name} differ, first [{r}, {c}]: rtl"
                        f" {got[r, c]}, interpreter {want[r, c]}; column {c}: rtl"
                        f" {got[:, c].tolist()}, interpreter {want[:, c].tolist()}"
                    )
                    return
            last += 1


@cocotb.test()
async def top_frames(dut):
    """Frames of the case in order: good frames bit-exact, malformed ones dropped with their
    bit, a task switch between back-to-back good frames, then the counters."""
    hw, seed = bench_params()
    case = load_case(os.environ["EVH_CASE"])
    dut._log.info(f"seed {seed}: {len(case['frames'])} frames of {hw.spec_name}")
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    b = Bench(dut, hw, case, seed)
    await b.reset()
    frames = case["frames"]
    await b.start(len(frames), frames[0]["task"])
    budget = int(case["cycles_per_frame"])
    dropped = ok = 0
    tracer = Tracer(dut, hw, case, frames[0])
    cocotb.start_soon(tracer.run())
    for i, f in enumerate(frames):
        await b.regs.write("TASK", f["task"])
        b.ram.bad = set(BASE + x for x in f.get("bad_bytes", ()))
        await b.send(f["beats"])
        if f["drop"]:
            dropped += 1
            await b.expect_drop(i, f["drop"], dropped, budget)
        else:
            ok += 1
            try:
                await b.expect_tokens(i, f["tokens"], budget)
            except AssertionError as e:
                raise AssertionError(
                    f"{e}; {tracer.error or 'the trace of frame 0 agreed'}"
                ) from None
        b.ram.bad = set()
        dut._log.info(f"frame {i} ({f['name']}): {'dropped: ' + f['drop'] if f['drop'] else 'ok'}")
    await check_counters(b, ok, dropped)


async def check_counters(b: Bench, ok: int, dropped: int) -> None:
    r = b.regs
    for _ in range(100):
        if (await r.read("CTRL")) & 0x4:  # ap_idle
            break
        await ClockCycles(b.dut.aclk, 10)
    assert await r.read("FRAMES_OK") == ok
    assert await r.read("FRAMES_DROPPED") == dropped
    counters = {
        u: (await r.read64(f"{u.upper()}_BUSY"), await r.read64(f"{u.upper()}_STALL"))
        for u in regmap.COUNTED_UNITS
    }
    total, frame = await r.read64("CYCLES"), await r.read64("FRAME_CYCLES")
    b.dut._log.info(f"CYCLES {total}, FRAME_CYCLES {frame}, busy/stall {counters}")
    assert 0 < frame < total
    assert all(0 < busy < total for busy, _ in counters.values()), counters
    assert await r.read("SPEC_ID") == b.hw.hash32


async def wait_pc(b: Bench, low: int, cycles: int) -> None:
    """Until the sequencer runs instruction ``low`` or later (``dbg_pc``, 1-based)."""
    for _ in range(cycles):
        await RisingEdge(b.dut.aclk)
        if int(b.dut.dbg_pc.value) >= low:
            return
    raise AssertionError(f"dbg_pc never reached {low} in {cycles} cycles")


async def expect_idle(b: Bench, what: str) -> None:
    """CTRL shows ap_idle, and still does 2,000 cycles later (no run started behind it)."""
    idle = regmap.CTRL_FIELDS[2].mask
    for _ in range(100):
        if (await b.regs.read("CTRL")) & idle:
            break
        await ClockCycles(b.dut.aclk, 50)
    else:
        raise AssertionError(f"{what}: never idle")
    await ClockCycles(b.dut.aclk, 2000)
    ctrl = await b.regs.read("CTRL")
    assert ctrl & idle, f"{what}: CTRL 0x{ctrl:x} left idle without an ap_start"


@cocotb.test()
async def top_restart(dut):
    """ap_start while busy is ignored; reset in the middle of a frame's program (reads in
    flight) and in the middle of its pixels recovers: the next run is bit-exact."""
    hw, seed = bench_params()
    case = load_case(os.environ["EVH_CASE"])
    good = [f for f in case["frames"] if not f["drop"]][:2]
    budget, half = int(case["cycles_per_frame"]), max(2, len(case["labels"]) // 2)
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    b = Bench(dut, hw, case, seed)
    ap_start = regmap.CTRL_FIELDS[0].mask

    # A run of two frames, with ap_start written while the first program runs and between
    # the frames: both frames come out exact, and the run ends after exactly two frames.
    await b.reset()
    await b.start(2, good[0]["task"])
    await b.send(good[0]["beats"])
    await wait_pc(b, half, budget)
    await b.regs.write("CTRL", ap_start)
    await b.expect_tokens(0, good[0]["tokens"], budget)
    await b.regs.write("CTRL", ap_start)
    await b.regs.write("TASK", good[1]["task"])
    await b.send(good[1]["beats"])
    await b.expect_tokens(1, good[1]["tokens"], budget)
    await expect_idle(b, "after a run of 2 frames with ap_start written while busy")
    assert (await b.regs.read("FRAMES_OK"), await b.regs.read("FRAMES_DROPPED")) == (2, 0)

    # Reset halfway through a program, DRAM reads in flight.
    await b.start(0, good[1]["task"])
    await b.send(good[1]["beats"])
    await wait_pc(b, half, budget)
    dut._log.info(f"reset at pc {int(dut.dbg_pc.value)}, ARVALID {int(dut.m_axi_arvalid.value)}")
    await b.reset()
    b.sink.clear()
    await expect_idle(b, "after a reset mid-program")

    # Reset halfway through a frame's pixels.
    await b.start(0, good[0]["task"])
    beats = good[0]["beats"]
    await b.src.send(AxiStreamFrame(beat_bytes(beats)))
    while b.src.queue_occupancy_bytes > beats[:, :-1].size // 2:
        await RisingEdge(dut.aclk)
    await b.reset()
    b.src.clear()
    b.sink.clear()

    # The next run after the resets: exact, counters and STATUS from zero.
    await b.start(1, good[0]["task"])
    await b.send(beats)
    await b.expect_tokens(2, good[0]["tokens"], budget)
    await expect_idle(b, "after the run that follows the resets")
    got = [await b.regs.read(n) for n in ("FRAMES_OK", "FRAMES_DROPPED", "STATUS")]
    assert got == [1, 0, 0], f"FRAMES_OK, FRAMES_DROPPED, STATUS after the resets: {got}"
