"""cocotb bench of rtl.layernorm.LayerNormUnit against arithmetic.layernorm_q, bit for bit.

Rows: random full-range and small-range residuals, a zero-variance row, extreme rows
(alternating min/max, all max, all min), a single outlier; random idle/stall on both streams.
``layernorm_power_of_two``: rows whose variance V (with a per-row eps) is exactly a power of two
at every normalization width p, the last V whose normalized operand is exactly 2^30 (the
reciprocal-square-root search's equality boundary) and 4^j - 1, with a centered value whose
normalization is an exact rounding tie wherever one exists; gamma 1, beta -n + offset and an
identity requantization make every bit of n visible at the output.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
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


def expected(hw, rows, g, b, eps, m, s):
    a = hw.arith
    return [
        A.layernorm_q(x[None], g, b, eps, a.ln_norm_frac_bits, m, s, a.act_bits)[0] for _, x in rows
    ]


async def _run(dut, hw, rows, rng, prng, idle: float, stall: float) -> int:
    a = hw.arith
    dim = a.embed_dim
    g = _rint(rng, a.ln_gamma_bits, dim)
    b = _rint(rng, a.bias_bits, dim) >> int(rng.integers(0, a.bias_bits - 2))
    eps, m, s = config(hw, rng)
    want = expected(hw, rows, g, b, eps, m, s)
    beats = [{"x": int(x[i]), "g": int(g[i]), "b": int(b[i]), "last": int(i == dim - 1)}
             for _, x in rows for i in range(dim)]  # fmt: skip
    outs = [{"y": int(y[i]), "last": int(i == dim - 1)} for y in want for i in range(dim)]
    board = Scoreboard("out", outs, lambda i: rows[i // dim][0])
    dut.eps.value, dut.m.value, dut.s.value = eps, m, s
    await start(dut)
    drv = Driver(dut, "inp", ln_in_layout(hw), prng, idle)
    sink = Sink(dut, "out", ln_out_layout(hw), prng, stall)
    cocotb.start_soon(drv.send(beats))
    cocotb.start_soon(sink.run(board.on_beat))
    cycles = await wait_done(dut, [board], 20 * len(beats) + 200 * len(rows), extra=5)
    assert int(dut.err.value) == 0, "err set on well-formed rows"
    return cycles


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


async def _eps_per_row(dut, board, dim: int, eps: list[int]) -> None:
    """Sets eps of row r + 1 once row r's first output beat has arrived: row r read its eps
    before its first output, row r + 1 reads it only after row r's last."""
    for r in range(1, len(eps)):
        while board.got <= (r - 1) * dim:
            await RisingEdge(dut.clk)
        dut.eps.value = eps[r]


@cocotb.test()
async def layernorm_power_of_two(dut):
    hw, seed = bench_params()
    a = hw.arith
    dim, nf = a.embed_dim, a.ln_norm_frac_bits
    rng, prng = np.random.default_rng(seed + 3), random.Random(seed + 3)
    rows = power_rows(hw)
    m, s = 1 << (a.mult_bits - 1), a.mult_bits - 1  # y = n * g + b exactly
    beats, outs, ties = [], [], 0
    for _, x, eps in rows:
        d = dim * x - x.sum()
        r, sh = A.rsqrt_q(np.array([(d * d).sum() + eps]))
        n = A.ln_normalize(d, r, sh, nf)
        e = int(sh[0]) - nf
        ties += int(np.any((d * r) % (1 << e) == 1 << (e - 1)))
        g, b = np.ones(dim, np.int64), rng.integers(-40, 41, dim) - n
        y = A.layernorm_q(x[None], g, b, eps, nf, m, s, a.act_bits)[0]
        beats += [{"x": int(x[i]), "g": 1, "b": int(b[i]), "last": int(i == dim - 1)}
                  for i in range(dim)]  # fmt: skip
        outs += [{"y": int(y[i]), "last": int(i == dim - 1)} for i in range(dim)]
    assert ties >= 2, f"only {ties} rows with an exact rounding tie"
    dut._log.info(f"{len(rows)} power-of-two rows, {ties} with an exact tie of n")
    board = Scoreboard("out", outs, lambda i: rows[i // dim][0])
    dut.eps.value, dut.m.value, dut.s.value = rows[0][2], m, s
    await start(dut)
    cocotb.start_soon(_eps_per_row(dut, board, dim, [e for _, _, e in rows]))
    cocotb.start_soon(Driver(dut, "inp", ln_in_layout(hw), prng, 0.2).send(beats))
    cocotb.start_soon(Sink(dut, "out", ln_out_layout(hw), prng, 0.2).run(board.on_beat))
    await wait_done(dut, [board], 20 * len(beats) + 200 * len(rows), extra=5)


@cocotb.test()
async def layernorm_bit_exact(dut):
    hw, seed = bench_params()
    dut._log.info(f"seed {seed}, D={hw.arith.embed_dim}, spec {hw.spec_name}")
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    rows = make_rows(hw, rng, int(os.environ.get("EVH_ROWS", "6")))
    await _run(dut, hw, rows, rng, prng, 0.3, 0.3)


@cocotb.test()
async def layernorm_throughput(dut):
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    rows = make_rows(hw, rng, 3)
    cycles = await _run(dut, hw, rows, rng, prng, 0.0, 0.0)
    _report({"unit": "layernorm", "rows": len(rows), "cycles": cycles,
             "cycles_per_row": cycles / len(rows), "dim": hw.arith.embed_dim})  # fmt: skip


@cocotb.test()
async def layernorm_malformed_row(dut):
    """A row cut short (``last`` two elements early) sets ``err``, still yields D beats (the
    unit never hangs), and the following well-formed row is bit-exact."""
    hw, seed = bench_params()
    a = hw.arith
    dim = a.embed_dim
    rng, prng = np.random.default_rng(seed + 7), random.Random(seed + 7)
    g = _rint(rng, a.ln_gamma_bits, dim)
    b = _rint(rng, a.bias_bits, dim) >> int(rng.integers(0, a.bias_bits - 2))
    eps, m, s = config(hw, rng)
    good = _rint(rng, a.res_bits, dim) >> 2
    want = A.layernorm_q(good[None], g, b, eps, a.ln_norm_frac_bits, m, s, a.act_bits)[0]
    short = [{"x": 1, "g": int(g[i]), "b": int(b[i]), "last": int(i == dim - 3)}
             for i in range(dim - 2)]  # fmt: skip
    beats = short + [{"x": int(good[i]), "g": int(g[i]), "b": int(b[i]),
                      "last": int(i == dim - 1)} for i in range(dim)]  # fmt: skip
    dut.eps.value, dut.m.value, dut.s.value = eps, m, s
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", ln_in_layout(hw), prng, 0.2).send(beats))
    sink = Sink(dut, "out", ln_out_layout(hw), prng, 0.2)
    cocotb.start_soon(sink.run())
    board = Scoreboard("out", [None] * dim + [{"y": int(want[i]), "last": int(i == dim - 1)}
                                              for i in range(dim)])  # fmt: skip
    for _ in range(40 * dim + 400):
        await RisingEdge(dut.clk)
        if len(sink.beats) >= 2 * dim:
            break
    assert int(dut.err.value) == 1, "err not set by a short row"
    assert len(sink.beats) == 2 * dim, f"{len(sink.beats)} beats, expected {2 * dim}"
    assert sink.beats[dim - 1]["last"] == 1, "the short row's D-th output must carry last"
    for i, beat in enumerate(sink.beats[dim:]):
        board.got = dim + i
        board.on_beat(beat)
    assert not board.errors, "\n".join(board.errors[:5])
