"""Wide event counters whose carry chains stay short (logic depth, benchmarks/synth_rtl.py).

:func:`wide_counter` counts the cycles an ``inc`` bit is 1 in ``width`` bits, exactly: its
value (``hi:lo``) is the count of the events of every earlier cycle since the last ``clear``,
in every cycle (no carry pending, so a read never needs a correction). It is two halves of at
most :data:`SPLIT` bits: the low half increments when ``inc`` is 1; the high half increments in
the same cycle when the low half wraps (``inc`` and the low half all ones, a LUT tree), so each
incrementer chains at most ``SPLIT`` bits and ``inc`` drives only clock enables, not a carry
chain.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value

SPLIT = 32  # bits per half: a 32-bit incrementer is 8 CARRY4 and an inverter


def wide_counter(m: Module, width: int, inc: Value, clear: Value, name: str) -> Value:
    """A ``width``-bit count of the cycles with ``inc`` = 1; ``clear`` (priority) zeroes it
    (an event in the cycle of the clear is lost). ``name`` names the halves."""
    lo = Signal(min(width, SPLIT), name=f"{name}_lo")
    _count(m, lo, inc, clear)
    if width <= SPLIT:
        return lo
    hi = Signal(width - SPLIT, name=f"{name}_hi")
    _count(m, hi, inc & lo.all(), clear)
    return Cat(lo, hi)


def _count(m: Module, cnt: Signal, inc: Value, clear: Value) -> None:
    with m.If(clear):
        m.d.sync += cnt.eq(0)
    with m.Elif(inc):
        m.d.sync += cnt.eq(cnt + 1)
