"""Small RTL pieces the units build on, in ``amaranth.sim``: the carry-select adder of the
attention state loop and the two ready-registering stream stages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.sim import Simulator
from contract_rtl import comb_eval
from edgevit_hw.rtl.hwmath import csel_add
from edgevit_hw.rtl.skid import ReadyCut, SkidBuffer


@pytest.mark.parametrize("width", [1, 2, 5, 8, 9])
@pytest.mark.parametrize("sa,sb", [(True, True), (True, False), (False, False)])
def test_csel_add_is_modular_sum(width, sa, sb):
    """Every pair of operands (3 and 4 bits narrower or wider than the sum) of either
    signedness: ``(a + b) mod 2^width``."""
    wa, wb = width + 1, max(width - 2, 1)
    sha = signed(wa) if sa else unsigned(wa)
    shb = signed(wb) if sb else unsigned(wb)

    def span(sh):
        lo = -(1 << (sh.width - 1)) if sh.signed else 0
        return range(lo, lo + (1 << sh.width))

    rows = np.array(list(itertools.product(span(sha), span(shb))), np.int64)
    got = comb_eval(lambda m, f, _: [csel_add(f[0], f[1], width)], [sha, shb],
                    [unsigned(width)], rows)  # fmt: skip
    want = (rows[:, 0] + rows[:, 1]) % (1 << width)
    assert np.array_equal(got[:, 0], want)


def _stream_run(cls, seed: int, n: int = 400):
    """Random ``i.valid`` and ``o.ready``; returns the beats out in order, the number of
    cycles where ``i.ready`` moved with ``o.ready`` in the same cycle (0 for a register), and
    the cycles from a beat's acceptance to its appearance on ``o``."""
    dut = cls(unsigned(16))
    m = Module()
    m.submodules.dut = dut
    rng = np.random.default_rng(seed)
    got, lat, moved = [], [], [0]

    async def bench(ctx):
        nxt, cycle, accepted = 0, 0, {}
        while len(got) < n and cycle < 20 * n:
            ctx.set(dut.i.valid, nxt < n and bool(rng.random() < 0.7))
            ctx.set(dut.i.payload, nxt)
            ctx.set(dut.o.ready, 0)
            r0 = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            moved[0] += ctx.get(dut.i.ready) != r0
            ctx.set(dut.o.ready, bool(rng.random() < 0.6))
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                accepted[nxt] = cycle
                nxt += 1
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
                lat.append(cycle - accepted[got[-1]])
            await ctx.tick()
            cycle += 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, moved[0], lat


@pytest.mark.parametrize("cls,first", [(SkidBuffer, 1), (ReadyCut, 0)])
@pytest.mark.parametrize("seed", [1, 2])
def test_stream_stage_keeps_order_and_registers_ready(cls, first, seed):
    got, moved, lat = _stream_run(cls, seed)
    assert got == list(range(len(got))) and len(got) == 400, "beats lost, repeated or reordered"
    assert moved == 0, "i.ready follows o.ready combinationally"
    assert min(lat) == first, f"latency {min(lat)}, expected {first}"
