"""The RTL side of the contract test: harnesses that run the Amaranth pieces the units use
(rtl.hwmath, rtl.rsqrt, rtl.divider, and the functions exposed by the units) in
``amaranth.sim`` on many inputs at once.

Every harness packs ``lanes`` records into one wide input signal and reads one wide output
signal, so a whole batch costs one simulator call (a few microseconds per record).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from amaranth.hdl import Cat, Module, Shape, Signal, Value
from amaranth.sim import Simulator

MAX_WAIT = 10_000  # cycles a sequential unit may take for one batch before the test fails


def _fields(sig: Signal, lane: int, shapes: Sequence[Shape]) -> list[Value]:
    off = lane * sum(s.width for s in shapes)
    out = []
    for s in shapes:
        v = sig[off : off + s.width]
        out.append(v.as_signed() if s.signed else v)
        off += s.width
    return out


def _outputs(m: Module, values: Sequence, shapes: Sequence[Shape]) -> list[Signal]:
    if len(values) != len(shapes):
        raise ValueError(f"{len(values)} outputs for {len(shapes)} shapes")
    sigs = [Signal(s) for s in shapes]
    m.d.comb += [sig.eq(v) for sig, v in zip(sigs, values, strict=True)]
    return sigs


def _pack(rows: np.ndarray, shapes: Sequence[Shape]) -> int:
    v, off = 0, 0
    for row in rows:
        for x, s in zip(row, shapes, strict=True):
            v |= (int(x) & ((1 << s.width) - 1)) << off
            off += s.width
    return v


def _unpack(v: int, n: int, shapes: Sequence[Shape]) -> np.ndarray:
    out = np.empty((n, len(shapes)), np.int64)
    off = 0
    for i in range(n):
        for j, s in enumerate(shapes):
            x = (v >> off) & ((1 << s.width) - 1)
            if s.signed and x >> (s.width - 1):
                x -= 1 << s.width
            out[i, j] = x
            off += s.width
    return out


class Harness:
    """``lanes`` copies of a piece of logic between one packed input and one packed output.

    ``build(m, fields, lane)`` adds one lane's logic to ``m`` and returns its outputs
    (Values, in the order of ``out_shapes``)."""

    def __init__(self, build: Callable, in_shapes, out_shapes, lanes: int):
        self.in_shapes = [Shape.cast(s) for s in in_shapes]
        self.out_shapes = [Shape.cast(s) for s in out_shapes]
        self.lanes = lanes
        self.m = m = Module()
        iw = sum(s.width for s in self.in_shapes)
        self.inp = Signal(iw * lanes)
        outs = []
        for lane in range(lanes):
            vals = build(m, _fields(self.inp, lane, self.in_shapes), lane)
            outs += _outputs(m, vals, self.out_shapes)
        self.out = Signal(sum(len(o) for o in outs))
        m.d.comb += self.out.eq(Cat(*outs))

    def pack(self, rows: np.ndarray) -> int:
        return _pack(rows, self.in_shapes)

    def read(self, ctx) -> np.ndarray:
        return _unpack(ctx.get(self.out), self.lanes, self.out_shapes)

    def run(self, rows: np.ndarray, step: Callable, clocked: bool = False) -> np.ndarray:
        """``await step(ctx, chunk)`` per batch of ``lanes`` rows (the last one padded with
        copies of its last row) returns the results of every lane [lanes, outs]."""
        rows = np.asarray(rows, np.int64)
        sim = Simulator(self.m)
        if clocked:
            sim.add_clock(1e-6)
        got: list[np.ndarray] = []

        async def bench(ctx):
            for start in range(0, len(rows), self.lanes):
                chunk = rows[start : start + self.lanes]
                pad = np.repeat(chunk[-1:], self.lanes - len(chunk), axis=0)
                got.append((await step(ctx, np.concatenate([chunk, pad])))[: len(chunk)])

        sim.add_testbench(bench)
        sim.run()
        return np.concatenate(got) if got else np.zeros((0, len(self.out_shapes)), np.int64)


async def _wait(ctx, sig: Signal) -> None:
    for _ in range(MAX_WAIT):
        if ctx.get(sig):
            return
        await ctx.tick()
    raise AssertionError(f"{sig.name} not raised within {MAX_WAIT} cycles")


def comb_eval(build, in_shapes, out_shapes, rows, lanes: int = 128) -> np.ndarray:
    """Combinational logic ``build`` on every row of ``rows``."""
    h = Harness(build, in_shapes, out_shapes, lanes)

    async def step(ctx, chunk):
        ctx.set(h.inp, h.pack(chunk))
        return h.read(ctx)

    return h.run(rows, step)


def pipe_eval(build, in_shapes, out_shapes, rows, latency: int, lanes: int = 64) -> np.ndarray:
    """Pipelined logic (registers always enabled): results ``latency`` cycles after inputs."""
    h = Harness(build, in_shapes, out_shapes, lanes)

    async def step(ctx, chunk):
        ctx.set(h.inp, h.pack(chunk))
        await ctx.tick().repeat(latency)
        return h.read(ctx)

    return h.run(rows, step, clocked=True)


def start_done_eval(build, in_shapes, out_shapes, rows, lanes: int = 32) -> np.ndarray:
    """Units with ``start`` / ``done`` members: ``build`` returns ``(unit, outputs)``; all lanes
    start together, the results are read in the cycle after every lane's ``done``."""
    start, dones = Signal(name="start"), []

    def lane_build(m, fields, lane):
        unit, outs = build(m, fields, lane)
        m.submodules[f"unit{lane}"] = unit
        m.d.comb += unit.start.eq(start)
        dones.append(unit.done)
        return outs

    h = Harness(lane_build, in_shapes, out_shapes, lanes)
    all_done = Signal(name="all_done")
    h.m.d.comb += all_done.eq(Cat(*dones).all())

    async def step(ctx, chunk):
        ctx.set(h.inp, h.pack(chunk))
        ctx.set(start, 1)
        await ctx.tick()
        ctx.set(start, 0)
        await _wait(ctx, all_done)
        await ctx.tick()
        return h.read(ctx)

    return h.run(rows, step, clocked=True)


