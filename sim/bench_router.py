"""cocotb benches of rtl.router.MoeRouter (arithmetic.gate_q) and
rtl.expert_queues.ExpertQueueBuilder (golden.expert_queues), bit for bit.

Router tokens: random logits, ties at the top (lower index must win), all-equal logits (at
zero, at random values, on the max's rescale grid and one past it, at both ends of the logit
range), ties at the k-th place, largest / smallest logits, one dominant expert. Queue frames: random
routings plus a frame where every token picks the same experts (others stay empty).
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from edgevit_hw.rtl.layouts import queue_out_layout, router_in_layout, router_out_layout
from edgevit_hw.sim.bench_compute import _report, _rint
from edgevit_hw.sim.harness import Driver, Scoreboard, Sink, bench_params, start, wait_done

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.golden import expert_queues


def make_logits(hw, rng: np.random.Generator, n_random: int):
    a = hw.arith
    E, bits = a.experts, a.logit_bits
    lo, hi = A.smin(bits), A.smax(bits)
    tie = rng.integers(-2000, 2000, size=E)
    tie[[1, E - 1]] = tie.max() + 7  # two-way tie at the top
    g = 1 << a.exp_frac_bits
    kth = np.full(E, -3 * g)
    kth[0], kth[E // 2 :] = 5 * g, g  # one clear winner, the rest tie for the second place
    named = [
        ("tie_top", tie),
        ("tie_kth", kth),
        ("all_equal", np.full(E, int(rng.integers(lo, hi)))),
        ("all_equal_zero", np.zeros(E, np.int64)),
        ("all_equal_grid", np.full(E, -7 * g)),
        ("all_equal_grid_plus1", np.full(E, 3 * g + 1)),
        ("all_equal_minus1", np.full(E, -1)),
        ("all_max", np.full(E, hi)),
        ("all_min", np.full(E, lo)),
        ("max_and_min", np.where(np.arange(E) % 2, hi, lo)),
        ("dominant", np.where(np.arange(E) == E // 2, 4000, -4000)),
    ]
    for i in range(n_random):
        spread = int(rng.integers(4, bits))
        named.append((f"random{i}", _rint(rng, spread, E)))
    return named


@cocotb.test()
async def router_bit_exact(dut):
    hw, seed = bench_params()
    a = hw.arith
    dut._log.info(f"seed {seed}, E={a.experts}, k={a.top_k}")
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    named = make_logits(hw, rng, int(os.environ.get("EVH_TOKENS", "24")))
    t = np.stack([x for _, x in named])
    idx, w = A.gate_q(t, a.top_k, a.exp_frac_bits, a.exp_out_bits, a.gate_weight_bits)
    n = len(named)
    ins = [{"t": [int(v) for v in t[i]], "last": int(i == n - 1)} for i in range(n)]
    outs = [{"idx": [int(v) for v in idx[i]], "w": [int(v) for v in w[i]],
             "last": int(i == n - 1)} for i in range(n)]  # fmt: skip
    board = Scoreboard("out", outs, lambda i: named[i][0])
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", router_in_layout(hw), prng, 0.3).send(ins))
    cocotb.start_soon(Sink(dut, "out", router_out_layout(hw), prng, 0.3).run(board.on_beat))
    await wait_done(dut, [board], 200 * n + 500)


@cocotb.test()
async def router_throughput(dut):
    hw, seed = bench_params()
    a = hw.arith
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    n = 16
    t = _rint(rng, 12, (n, a.experts))
    idx, w = A.gate_q(t, a.top_k, a.exp_frac_bits, a.exp_out_bits, a.gate_weight_bits)
    ins = [{"t": [int(v) for v in t[i]], "last": 0} for i in range(n)]
    outs = [{"idx": [int(v) for v in idx[i]], "w": [int(v) for v in w[i]], "last": 0}
            for i in range(n)]  # fmt: skip
    board = Scoreboard("out", outs)
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", router_in_layout(hw), prng, 0.0).send(ins))
    cocotb.start_soon(Sink(dut, "out", router_out_layout(hw), prng, 0.0).run(board.on_beat))
    cycles = await wait_done(dut, [board], 200 * n + 500, extra=0)
    _report({"unit": "router", "tokens": n, "cycles": cycles, "cycles_per_token": cycles / n})


def routing(hw, rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """[n, k] distinct expert indices per token."""
    a = hw.arith
    if kind == "same":
        return np.tile(np.arange(a.top_k)[::-1], (n, 1))
    return np.stack([rng.permutation(a.experts)[: a.top_k] for _ in range(n)])


def queue_beats(hw, idx: np.ndarray):
    beats = []
    for e, q in enumerate(expert_queues(idx, hw.arith.experts)):
        beats += [{"expert": e, "token": int(tk), "slot": int(sl), "last": 0} for tk, sl in q]
    beats[-1]["last"] = 1
    return beats


@cocotb.test()
async def expert_queues_bit_exact(dut):
    hw, seed = bench_params()
    a = hw.arith
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    frames = [routing(hw, rng, k, a.tokens) for k in ("random", "same", "random")]
    frames.append(routing(hw, rng, "random", max(1, a.tokens // 3)))  # short frame
    ins, outs = [], []
    for idx in frames:
        n = len(idx)
        ins += [{"idx": [int(v) for v in idx[i]], "w": [0] * a.top_k, "last": int(i == n - 1)}
                for i in range(n)]  # fmt: skip
        outs += queue_beats(hw, idx)
    board = Scoreboard("out", outs)
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", router_out_layout(hw), prng, 0.3).send(ins))
    cocotb.start_soon(Sink(dut, "out", queue_out_layout(hw), prng, 0.3).run(board.on_beat))
    await wait_done(dut, [board], 20 * len(outs) + 20 * len(ins) + 500)
    assert int(dut.err.value) == 0


@cocotb.test()
async def expert_queues_overlong_frame(dut):
    """A frame of tokens + 2 beats: err is set, the extra beats are dropped, no hang."""
    hw, seed = bench_params()
    a = hw.arith
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    idx = routing(hw, rng, "random", a.tokens + 2)
    n = len(idx)
    ins = [{"idx": [int(v) for v in idx[i]], "w": [0] * a.top_k, "last": int(i == n - 1)}
           for i in range(n)]  # fmt: skip
    board = Scoreboard("out", queue_beats(hw, idx[: a.tokens]))
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", router_out_layout(hw), prng, 0.2).send(ins))
    cocotb.start_soon(Sink(dut, "out", queue_out_layout(hw), prng, 0.2).run(board.on_beat))
    await wait_done(dut, [board], 20 * n * a.top_k + 500)
    assert int(dut.err.value) == 1


@cocotb.test()
async def expert_queues_throughput(dut):
    """One full frame (tokens x top_k entries), no idles or stalls."""
    hw, seed = bench_params()
    a = hw.arith
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    idx = routing(hw, rng, "random", a.tokens)
    n = len(idx)
    ins = [{"idx": [int(v) for v in idx[i]], "w": [0] * a.top_k, "last": int(i == n - 1)}
           for i in range(n)]  # fmt: skip
    board = Scoreboard("out", queue_beats(hw, idx))
    await start(dut)
    cocotb.start_soon(Driver(dut, "inp", router_out_layout(hw), prng, 0.0).send(ins))
    cocotb.start_soon(Sink(dut, "out", queue_out_layout(hw), prng, 0.0).run(board.on_beat))
    cycles = await wait_done(dut, [board], 20 * n * a.top_k + 500, extra=0)
    _report({"unit": "expert_queues", "tokens": n, "entries": n * a.top_k, "cycles": cycles,
             "cycles_per_token": cycles / n})  # fmt: skip
