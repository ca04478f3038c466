"""The arithmetic contract against its stated formulas (exhaustive at small widths, Python ints
as the oracle) and its measured error bounds against float math."""

import math

import numpy as np
import pytest

from edgevit_hw.core import arithmetic as A


def py_round_shift(x: int, s: int) -> int:
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def py_clamp(x: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, x))


def test_requant_exhaustive_small_widths():
    acc = np.arange(-(1 << 9), 1 << 9)
    for m in (1, 3, 5, 7, 15):
        for s in range(1, 7):
            for bits in (4, 5, 8):
                want = [py_clamp(py_round_shift(int(a) * m, s), bits) for a in acc]
                assert A.requant(acc, m, s, bits).tolist() == want


def test_round_half_up_on_ties():
    assert A.round_shift(np.array([-3, -2, -1, 1, 2, 3]), 1).tolist() == [-1, -1, 0, 1, 1, 2]


def test_quantize_multiplier_accuracy():
    rng = np.random.default_rng(1)
    ratio = 10.0 ** rng.uniform(-9, 3, 2000)
    m, s = A.quantize_multiplier(ratio, 16)
    assert np.all((m >= 1 << 15) & (m < 1 << 16))
    assert np.max(np.abs(m / 2.0**s / ratio - 1)) <= 2.0**-16


def test_matmul_exact_equals_integer_matmul():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (7, 300))
    w = rng.integers(-128, 128, (5, 300))
    assert np.array_equal(A.matmul_exact(x, w, 8, 8), x @ w.T)
    x16 = rng.integers(-(1 << 15), 1 << 15, (3, 64))
    w16 = rng.integers(-(1 << 15), 1 << 15, (4, 64))  # bound 2^36 * 64: float path
    assert np.array_equal(A.matmul_exact(x16, w16, 16, 16), x16 @ w16.T)


@pytest.mark.parametrize("frac,out", [(4, 8), (6, 10), (8, 15)])
def test_exp2_exhaustive(frac, out):
    table = [math.floor(2.0 ** (out + f / (1 << frac)) + 0.5) for f in range(1 << frac)]
    xs = np.arange(-(out + 3) << frac, 1)
    want = []
    for x in xs.tolist():
        i = x >> frac
        want.append(table[x - (i << frac)] >> min(-i, out + 1))
    got = A.exp2_q(xs, frac, out)
    assert got.tolist() == want
    err = np.abs(got - 2.0**out * np.exp2(xs / (1 << frac)))
    assert err.max() < 1.0  # stated bound: below one output unit


def test_online_softmax_vectorized_equals_definition():
    rng = np.random.default_rng(3)
    for _ in range(60):
        n = int(rng.integers(1, 50))
        spread = int(rng.choice([10, 300, 5000]))
        t = rng.integers(-spread, spread, (4, n))
        v = rng.integers(-128, 128, (n, 6))
        acc, l = A.online_softmax(t, v, 8, 15)
        for r in range(4):
            acc_r, l_r = A.online_softmax_ref(t[r], v, 8, 15)
            assert l_r == l[r] and np.array_equal(acc_r, acc[r])


def test_online_softmax_all_equal_and_extremes():
    v = np.arange(-4, 4).reshape(8, 1)
    acc, l = A.online_softmax_ref(np.full(8, 123), v, 8, 15)
    assert np.array_equal(A.normalize_attention(acc, l, 8), [round(-0.5)])  # mean of v: -0.5
    # one dominant key: output is that key's value
    t = np.array([-(1 << 19), -(1 << 19), (1 << 19) - 1, -(1 << 19)])
    acc, l = A.online_softmax_ref(t, np.array([[1], [2], [77], [4]]), 8, 15)
    assert A.normalize_attention(acc, l, 8).tolist() == [77]


def test_softmax_probability_error_bound():
    """Measured: |p_int / l - softmax(t)| over random rows of up to 200 keys; stated bound in
    the online_softmax docstring (floor truncations of exp2 and of the rescales)."""
    rng = np.random.default_rng(4)
    worst = 0.0
    for _ in range(200):
        n = int(rng.integers(2, 200))
        logits = rng.normal(0, 3, n)
        t = np.round(logits / math.log(2) * 256).astype(np.int64)
        eye = np.eye(n, dtype=np.int64)
        acc, l = A.online_softmax(t[None], eye, 8, 15)
        p = acc[0] / l[0]
        ref = np.exp(t / 256 * math.log(2))
        worst = max(worst, np.abs(p - ref / ref.sum()).max())
    assert worst < 2.5e-3, worst


