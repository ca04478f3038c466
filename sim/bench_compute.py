"""cocotb bench of rtl.compute_unit.ComputeUnit against edgevit_hw.core.arithmetic, bit for bit.

Tiles of random length K with random epilogue modes, plus named corner cases (saturation at
both ends, extreme operands, exact rounding halves, GELU beyond its table, m = 0, K = 1 tiles
back to back, exact requantization ties with positive and negative accumulators at shifts
beyond 1, residuals that saturate exactly at and just past both bounds). Every stream is
driven/consumed with random idle and stall cycles.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from edgevit_hw.rtl.layouts import (
    EpiClamp,
    EpiMode,
    Widths,
    epi_cfg_layout,
    epi_out_layout,
    epi_side_layout,
    mac_op_layout,
    pack,
)
from edgevit_hw.sim.harness import Driver, Scoreboard, Sink, bench_params, start, wait_done

from edgevit_hw.core import arithmetic as A

SIDE = (EpiMode.RESIDUAL, EpiMode.MOE_ACC, EpiMode.MOE_RES)


def _rint(rng: np.random.Generator, bits: int, size) -> np.ndarray:
    return rng.integers(A.smin(bits), A.smax(bits) + 1, size=size, dtype=np.int64)


class TileGen:
    """Random tiles and their expected output rows (the Python contract)."""

    def __init__(self, hw, rng: np.random.Generator):
        self.hw, self.a, self.w, self.rng = hw, hw.arith, Widths.of(hw), rng
        self.clamps = self.w.clamp_bits(hw)
        self.ties = np.zeros(2, np.int64)  # exact ties generated (positive, negative t)

    def operands(self, k: int, corner: str, x_bits: int):
        w, rng = self.w, self.rng
        x = _rint(rng, x_bits, (k, w.rows))
        wt = _rint(rng, w.w, (k, w.cols))
        if corner == "extreme":
            x = rng.choice([A.smin(x_bits), A.smax(x_bits)], size=(k, w.rows))
            wt = rng.choice([A.smin(w.w), A.smax(w.w)], size=(k, w.cols))
        if corner == "ties":  # products are multiples of 2^grain
            gx, gw = self.tie_grains(x_bits)
            x, wt = (x >> gx) << gx, (wt >> gw) << gw
        return x, wt

    def tie_grains(self, x_bits: int) -> tuple[int, int]:
        """Low operand bits cleared in the "ties" corner (x, w)."""
        return max(x_bits - 3, 0), max(self.w.w - 3, 0)

    def tie_terms(self, grain: int, bias, gw, part):
        """Bias an odd multiple of 2^(grain-1) (so is every acc + bias), gate weights odd and
        partial sums multiples of 2^grain: every requantized value is an odd multiple of
        2^(grain-1), an exact tie once multiplied by ``m = odd * 2^h`` and shifted by
        ``grain + h``."""
        half, top = 1 << (grain - 1), 1 << self.a.gate_weight_bits
        bias = np.where(bias >= 0, ((bias >> grain) << grain) - half,
                        ((bias >> grain) << grain) + half)  # fmt: skip
        gw = np.where((gw | 1) > top, top - 1, gw | 1)
        return bias, gw, (part >> grain) << grain

    def tie_scale(self, t, grain: int, out_bits: int):
        """Per column ``m = odd * 2^h`` and ``s = grain + h`` (every t * m an exact tie), h
        chosen as :meth:`shifts` would to keep most outputs inside ``out_bits``."""
        mult = self.w.mult
        odd = 2 * self.rng.integers(0, 1 << min(5, mult - 2), size=t.shape[1]) + 1
        h = self.shifts(t, odd, out_bits, "") - grain
        h = np.clip(h, 0, mult - np.array([int(v).bit_length() for v in odd]))
        t_m = t * (odd << h)
        ties = (t_m & ((1 << (grain + h)) - 1)) == (1 << (grain + h - 1))
        self.ties += [int((ties & (t > 0)).sum()), int((ties & (t < 0)).sum())]
        return odd << h, grain + h

    def saturating_res(self, t, m, s):
        """Residuals that put ``res + requant(t)`` at the bound, one inside it, or one and two
        past it, at both ends."""
        a = self.a
        r = A.requant(t, m, s, a.res_bits)
        d = self.rng.integers(-1, 3, size=r.shape)
        res = np.where(r >= 0, A.smax(a.res_bits) - r + d, A.smin(a.res_bits) - r - d)
        return A.clamp(res, a.res_bits)

    def shifts(self, a: np.ndarray, m: np.ndarray, out_bits: int, corner: str) -> np.ndarray:
        mag = np.abs(a * m).max(axis=0) + 1
        target = np.array([int(v).bit_length() for v in mag]) - out_bits
        jitter = self.rng.integers(-2, 5, size=target.shape)
        if corner == "saturate":
            jitter = jitter - 8
        return np.clip(target + jitter, 1, 62)

    def tile(self, mode: EpiMode, k: int, corner: str = ""):
        """``(ops, cfg, sides, rows)`` for one tile."""
        a, w, rng = self.a, self.w, self.rng
        moe = mode in (EpiMode.MOE_ACC, EpiMode.MOE_RES)
        # MoE modes carry expert_fc2 accumulators (act_bits inputs): keep to its bounds
        acc_bits = a.linears.expert_fc2.acc_bits if moe else w.acc
        x, wt = self.operands(k, corner, a.act_bits if moe else w.x)
        acc = x.T @ wt  # [R, C], exact int64
        bias = _rint(rng, acc_bits - 1, w.cols) >> rng.integers(0, acc_bits - 2)
        res = _rint(rng, a.res_bits, (w.rows, w.cols))
        gw = rng.integers(0, (1 << a.gate_weight_bits) + 1, size=w.rows)
        part = _rint(rng, w.moe_acc - 2, (w.rows, w.cols)) >> rng.integers(0, w.moe_acc - 3)
        grain = sum(self.tie_grains(a.act_bits if moe else w.x))
        if corner == "ties":
            bias, gw, part = self.tie_terms(grain, bias, gw, part)
        val = acc + bias
        t = part + A.moe_combine(val[:, None, :], gw[:, None]) if moe else val
        m = rng.integers(0, 1 << w.mult, size=w.cols)
        if corner == "m0":
            m[: w.cols // 2] = 0
        clamp = EpiClamp(int(rng.integers(0, len(EpiClamp))))
        out_bits = {EpiMode.GELU: a.gelu_in_bits}.get(mode, self.clamps[clamp])
        if mode in (EpiMode.RESIDUAL, EpiMode.MOE_RES):
            out_bits = a.res_bits
        s = self.shifts(t, m, out_bits, corner)
        if corner == "half":
            m[:], s[:] = 1, 1  # every odd value is an exact half: round half up
        if corner == "ties":
            m, s = self.tie_scale(t, grain, out_bits)
        if corner == "res_sat":
            res = self.saturating_res(t, m, s)
        m2 = int(rng.integers(1, 1 << w.mult))
        s2 = int(np.clip(a.gelu_in_bits + w.mult - a.act_bits + rng.integers(-4, 3), 1, 62))
        y = self.expected(mode, clamp, t, m, s, m2, s2, res)
        ops = [
            {"x": list(x[i]), "w": list(wt[i]), "first": int(i == 0), "last": int(i == k - 1)}
            for i in range(k)
        ]
        cfg = {"mode": int(mode), "clamp": int(clamp), "bias": list(bias), "m": list(m),
               "s": list(s), "m2": m2, "s2": s2}  # fmt: skip
        sides = []
        if mode in SIDE:
            sides = [{"res": list(res[r]), "part": list(part[r]), "gw": int(gw[r])}
                     for r in range(w.rows)]  # fmt: skip
        rows = [{"y": [int(v) for v in y[r]], "last": int(r == w.rows - 1)}
                for r in range(w.rows)]  # fmt: skip
        return ops, cfg, sides, rows

    def expected(self, mode, clamp, t, m, s, m2, s2, res):
        a = self.a
        if mode in (EpiMode.ACC, EpiMode.MOE_ACC):
            return t
        if mode == EpiMode.REQUANT:
            return A.requant(t, m, s, self.clamps[clamp])
        if mode == EpiMode.GELU:
            u = A.requant(t, m, s, a.gelu_in_bits)
            return A.requant(A.gelu_q(u, a.gelu_frac_bits), m2, s2, a.act_bits)
        return A.residual_add(res, t, m, s, a.res_bits)


CORNERS = ["extreme", "saturate", "half", "m0", "ties", "res_sat"]


def make_tiles(hw, rng: np.random.Generator, n_random: int):
    """Named corner tiles for every mode, K = 1 tiles back to back, then random tiles."""
    gen, r = TileGen(hw, rng), hw.mac_rows
    plan = [(md, int(rng.integers(1, r + 3)), c) for c in CORNERS for md in EpiMode]
    plan += [(EpiMode.REQUANT, 1, ""), (EpiMode.ACC, 1, ""), (EpiMode.GELU, 1, "")]
    plan += [(EpiMode(int(rng.integers(0, 6))), int(rng.integers(1, 2 * r)), "")
             for _ in range(n_random)]  # fmt: skip
    tiles = [(p, gen.tile(*p)) for p in plan]
    assert gen.ties.min() > 0, f"ties generated (positive, negative): {gen.ties.tolist()}"
    return tiles


@cocotb.test()
async def compute_unit_bit_exact(dut):
    hw, seed = bench_params()
    dut._log.info(f"seed {seed}, mac {hw.mac_rows}x{hw.mac_cols}, spec {hw.spec_name}")
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    tiles = make_tiles(hw, rng, int(os.environ.get("EVH_TILES", "24")))
    ops = [b for _, t in tiles for b in t[0]]
    cfgs = [t[1] for _, t in tiles]
    sides = [b for _, t in tiles for b in t[2]]
    rows = [b for _, t in tiles for b in t[3]]
    names = [f"tile {i} {p[0].name} K={p[1]} {p[2]}" for i, (p, _) in enumerate(tiles)]
    board = Scoreboard("out", rows, lambda i: names[i // hw.mac_rows])
    await start(dut)
    drivers = [
        Driver(dut, "ops", mac_op_layout(hw), prng, 0.2),
        Driver(dut, "cfg", epi_cfg_layout(hw), prng, 0.3),
        Driver(dut, "side", epi_side_layout(hw), prng, 0.3),
    ]
    sink = Sink(dut, "out", epi_out_layout(hw), prng, 0.3)
    for d, beats in zip(drivers, (ops, cfgs, sides), strict=True):
        cocotb.start_soon(d.send(beats))
    cocotb.start_soon(sink.run(board.on_beat))
    await wait_done(dut, [board], max_cycles=50 * len(ops) + 2000)
    dut._log.info(f"{len(rows)} rows of {len(tiles)} tiles bit-exact")


@cocotb.test()
async def compute_unit_throughput(dut):
    """No idles, no stalls: cycles per tile of K operand beats (K = EVH_K)."""
    hw, seed = bench_params()
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    k, n = int(os.environ.get("EVH_K", str(hw.mac_rows))), int(os.environ.get("EVH_NT", "8"))
    gen = TileGen(hw, rng)
    tiles = [gen.tile(EpiMode.REQUANT, k) for _ in range(n)]
    board = Scoreboard("out", [b for t in tiles for b in t[3]])
    await start(dut)
    ops = Driver(dut, "ops", mac_op_layout(hw), prng, 0.0)
    cfg = Driver(dut, "cfg", epi_cfg_layout(hw), prng, 0.0)
    sink = Sink(dut, "out", epi_out_layout(hw), prng, 0.0)
    cocotb.start_soon(ops.send([b for t in tiles for b in t[0]]))
    cocotb.start_soon(cfg.send([t[1] for t in tiles]))
    cocotb.start_soon(sink.run(board.on_beat))
    cycles = await wait_done(dut, [board], max_cycles=100 * k * n + 1000, extra=0)
    _report({"unit": "compute_unit", "k": k, "tiles": n, "cycles": cycles, "seed": seed,
             "cycles_per_tile": cycles / n})  # fmt: skip


def _report(d: dict) -> None:
    path = os.environ.get("EVH_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(d, fh)


@cocotb.test()
async def compute_unit_free_run(dut):
    """Simulator speed: every MAC busy every cycle (one operand beat per cycle, accumulating,
    nothing checked), EVH_CYCLES cycles timed with the wall clock."""
    import time

    from cocotb.triggers import ClockCycles

    hw, seed = bench_params()
    rng = np.random.default_rng(seed)
    n = int(os.environ.get("EVH_CYCLES", "200000"))
    w = Widths.of(hw)
    beat = {"x": list(_rint(rng, w.x, w.rows)), "w": list(_rint(rng, w.w, w.cols)),
            "first": 0, "last": 0}  # fmt: skip
    await start(dut)
    dut.ops__payload.value = pack(mac_op_layout(hw), beat)
    dut.ops__valid.value, dut.out__ready.value = 1, 1
    t0 = time.perf_counter()
    await ClockCycles(dut.clk, n)
    secs = time.perf_counter() - t0
    _report({"unit": "compute_unit", "cycles": n, "seconds": secs, "cycles_per_s": n / secs})