def keyed_eval(build, key_shapes, out_shapes, rows, keys: int, drain: int, lanes: int = 32):
    """Row pipelines fed one key per cycle: ``build(m, ctl, fields, lane)`` with
    ``ctl = (valid, first, last)`` shared by the lanes; each row of ``rows`` holds ``keys``
    records of ``key_shapes`` back to back. Results are read ``drain`` cycles after the last
    key."""
    ctl = (Signal(name="valid"), Signal(name="first"), Signal(name="last"))
    h = Harness(lambda m, f, lane: build(m, ctl, f, lane), key_shapes, out_shapes, lanes)
    width = len(key_shapes)

    async def step(ctx, chunk):
        ctx.set(ctl[0], 1)
        for j in range(keys):
            ctx.set(h.inp, h.pack(chunk[:, j * width : (j + 1) * width]))
            ctx.set(ctl[1], int(j == 0))
            ctx.set(ctl[2], int(j == keys - 1))
            await ctx.tick()
        ctx.set(ctl[0], 0)
        await ctx.tick().repeat(drain)
        return h.read(ctx)

    return h.run(rows, step, clocked=True)


def stream_eval(build, in_shapes, out_shapes, rows, lanes: int = 16) -> np.ndarray:
    """Stream units (``inp`` / ``out`` members, one output beat per input beat): ``build``
    returns ``(unit, outputs)`` after wiring the fields into ``unit.inp.payload``; the lanes
    take one beat together and are read when every lane's output is valid."""
    valid, ready, oks = Signal(name="in_valid"), Signal(name="out_ready"), []

    def lane_build(m, fields, lane):
        unit, outs = build(m, fields, lane)
        m.submodules[f"unit{lane}"] = unit
        m.d.comb += [unit.inp.valid.eq(valid), unit.out.ready.eq(ready)]
        oks.append((unit.inp.ready, unit.out.valid))
        return outs

    h = Harness(lane_build, in_shapes, out_shapes, lanes)
    all_in, all_out = Signal(name="all_in_ready"), Signal(name="all_out_valid")
    h.m.d.comb += [all_in.eq(Cat(*(i for i, _ in oks)).all()),
                   all_out.eq(Cat(*(o for _, o in oks)).all())]  # fmt: skip

    async def step(ctx, chunk):
        await _wait(ctx, all_in)
        ctx.set(h.inp, h.pack(chunk))
        ctx.set(valid, 1)
        await ctx.tick()
        ctx.set(valid, 0)
        await _wait(ctx, all_out)
        got = h.read(ctx)
        ctx.set(ready, 1)
        await ctx.tick()
        ctx.set(ready, 0)
        return got

    return h.run(rows, step, clocked=True)