def test_div_round():
    a = np.arange(-50, 51)
    for b in (1, 2, 3, 7, 10):
        assert A.div_round(a, b).tolist() == [math.floor(x / b + 0.5) for x in a.tolist()]


def test_gelu_formula_and_error_bound():
    frac = 7
    table = A.gelu_table(frac)
    xs = np.arange(-(1 << 12), 1 << 12)
    sh = frac - 5
    want = []
    for u in xs.tolist():
        a = abs(u)
        i = min(a >> sh, 177)
        r = a - (i << sh) if i < 177 else 0
        t0, t1 = int(table[i]), int(table[min(i + 1, 177)])
        want.append(max(u, 0) - (t0 + py_round_shift((t1 - t0) * r, sh)))
    assert A.gelu_q(xs, frac).tolist() == want
    # measured bound at the default format (F = 12, 20-bit input): every input
    u = np.arange(-(1 << 19), 1 << 19)
    x = u / 4096.0
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    err = np.abs(A.gelu_q(u, 12) / 4096.0 - exact).max()
    assert err < 2.7e-4, err


def test_rsqrt_definition_and_error():
    rng = np.random.default_rng(5)
    vs = np.concatenate([np.arange(1, 1 << 14), rng.integers(1, 1 << 60, 20000)])
    m, sh = A.rsqrt_q(vs)
    for v, mi, si in zip(vs[::97].tolist(), m[::97].tolist(), sh[::97].tolist(), strict=True):
        k = v.bit_length()
        p = k + (k & 1)
        u = v << (32 - p) if p <= 32 else v >> (p - 32)
        assert mi * mi * u <= 1 << 62 < (mi + 1) * (mi + 1) * u
        assert si == 15 + p // 2
    rel = np.abs(m / 2.0**sh * np.sqrt(vs.astype(np.float64)) - 1)
    assert rel.max() < 3.1e-5, rel.max()


def test_layernorm_against_float_and_zero_variance():
    rng = np.random.default_rng(6)
    d = 48
    x = rng.integers(-3000, 3000, (5, d))
    x[4] = 77  # zero-variance row
    g = np.full(d, 1 << 14)
    b = np.arange(d) * 1000
    y = A.layernorm_q(x, g, b, 1, 15, np.array(1 << 15), np.array(16), 32)
    # float: (n_i * 2^14 + b) / 2 with n_i = 2^15 * (x - mean) / (sqrt(D) sigma)
    xf = x[:4].astype(float)
    nrm = (xf - xf.mean(1, keepdims=True)) / xf.std(1, keepdims=True)
    ref = (nrm / math.sqrt(d) * 2**15 * 2**14 + b) / 2
    assert np.abs(y[:4] - ref).max() / np.abs(ref).max() < 1e-4
    assert np.array_equal(y[4], A.requant(b, 1 << 15, 16, 32))


def test_gate_topk_ties_and_weights():
    t = np.array([[5, 9, 9, 1], [0, 0, 0, 0]])
    idx, w = A.gate_q(t, 2, 8, 15, 15)
    assert idx.tolist() == [[1, 2], [0, 1]]
    assert w[1].tolist() == [1 << 13, 1 << 13]  # softmax over all 4, not renormalized
    logits = np.array([[1.0, 2.0, 0.5, -1.0]])
    tq = np.round(logits / math.log(2) * 256).astype(np.int64)
    _, w = A.gate_q(tq, 2, 8, 15, 15)
    soft = np.exp2(tq / 256) / np.exp2(tq / 256).sum()  # softmax of the quantized logits
    assert np.abs(w[0] / 2**15 - np.sort(soft[0])[::-1][:2]).max() < 1e-4


def test_moe_combine_exact():
    acc2 = np.array([[[3, -4], [5, 6]]])
    w = np.array([[2, 7]])
    assert A.moe_combine(acc2, w).tolist() == [[41, 34]]
