"""cocotb bench of rtl.layernorm.LayerNormUnit against arithmetic.layernorm_q, bit for bit.

A row is ``W = ceil(D / L)`` words of ``L`` lanes (``mask`` on a partial last word, ``last``
on the W-th); output lanes outside a word's mask are not compared. Gamma and beta are the same
for every row of a batch (the unit's contract). ``layernorm_bit_exact``: random full-range and
small-range residuals, a zero-variance row, extreme rows (alternating min/max, all max, all
min), a single outlier, random idle/stall on both streams; then the same rows with the largest
requantization shift (s = 62) and a few with the smallest (s = 1). ``layernorm_power_of_two``:
rows whose variance V (with a per-row eps, so each row runs alone) is exactly a power of two at
every normalization width p, the last V whose normalized operand is exactly 2^30 (the
reciprocal-square-root search's equality boundary) and 4^j - 1, with a centered value whose
normalization is an exact rounding tie wherever one exists; gamma 1, beta -n + offset and an
identity requantization make every bit of n visible at the output. ``layernorm_throughput``:
cycles from the first input word to the last output word, checked against the unit's
documented formula. ``layernorm_malformed_row``: a row cut short, an overlong row and a wrong
lane mask each set ``err``, still yield whole rows (the unit never hangs), and the next
well-formed row is bit-exact.
"""

from __future__ import annotations

import math
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from edgevit_hw.rtl.layernorm import FILL
from edgevit_hw.rtl.layouts import ln_in_layout, ln_out_layout
from edgevit_hw.sim.bench_compute import _report, _rint
from edgevit_hw.sim.harness import Driver, Scoreboard, Sink, bench_params, start, wait_done

from edgevit_hw.core import arithmetic as A


