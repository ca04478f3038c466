"""cocotb bench of rtl.attention.AttentionEngine against the softmax contract, bit for bit.

Expected row outputs: ``t = requant(q . K^T, m, s, logit_bits)``,
``online_softmax_ref(t, V)`` (the key-by-key definition), ``normalize_attention``.
Blocks: random q/k/v, all-equal scores (k = 0), largest / smallest scores (extreme q and k),
ascending and descending logits (rescale on every key / never); random idle and stall cycles.
``attention_rescale_boundaries``: exact logits (identity logit requantization, two q
coordinates per row) whose running max grows exactly at the rescale grid (``t`` a multiple of
2^F, or one past it) on every key, jumps past the largest rescale shift, or grows at the last
key only; every row p of the skew meets every pattern.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from edgevit_hw.rtl.layouts import attn_kv_layout, attn_out_layout, attn_q_layout
from edgevit_hw.sim.bench_compute import _report, _rint
from edgevit_hw.sim.harness import Driver, Scoreboard, Sink, bench_params, start, wait_done

from edgevit_hw.core import arithmetic as A


def make_block(hw, rng: np.random.Generator, kind: str):
    a = hw.arith
    n, dh, b = a.tokens, a.head_dim, a.act_bits
    q = _rint(rng, b, (hw.attn_rows, dh))
    k = _rint(rng, b, (n, dh))
    v = _rint(rng, b, (n, dh))
    if kind == "equal_scores":
        k[:] = 0
    elif kind == "extreme":
        q = rng.choice([A.smin(b), A.smax(b)], size=q.shape)
        k = np.where(rng.random(k.shape) < 0.5, A.smin(b), A.smax(b))
        k[: n // 2] = np.where(q[0] > 0, A.smax(b), A.smin(b))  # largest score for row 0
        k[n // 2 :] = np.where(q[0] > 0, A.smin(b), A.smax(b))  # smallest
        v = rng.choice([A.smin(b), A.smax(b)], size=v.shape)
    elif kind in ("ascending", "descending"):
        scale = np.arange(n) - n // 2
        k = np.clip(np.outer(scale if kind == "ascending" else -scale, np.ones(dh)) * 3,
                    A.smin(b), A.smax(b)).astype(np.int64)  # fmt: skip
        q = np.abs(q)
    return q, k, v


def expected(hw, q, k, v, m, s):
    a = hw.arith
    t = A.requant(A.matmul_exact(q, k, a.act_bits, a.act_bits), m, s, a.logit_bits)
    out = []
    for row in t:
        acc, ell = A.online_softmax_ref(row, v, a.exp_frac_bits, a.exp_out_bits)
        out.append(A.normalize_attention(acc, ell, a.act_bits))
    return out


def logit_scale(hw, rng, saturate: bool | None):
    """(m, s): logits of a typical random score span a few integer log2 units, or (saturate)
    the extreme scores clamp at both ends of logit_bits."""
    a = hw.arith
    if saturate is None:  # identity: t = q . k exactly
        return 2, 1
    m = int(rng.integers(1 << (a.mult_bits - 1), 1 << a.mult_bits))
    typical = (a.score_bits - 3) + a.mult_bits - (a.exp_frac_bits + 3)
    s = (a.score_bits + a.mult_bits - a.logit_bits - 2) if saturate else typical
    return m, int(np.clip(s, 1, 62))


async def _run(dut, hw, kinds, rng, prng, saturate: bool, idle: float, stall: float) -> int:
    m, s = logit_scale(hw, rng, saturate)
    dut.logit_m.value, dut.logit_s.value = m, s
    dut._log.info(f"logit m={m} s={s}, blocks {kinds}")
    qs, kvs, outs, names = [], [], [], []
    for i, kind in enumerate(kinds):
        q, k, v = boundary_block(hw, rng, i) if kind == "boundary" else make_block(hw, rng, kind)
        qs += [{"q": [int(x) for x in r]} for r in q]
        n = len(k)
        kvs += [{"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]],
                 "last": int(j == n - 1)} for j in range(n)]  # fmt: skip
        outs += [{"o": [int(x) for x in o]} for o in expected(hw, q, k, v, m, s)]
        names += [f"{kind} row {p}" for p in range(hw.attn_rows)]
    board = Scoreboard("out", outs, lambda i: names[i])
    await start(dut)
    cocotb.start_soon(Driver(dut, "q", attn_q_layout(hw), prng, idle).send(qs))
    cocotb.start_soon(Driver(dut, "kv", attn_kv_layout(hw), prng, idle).send(kvs))
    cocotb.start_soon(Sink(dut, "out", attn_out_layout(hw), prng, stall).run(board.on_beat))
    return await wait_done(dut, [board], 20 * (len(kvs) + len(qs)) + 1000, extra=5)


KINDS = ["equal_scores", "extreme", "ascending", "descending"]


def boundary_logits(hw, kind: int) -> np.ndarray:
    """One row's N logits of pattern ``kind`` (see BOUNDARY_KINDS), within +-(2^F * 30)."""
    a = hw.arith
    n, g = a.tokens, 1 << a.exp_frac_bits
    j = np.arange(n)
    c = j - n // 2  # grid steps, one per key
    pats = [
        c * g,  # on the grid: the max grows by exactly 1 at every key
        c * g + 1,  # one past the grid: ceil moves up by 1 at every key
        (j // 2 - n // 4) * g + (j % 2),  # grid, +1 (grows by 1), next grid (ties the max)
        np.where(j % 3 == 2, 30 * g, -30 * g),  # jumps beyond every rescale shift
        np.where(j == n - 1, 2 * g + 1, -(j % 4) * g),  # grows at the last key only
    ]
    return pats[kind % len(pats)]


BOUNDARY_KINDS = 5


def boundary_block(hw, rng: np.random.Generator, block: int):
    """q, k, v of a block whose row p sees ``boundary_logits(hw, block + p)`` exactly:
    q_p = (C, 1) on coordinates (2p, 2p + 1), k_j = (coarse, fine) with coarse * C + fine
    the logit (the engine's logit requantization is the identity, m = 2, s = 1)."""
    a = hw.arith
    n, dh, b, P = a.tokens, a.head_dim, a.act_bits, hw.attn_rows
    assert dh >= 2 * P, "two q coordinates per row"
    big = 1 << (b - 2)
    q = np.zeros((P, dh), np.int64)
    k = np.zeros((n, dh), np.int64)
    for p in range(P):
        t = boundary_logits(hw, block + p)
        q[p, 2 * p : 2 * p + 2] = big, 1
        k[:, 2 * p] = np.round(t / big).astype(np.int64)
        k[:, 2 * p + 1] = t - big * k[:, 2 * p]
    assert np.abs(k).max() <= A.smax(b)
    v = _rint(rng, b, (n, dh))
    v[::2, 0] = A.smin(b)  # negative sums: the floors of every rescale
    return q, k, v


@cocotb.test()
async def attention_bit_exact(dut):
    hw, seed = bench_params()
    dut._log.info(f"seed {seed}, P={hw.attn_rows}, dh={hw.arith.head_dim}, N={hw.arith.tokens}")
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    n = int(os.environ.get("EVH_BLOCKS", "3"))
    await _run(dut, hw, KINDS + ["random"] * n, rng, prng, False, 0.3, 0.3)


@cocotb.test()
async def attention_rescale_boundaries(dut):
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed + 2), random.Random(seed + 2)
    blocks = ["boundary"] * BOUNDARY_KINDS  # block i, row p: pattern i + p
    await _run(dut, hw, blocks, rng, prng, None, 0.3, 0.3)


@cocotb.test()
async def attention_saturated_logits(dut):
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed + 1), random.Random(seed + 1)
    await _run(dut, hw, ["extreme", "random", "equal_scores"], rng, prng, True, 0.3, 0.3)


@cocotb.test()
async def attention_throughput(dut):
    hw, seed = bench_params()
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    blocks = 4
    cycles = await _run(dut, hw, ["random"] * blocks, rng, prng, False, 0.0, 0.0)
    _report({"unit": "attention", "P": hw.attn_rows, "N": hw.arith.tokens, "blocks": blocks,
             "cycles": cycles, "cycles_per_block": cycles / blocks,
             "cycles_per_row": cycles / (blocks * hw.attn_rows)})  # fmt: skip
