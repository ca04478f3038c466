"""Shared cocotb harness: clock/reset, randomized valid/ready stream drivers and sinks, and an
in-order scoreboard that also checks beat counts (nothing lost, duplicated or reordered).

Streams follow ``amaranth.lib.stream`` as exported: ports ``<name>__payload``,
``<name>__valid``, ``<name>__ready``; a beat moves on a rising edge where valid and ready are
both high. Payloads are packed/unpacked with :mod:`rtl.layouts`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from edgevit_hw.rtl.layouts import pack, unpack
from edgevit_hw.rtl.params import read_hw_json


def bench_params():
    """``(hw, seed)`` from the environment set by sim.runner.run_bench."""
    hw = read_hw_json(os.environ["EVH_DERIVED"])
    seed = int(os.environ.get("EVH_SEED", "1"))
    return hw, seed


async def start(dut, cycles: int = 4) -> None:
    """Start a 10 ns clock and hold ``rst`` for ``cycles`` cycles."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def port(dut, stream: str, sig: str):
    return getattr(dut, f"{stream}__{sig}")


class Driver:
    """Drives beats on a sink port of the DUT, idling a random number of cycles before a beat
    with probability ``idle``. ``sent`` counts accepted beats."""

    def __init__(self, dut, name: str, layout, rng: random.Random, idle: float = 0.3):
        self.dut, self.name, self.layout, self.rng, self.idle = dut, name, layout, rng, idle
        self.valid, self.payload = port(dut, name, "valid"), port(dut, name, "payload")
        self.ready = port(dut, name, "ready")
        self.valid.value = 0
        self.sent = 0

    async def send(self, beats: Sequence[dict]) -> None:
        clk = self.dut.clk
        for beat in beats:
            while self.rng.random() < self.idle:
                self.valid.value = 0
                await RisingEdge(clk)
            self.payload.value = pack(self.layout, beat)
            self.valid.value = 1
            while True:
                await ReadOnly()
                fired = bool(self.ready.value)
                await RisingEdge(clk)
                if fired:
                    break
            self.valid.value = 0
            self.sent += 1


class Sink:
    """Accepts beats from a source port with ready high with probability ``1 - stall``;
    calls ``on_beat(unpacked)`` for each."""

    def __init__(self, dut, name: str, layout, rng: random.Random, stall: float = 0.3):
        self.dut, self.name, self.layout, self.rng, self.stall = dut, name, layout, rng, stall
        self.valid, self.payload = port(dut, name, "valid"), port(dut, name, "payload")
        self.ready = port(dut, name, "ready")
        self.ready.value = 0
        self.beats: list = []

    async def run(self, on_beat: Callable[[dict], None] | None = None) -> None:
        clk = self.dut.clk
        while True:
            self.ready.value = int(self.rng.random() >= self.stall)
            await ReadOnly()
            if self.valid.value and self.ready.value:
                beat = unpack(self.layout, self.payload.value.to_unsigned())
                self.beats.append(beat)
                if on_beat:
                    on_beat(beat)
            await RisingEdge(clk)


class Scoreboard:
    """Expected beats in order; ``check`` compares every received beat bit for bit and fails
    on a mismatch, an extra beat, or (``final``) a missing one."""

    def __init__(self, name: str, expected: Sequence, describe: Callable[[int], str] = str):
        self.name, self.expected, self.describe = name, list(expected), describe
        self.got = 0
        self.errors: list[str] = []

    def on_beat(self, beat) -> None:
        i = self.got
        self.got += 1
        if i >= len(self.expected):
            self.errors.append(f"{self.name}: extra beat #{i}: {beat}")
        elif beat != self.expected[i]:
            self.errors.append(
                f"{self.name}: beat #{i} ({self.describe(i)}) got {beat}, want {self.expected[i]}"
            )

    @property
    def done(self) -> bool:
        return self.got >= len(self.expected)

    def final(self) -> None:
        assert not self.errors, "\n".join(self.errors[:10])
        assert self.got == len(self.expected), (
            f"{self.name}: received {self.got} beats, expected {len(self.expected)}"
        )


async def wait_done(dut, boards: Sequence[Scoreboard], max_cycles: int, extra: int = 20) -> int:
    """Run until every scoreboard has all its beats (then ``extra`` cycles to catch
    duplicates); fails after ``max_cycles``. Returns the cycle count."""
    n = 0
    while not all(b.done for b in boards):
        await RisingEdge(dut.clk)
        n += 1
        if any(b.errors for b in boards):
            break
        assert n < max_cycles, f"timeout after {n} cycles: " + ", ".join(
            f"{b.name} {b.got}/{len(b.expected)}" for b in boards
        )
    for _ in range(extra):
        await RisingEdge(dut.clk)
    for b in boards:
        b.final()
    return n
