"""Three-way contract test: every operation of :mod:`edgevit_hw.core.arithmetic` that hardware
implements, evaluated by the Python definition, the HLS C++ (hls/include/evh_arith.h through
tests/contract_driver.cpp, g++ with the C-simulation's flags) and the Amaranth RTL pieces the
units run (``amaranth.sim``), on exhaustive small domains plus every boundary
(tests/contract_cases.py). All three must agree bit for bit.

Two width sets: ``small`` (the smallest formats the spec allows, 4-bit activations, E = 4) and
``wide`` (the default formats, E = 16).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import contract_cases as C
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from contract_cpp import CppParams, build_driver, run
from contract_rtl import comb_eval, keyed_eval, pipe_eval, start_done_eval, stream_eval
from edgevit_hw.rtl import hwmath as H
from edgevit_hw.rtl.attention import exp2_q, exp2_rom, online_softmax_step
from edgevit_hw.rtl.divider import DivRound
from edgevit_hw.rtl.epilogue import gelu_q
from edgevit_hw.rtl.hwmath import reg
from edgevit_hw.rtl.router import MoeRouter, topk_lower_index
from edgevit_hw.rtl.rsqrt import RsqrtQ
from edgevit_hw.sim.specs import variant

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams

SMALL = dict(act_bits=4, weight_bits=4, residual_bits=8, bias_bits=16, mult_bits=8,
             exp_frac_bits=4, exp_out_bits=8, logit_bits=12, gelu_frac_bits=6, gelu_in_bits=10,
             gate_weight_bits=8, ln_norm_frac_bits=8, ln_gamma_bits=8)  # fmt: skip
WIDTHS = {"small": SMALL, "wide": {"moe": {"experts": 16}}}
REQUANT_BITS = (4, 5, 8, 16, 20, 32)
DV = 2  # value lanes of the softmax rows


@dataclass
class Impl:
    """One width set: its derived parameters and the compiled C++ driver, with native types
    (``exe``) and with ap_int of exactly the derived widths (``exe_ap``)."""

    name: str
    hw: HwParams
    cpp: CppParams
    exe: object
    exe_ap: object

    @property
    def a(self):
        return self.hw.arith

    def cpp_run(self, op: str, rows: np.ndarray, out_width: int) -> np.ndarray:
        """The C++ results; both builds must give the same (else the first difference)."""
        got = run(self.exe, self.cpp, op, rows, out_width)
        exact = run(self.exe_ap, self.cpp, op, rows, out_width)
        bad = np.flatnonzero((got != exact).any(axis=1))
        assert not len(bad), (
            f"{op}: C++ native and exact-width (ap_int) builds differ on {len(bad)} records;"
            f" first: output {bad[0]} native {got[bad[0]].tolist()} ap {exact[bad[0]].tolist()}"
        )
        return got


@functools.cache
def _impl(name: str) -> Impl:
    hw = variant(f"contract_{name}", **WIDTHS[name])
    cpp = CppParams.of(hw.arith, DV)
    return Impl(name, hw, cpp, build_driver(cpp), build_driver(cpp, ap=True))


@pytest.fixture(params=sorted(WIDTHS))
def impl(request) -> Impl:
    return _impl(request.param)


@pytest.fixture
def small() -> Impl:
    """For the operations whose widths are arguments (not template or unit parameters)."""
    return _impl("small")


@pytest.fixture
def rng(seed, request):
    s = seed + sum(request.node.name.encode())
    print(f"case seed={s}")
    return np.random.default_rng(s)


def check3(op: str, rows: np.ndarray, py, cpp, rtl) -> None:
    """C++ and RTL results equal the Python definition on every record."""
    py = np.asarray(py, np.int64).reshape(len(rows), -1)
    assert len(rows) > 0
    for name, got in (("C++", cpp), ("RTL", rtl)):
        got = np.asarray(got, np.int64).reshape(py.shape)
        bad = np.flatnonzero((got != py).any(axis=1))
        assert not len(bad), (
            f"{op}: {name} differs from Python on {len(bad)} of {len(rows)} records; first:"
            f" inputs {rows[bad[0]].tolist()} Python {py[bad[0]].tolist()}"
            f" {name} {got[bad[0]].tolist()}"
        )
    print(f"{op}: {len(rows)} records bit-exact in Python, C++ and RTL")


# ---------------------------------------------------------------------- requantization ----


def test_round_shift(small, rng):
    rows = C.round_shift_rows(rng)
    x, s = rows.T
    assert {0, 62} <= set(s.tolist())
    rtl = comb_eval(lambda m, f, _: [H.round_shift(f[0], f[1])],
                    [signed(63), unsigned(6)], [signed(63)], rows)  # fmt: skip
    check3("round_shift", rows, A.round_shift(x, s), small.cpp_run("round_shift", rows, 1), rtl)


def test_requant(small, rng):
    rows = C.requant_rows(rng, REQUANT_BITS)
    acc, m, s = rows.T
    prod = acc * m
    tie = (s > 0) & ((prod & ((1 << s) - 1)) == (1 << np.maximum(s - 1, 0)))
    assert np.any(tie & (acc > 0)) and np.any(tie & (acc < 0)) and np.any(tie & (s == 62))
    py = np.stack([A.requant(acc, m, s, b) for b in REQUANT_BITS], axis=1)
    for j, b in enumerate(REQUANT_BITS):  # saturation at both ends, and values just inside
        assert {A.smin(b), A.smax(b)} <= set(py[:, j].tolist())
    cpp = np.stack([small.cpp_run("requant", np.c_[rows, np.full(len(rows), b)], 1)[:, 0]
                    for b in REQUANT_BITS], axis=1)  # fmt: skip

    def build(m, f, _):
        r = H.requant_round(f[0], f[1], f[2])
        return [H.clamp(r, b) for b in REQUANT_BITS]

    outs = [signed(b) for b in REQUANT_BITS]
    rtl = comb_eval(build, [signed(63), unsigned(24), unsigned(6)], outs, rows, lanes=32)
    check3("requant", rows, py, cpp, rtl)


# ------------------------------------------------------------------------ exp2, GELU ----


def test_exp2_q(impl):
    a = impl.a
    F, O = a.exp_frac_bits, a.exp_out_bits
    rows = C.exp2_rows(F, O, a.logit_bits)
    py = A.exp2_q(rows[:, 0], F, O)
    assert py.max() == 1 << O and py.min() == 0

    def build(m, f, lane):
        return [exp2_q(m, exp2_rom(m, f"rom{lane}", F, O), f[0], F, O)]

    rtl = comb_eval(build, [signed(a.logit_bits + 2)], [unsigned(O + 1)], rows, lanes=32)
    check3("exp2_q", rows, py, impl.cpp_run("exp2_q", rows, 1), rtl)


def test_gelu_q(impl, rng):
    a = impl.a
    F, B = a.gelu_frac_bits, a.gelu_in_bits
    rows = C.gelu_rows(F, B, rng)
    py = A.gelu_q(rows[:, 0], F)

    def build(m, f, lane):
        return [gelu_q(m, 1, f[0], F, B, f"_{lane}")]

    rtl = pipe_eval(build, [signed(B)], [signed(B + 1)], rows, latency=2)
    check3("gelu_q", rows, py, impl.cpp_run("gelu_q", rows, 1), rtl)


# --------------------------------------------------------------------------- LayerNorm ----


def test_rsqrt_q(impl, rng):
    vb = impl.a.ln_var_bits
    rows = C.rsqrt_rows(vb, rng)
    v = rows[:, 0]
    m, sh = A.rsqrt_q(v)
    assert np.any(m == 1 << 16) and np.any((v & (v - 1)) == 0)  # the equality boundary
    py = np.stack([m, sh], axis=1)

    def build(mod, f, lane):
        unit = RsqrtQ(vb)
        mod.submodules[f"rsqrt{lane}"] = unit
        mod.d.comb += [unit.v.eq(f[0]), unit.start.eq(1)]
        return [unit.m, 15 + (unit.p >> 1)]

    rtl = pipe_eval(build, [unsigned(vb)], [unsigned(17), unsigned(7)], rows,
                    latency=RsqrtQ.LATENCY, lanes=32)  # fmt: skip
    check3("rsqrt_q", rows, py, impl.cpp_run("rsqrt_q", rows, 2), rtl)


def test_ln_normalize(impl, rng):
    a = impl.a
    nf = a.ln_norm_frac_bits
    rows = np.concatenate([C.ln_normalize_rows(a.ln_var_bits, rng),
                           C.ln_tie_rows(a.ln_var_bits, nf)])  # fmt: skip
    d, r, sh = rows.T
    e = sh - nf
    tie = ((d * r) & ((1 << e) - 1)) == (1 << (e - 1))
    assert np.any(tie & (d > 0)) and np.any(tie & (d < 0)) and np.any((r == 1 << 16) & tie)
    py = A.ln_normalize(d, r, sh, nf)
    cpp = impl.cpp_run("ln_normalize", np.c_[rows, np.full(len(rows), nf)], 1)

    def build(m, f, _):
        return [H.ln_normalize(f[0] * f[1], (f[2] - 15) << 1, nf)]

    rtl = comb_eval(build, [signed(40), unsigned(17), unsigned(7)], [signed(60)], rows)
    check3("ln_normalize", rows, py, cpp, rtl)


def test_layernorm_rows_python_equals_cpp(impl, rng):
    """The C++ layernorm_q (which calls rsqrt_q and ln_normalize) on whole rows; the RTL unit's
    rows are checked by tests/test_rtl_layernorm.py."""
    a = impl.a
    dim, lo, hi = a.embed_dim, A.smin(a.res_bits), A.smax(a.res_bits)
    x = rng.integers(lo, hi + 1, (300, dim)) >> rng.integers(0, a.res_bits, (300, 1))
    x[:3] = [np.full(dim, hi), np.full(dim, lo), np.where(np.arange(dim) % 2, hi, lo)]
    g = rng.integers(A.smin(a.ln_gamma_bits), A.smax(a.ln_gamma_bits) + 1, (300, dim))
    b = rng.integers(A.smin(a.bias_bits) + 1, A.smax(a.bias_bits) + 1, (300, dim))  # quantizer
    eps, m = rng.integers(1, 1 << 20, 300), rng.integers(1, 1 << a.mult_bits, 300)
    s = rng.integers(a.ln_norm_frac_bits, a.ln_norm_frac_bits + 20, 300)
    rows = np.c_[x, g, b, eps, m, s, np.full(300, a.act_bits)]
    py = [A.layernorm_q(x[i : i + 1], g[i], b[i], int(eps[i]), a.ln_norm_frac_bits, int(m[i]),
                        int(s[i]), a.act_bits)[0] for i in range(300)]  # fmt: skip
    got = impl.cpp_run("layernorm_q", rows, dim)
    assert np.array_equal(got, np.array(py)), "C++ layernorm_q differs from Python"


# ----------------------------------------------------------- division, softmax, gate ----


def _div_build(a_shape, b_bits, q, signed_out):
    def build(mod, f, _):
        unit = DivRound(2, a_shape, b_bits, q, signed_out)
        mod.d.comb += [unit.a[0].eq(f[0]), unit.a[1].eq(f[1]), unit.b.eq(f[2])]
        return unit, [unit.o[0], unit.o[1]]

    return build


def test_normalize_attention(impl, rng):
    """The attention engine's drain divider: o = clamp_b(div_round(acc, l))."""
    a = impl.a
    q, ab, bb = a.act_bits, a.softmax_acc_bits, a.softmax_sum_bits
    rows = C.div_rows(q, ab, 1 << (a.exp_out_bits - 1), a.tokens << a.exp_out_bits, rng)
    a0, a1, b = rows.T
    py = np.stack([A.normalize_attention(x[:, None], b, q)[:, 0] for x in (a0, a1)], axis=1)
    assert {A.smin(q), A.smax(q)} <= set(py.ravel().tolist())
    raw = np.stack([A.div_round(a0, b), A.div_round(a1, b)], axis=1)
    assert np.any((2 * a0) % (2 * b) == b), "no exact tie"
    cpp_n = np.stack([impl.cpp_run("normalize_attention", np.c_[x, b, np.full(len(b), q)], 1)[:, 0]
                      for x in (a0, a1)], axis=1)  # fmt: skip
    cpp_d = np.stack([impl.cpp_run("div_round", np.c_[x, b], 1)[:, 0] for x in (a0, a1)], axis=1)
    assert np.array_equal(cpp_d, raw), "C++ div_round differs from Python"
    shapes = [signed(ab), signed(ab), unsigned(bb)]
    rtl = start_done_eval(_div_build(signed(ab), bb, q, True), shapes, [signed(q)] * 2, rows)
    check3("normalize_attention", rows, py, cpp_n, rtl)