def make_rows(hw, rng: np.random.Generator, n_random: int):
    a = hw.arith
    dim, lo, hi = a.embed_dim, A.smin(a.res_bits), A.smax(a.res_bits)
    named = {
        "zero_variance": np.full(dim, int(rng.integers(lo, hi + 1))),
        "alternating_extremes": np.where(np.arange(dim) % 2, hi, lo),
        "all_max": np.full(dim, hi),
        "all_min": np.full(dim, lo),
        "outlier": np.where(np.arange(dim) == dim // 3, hi, 0),
    }
    rows = list(named.items())
    for i in range(n_random):
        shift = int(rng.integers(0, a.res_bits - 1))
        rows.append((f"random{i}", _rint(rng, a.res_bits, dim) >> shift))
    return rows


def config(hw, rng: np.random.Generator):
    """(eps, m, s) with s placing typical outputs inside the act range."""
    a = hw.arith
    eps = int(rng.integers(1, 1 << 20))
    m = int(rng.integers(1 << (a.mult_bits - 1), 1 << a.mult_bits))
    top = a.ln_norm_frac_bits + a.ln_gamma_bits - 1 + a.mult_bits
    s = int(np.clip(top - a.act_bits + rng.integers(-3, 3), 1, 62))
    return eps, m, s


class Words:
    """Row <-> beats of W words of L lanes."""

    def __init__(self, hw):
        self.dim, self.lanes = hw.arith.embed_dim, hw.streams.act_lanes
        self.n = math.ceil(self.dim / self.lanes)

    def mask(self, w: int) -> int:
        return (1 << min(self.lanes, self.dim - w * self.lanes)) - 1

    def lanes_of(self, v, w: int) -> list[int]:
        part = [int(t) for t in v[w * self.lanes : (w + 1) * self.lanes]]
        return part + [0] * (self.lanes - len(part))

    def beats(self, x, g, b) -> list[dict]:
        return [{"x": self.lanes_of(x, w), "g": self.lanes_of(g, w), "b": self.lanes_of(b, w),
                 "mask": self.mask(w), "last": int(w == self.n - 1)}
                for w in range(self.n)]  # fmt: skip

    def outs(self, y) -> list[dict]:
        return [{"y": self.lanes_of(y, w), "mask": self.mask(w), "last": int(w == self.n - 1)}
                for w in range(self.n)]  # fmt: skip

    @staticmethod
    def canon(beat: dict) -> dict:
        """The beat with lanes outside its mask zeroed (they are not compared)."""
        y = [v if beat["mask"] >> i & 1 else 0 for i, v in enumerate(beat["y"])]
        return {**beat, "y": y}


class Bench:
    """One DUT, one sink (ready randomized with ``stall``) whose beats go to the current
    batch's scoreboard; batches of rows run one after another."""

    def __init__(self, dut, hw, prng: random.Random, stall: float):
        self.dut, self.hw, self.prng, self.words = dut, hw, prng, Words(hw)
        self.board: Scoreboard | None = None
        self.sink = Sink(dut, "out", ln_out_layout(hw), prng, stall)
        cocotb.start_soon(self.sink.run(self._on_beat))

    def _on_beat(self, beat) -> None:
        if self.board is not None:
            self.board.on_beat(Words.canon(beat))

    async def batch(self, rows, g, b, eps: int, m: int, s: int, idle: float) -> int:
        """Sends ``rows`` [(name, x)] with one (g, b, eps, m, s) and waits for every output
        word; returns the cycles waited."""
        a, wd = self.hw.arith, self.words
        nf = a.ln_norm_frac_bits
        want = [A.layernorm_q(x[None], g, b, eps, nf, m, s, a.act_bits)[0] for _, x in rows]
        beats = [bt for _, x in rows for bt in wd.beats(x, g, b)]
        outs = [o for y in want for o in wd.outs(y)]
        self.board = Scoreboard("out", outs, lambda i: rows[i // wd.n][0])
        self.dut.eps.value, self.dut.m.value, self.dut.s.value = eps, m, s
        drv = Driver(self.dut, "inp", ln_in_layout(self.hw), self.prng, idle)
        cocotb.start_soon(drv.send(beats))
        return await wait_done(self.dut, [self.board], 20 * len(beats) + 200 * len(rows), extra=5)


def gamma_beta(hw, rng: np.random.Generator):
    a = hw.arith
    g = _rint(rng, a.ln_gamma_bits, a.embed_dim)
    b = _rint(rng, a.bias_bits, a.embed_dim) >> int(rng.integers(0, a.bias_bits - 2))
    return g, b


@cocotb.test()
async def layernorm_bit_exact(dut):
    hw, seed = bench_params()
    dut._log.info(f"seed {seed}, D={hw.arith.embed_dim}, L={Words(hw).lanes}, spec {hw.spec_name}")
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    rows = make_rows(hw, rng, int(os.environ.get("EVH_ROWS", "6")))
    g, b = gamma_beta(hw, rng)
    eps, m, s = config(hw, rng)
    await start(dut)
    bench = Bench(dut, hw, prng, 0.3)
    await bench.batch(rows, g, b, eps, m, s, 0.3)
    await bench.batch(rows, g, b, eps, m, 62, 0.3)
    await bench.batch(rows[:4], g, b, eps, m, 1, 0.3)
    assert int(dut.err.value) == 0, "err set on well-formed rows"


def _outlier(dim: int, v: int, nf: int, res_bits: int) -> int:
    """The outlier ``a`` of a row ``[a, 0, ..., 0]`` (``sum d^2 = a^2 D (D-1)``, which must stay
    below ``v``): preferably one whose centered value ``(D-1) a`` times ``r = 2^16`` is an exact
    rounding tie of the shift ``sh - NF`` (possible once ``sh - NF > 16``), else the largest."""
    r, sh = (int(x[0]) for x in A.rsqrt_q(np.array([v])))
    e = sh - nf
    lim = min(A.smax(res_bits), int(np.sqrt((v - 1) / (dim * (dim - 1)))))
    if r == 1 << 16 and e > 16:
        step = 1 << (e - 17)
        ties = [a for a in range(step, lim + 1, 2 * step) if ((dim - 1) * a * r) % (1 << e)
                == 1 << (e - 1)]  # fmt: skip
        if ties:
            return ties[-1]
    return lim


def power_rows(hw):
    """``(name, x, eps)``: V = 4^j, 2 * 4^j, 4^j - 1 and (p > 32) 4^j + 2^(p-32) - 1, for every
    j the row and eps ranges allow."""
    a = hw.arith
    dim, vmax = a.embed_dim, 1 << a.ln_var_bits
    rows = []
    for j in range(1, a.ln_var_bits // 2 + 1):
        p = 2 * j + 2
        cands = {"4^j": 1 << 2 * j, "2*4^j": 2 << 2 * j, "4^j-1": (1 << 2 * j) - 1}
        if p > 32:
            cands["4^j+edge"] = (1 << 2 * j) + (1 << (p - 32)) - 1
        for tag, v in cands.items():
            out = _outlier(dim, v, a.ln_norm_frac_bits, a.res_bits) if v < vmax else 0
            if out >= 1:
                x = np.where(np.arange(dim) == 0, out, 0)
                rows.append((f"V={tag} j={j}", x, v - out * out * dim * (dim - 1)))
    return rows


@cocotb.test()
async def layernorm_power_of_two(dut):
    hw, seed = bench_params()
    a = hw.arith
    dim, nf = a.embed_dim, a.ln_norm_frac_bits
    rng, prng = np.random.default_rng(seed + 3), random.Random(seed + 3)
    rows = power_rows(hw)
    m, s = 1 << (a.mult_bits - 1), a.mult_bits - 1  # y = n * g + b exactly
    await start(dut)
    bench = Bench(dut, hw, prng, 0.2)
    ties = 0
    for name, x, eps in rows:
        d = dim * x - x.sum()
        r, sh = A.rsqrt_q(np.array([(d * d).sum() + eps]))
        n = A.ln_normalize(d, r, sh, nf)
        e = int(sh[0]) - nf
        ties += int(np.any((d * r) % (1 << e) == 1 << (e - 1)))
        g, b = np.ones(dim, np.int64), rng.integers(-40, 41, dim) - n
        await bench.batch([(name, x)], g, b, eps, m, s, 0.2)
    assert ties >= 2, f"only {ties} rows with an exact rounding tie"
    dut._log.info(f"{len(rows)} power-of-two rows, {ties} with an exact tie of n")


async def _edges(dut, stream: str, log: list[int]) -> None:
    """Appends the cycle number of every handshake on ``stream``."""
    valid, ready = getattr(dut, f"{stream}__valid"), getattr(dut, f"{stream}__ready")
    n = 0
    while True:
        await ReadOnly()
        if valid.value and ready.value:
            log.append(n)
        await RisingEdge(dut.clk)
        n += 1


@cocotb.test()
async def layernorm_throughput(dut):
    """No idle, no stall: N rows take N*W + W + ceil(log2 L) + FILL cycles from the first input
    word to the last output word (rtl/layernorm.py), i.e. W cycles per row."""
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    rows = make_rows(hw, rng, int(os.environ.get("EVH_ROWS", "35")))
    g, b = gamma_beta(hw, rng)
    eps, m, s = config(hw, rng)
    await start(dut)
    ins, outs = [], []
    cocotb.start_soon(_edges(dut, "inp", ins))
    cocotb.start_soon(_edges(dut, "out", outs))
    bench = Bench(dut, hw, prng, 0.0)
    await bench.batch(rows, g, b, eps, m, s, 0.0)
    wd, lanes = bench.words, Words(hw).lanes
    n = len(rows)
    span = outs[-1] - ins[0] + 1
    per_row = (outs[-1] - outs[wd.n - 1]) / (n - 1)
    want = n * wd.n + wd.n + (lanes - 1).bit_length() + FILL
    dut._log.info(f"{n} rows of {wd.n} words: {span} cycles (formula {want}), "
                  f"{per_row} cycles per row")  # fmt: skip
    _report({"unit": "layernorm", "rows": n, "cycles": span, "cycles_per_row": per_row,
             "words_per_row": wd.n, "latency": outs[0] - ins[0] + 1, "dim": hw.arith.embed_dim,
             "lanes": lanes})  # fmt: skip
    assert per_row == wd.n and span == want, f"{span} cycles, the formula says {want}"


async def _reset(dut) -> None:
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def _malformed(dut, hw, bench: Bench, spoil, rows: int, rng) -> None:
    """Resets, sends a row spoiled by ``spoil(beats)`` (``rows`` rows as the unit cuts it)
    and a good row with the same gamma and beta: ``err`` set, ``rows`` whole rows out, then
    the good row bit-exact."""
    a, wd = hw.arith, bench.words
    g, b = gamma_beta(hw, rng)
    eps, m, s = config(hw, rng)
    bad = spoil(wd.beats(_rint(rng, a.res_bits, a.embed_dim) >> 3, g, b))
    good = _rint(rng, a.res_bits, a.embed_dim) >> 2
    want = A.layernorm_q(good[None], g, b, eps, a.ln_norm_frac_bits, m, s, a.act_bits)[0]
    await _reset(dut)
    board = Scoreboard("out", [None] * (rows * wd.n) + wd.outs(want))
    bench.sink.beats.clear()
    bench.board = None
    dut.eps.value, dut.m.value, dut.s.value = eps, m, s
    drv = Driver(dut, "inp", ln_in_layout(hw), bench.prng, 0.2)
    cocotb.start_soon(drv.send(bad + wd.beats(good, g, b)))
    total = (rows + 1) * wd.n
    for _ in range(100 * total + 400):
        await RisingEdge(dut.clk)
        if len(bench.sink.beats) >= total:
            break
    got = bench.sink.beats
    assert int(dut.err.value) == 1, "err not set by a malformed row"
    assert len(got) == total, f"{len(got)} words, expected {total}"
    assert [o["last"] for o in got] == [int(i % wd.n == wd.n - 1) for i in range(total)]
    for i, beat in enumerate(got[rows * wd.n :]):
        board.got = rows * wd.n + i
        board.on_beat(Words.canon(beat))
    assert not board.errors, "\n".join(board.errors[:5])


def _short(row: list[dict]) -> list[dict]:
    out = [dict(bt) for bt in row[:-1]]
    out[-1]["last"] = 1
    return out


def _long(row: list[dict]) -> list[dict]:
    return [dict(bt, last=0) for bt in row] + [dict(row[0], last=1)]


def _masked(row: list[dict]) -> list[dict]:
    out = [dict(bt) for bt in row]
    out[-1]["mask"] >>= 1
    return out


@cocotb.test()
async def layernorm_malformed_row(dut):
    """A row cut short (``last`` one word early, when W > 1), an overlong row (``last`` one
    word late: the unit closes a row at W words, the extra word is a row of its own) and a
    wrong mask (one lane dropped from a row's last word) each set ``err``."""
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed + 7), random.Random(seed + 7)
    await start(dut)
    bench = Bench(dut, hw, prng, 0.2)
    if bench.words.n > 1:
        await _malformed(dut, hw, bench, _short, 1, rng)
    await _malformed(dut, hw, bench, _long, 2, rng)
    await _malformed(dut, hw, bench, _masked, 1, rng)