def test_gate_weight_division(impl, rng):
    """The router's divider: w = div_round(p * 2^W, L), unsigned, W + 1 quotient bits."""
    a = impl.a
    W, O = a.gate_weight_bits, a.exp_out_bits
    rows = C.gate_div_rows(W, O, a.experts, rng)
    a0, a1, b = rows.T
    py = np.stack([A.div_round(a0, b), A.div_round(a1, b)], axis=1)
    assert py.max() == 1 << W and np.any((2 * a0) % (2 * b) == b)
    cpp = np.stack([impl.cpp_run("div_round", np.c_[x, b], 1)[:, 0] for x in (a0, a1)], axis=1)
    ash = unsigned(O + 1 + W)
    rtl = start_done_eval(_div_build(ash, a.gate_sum_bits, W + 1, False),
                          [ash, ash, unsigned(a.gate_sum_bits)], [unsigned(W + 1)] * 2,
                          rows)  # fmt: skip
    check3("div_round (gate)", rows, py, cpp, rtl)


@pytest.mark.parametrize("keys", [1, 2, 3, 17])
def test_online_softmax(impl, rng, keys):
    a = impl.a
    assert keys <= a.tokens
    rows = C.softmax_rows(a.exp_frac_bits, a.logit_bits, keys, DV, a.act_bits, rng)
    recs = rows.reshape(len(rows), keys, 1 + DV)
    py = []
    for r in recs:
        acc, ell = A.online_softmax_ref(r[:, 0], r[:, 1:], a.exp_frac_bits, a.exp_out_bits)
        py.append([int(ell), *acc.tolist()])
    recs_cpp = np.c_[np.full(len(rows), keys), recs[:, :, 0], recs[:, :, 1:].reshape(len(rows), -1)]
    cpp = impl.cpp_run("online_softmax", recs_cpp.ravel(), 1 + DV)

    def build(m, ctl, f, lane):
        late = [reg(m, 1, reg(m, 1, v, f"v1_{lane}_{i}"), f"v2_{lane}_{i}")
                for i, v in enumerate(f[1:])]  # fmt: skip
        st = online_softmax_step(m, a, ctl, f[0], late, f"row{lane}")
        return [st["l"], *st["acc"]]

    shapes = [signed(a.logit_bits)] + [signed(a.act_bits)] * DV
    outs = [unsigned(a.softmax_sum_bits)] + [signed(a.softmax_acc_bits)] * DV
    rtl = keyed_eval(build, shapes, outs, rows, keys, drain=5)
    check3(f"online_softmax ({keys} keys)", rows, py, cpp, rtl)


def test_topk_lower_index(impl, rng):
    a = impl.a
    rows = C.topk_rows(a.experts, a.logit_bits, rng)
    py = A.topk_lower_index(rows, a.top_k)
    cpp = impl.cpp_run("topk_lower_index", rows, a.top_k)

    def build(m, f, _):
        return topk_lower_index(f, a.top_k, a.expert_index_bits)

    shapes = [signed(a.logit_bits)] * a.experts
    rtl = comb_eval(build, shapes, [unsigned(a.expert_index_bits)] * a.top_k, rows, lanes=8)
    check3("topk_lower_index", rows, py, cpp, rtl)


def test_gate_q(impl, rng):
    """The whole MoE router unit (rank, exp2 over every expert, dividers) against gate_q."""
    a = impl.a
    E, K = a.experts, a.top_k
    rows = C.gate_rows(E, a.exp_frac_bits, a.logit_bits, rng)
    idx, w = A.gate_q(rows, K, a.exp_frac_bits, a.exp_out_bits, a.gate_weight_bits)
    cpp = impl.cpp_run("gate_q", rows, 2 * K)

    def build(m, f, _):
        unit = MoeRouter(impl.hw)
        m.d.comb += [unit.inp.payload.t[e].eq(f[e]) for e in range(E)]
        out = unit.out.payload
        return unit, [*(out.idx[k] for k in range(K)), *(out.w[k] for k in range(K))]

    outs = [unsigned(a.expert_index_bits)] * K + [unsigned(a.gate_weight_bits + 1)] * K
    rtl = stream_eval(build, [signed(a.logit_bits)] * E, outs, rows)
    check3("gate_q", rows, np.c_[idx, w], cpp, rtl)


def test_cases_are_not_empty_of_boundaries():
    """The directed sets contain what their docstrings promise (guards the generators)."""
    v = np.array(C.power_boundaries(52), np.int64)
    assert (1 << 50) in v and (1 << 51) in v and ((1 << 50) + (1 << 20) - 1) in v
    m, _ = A.rsqrt_q(np.array([(1 << 50) + (1 << 20) - 1, (1 << 50) + (1 << 20)]))
    assert m.tolist()[0] == 1 << 16 and m.tolist()[1] < 1 << 16
