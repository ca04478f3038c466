"""The arithmetic contract: every integer operation of the datapath, defined once.

Each function states its exact formula; the HLS header (``hls/include/evh_arith.h``) and the
Amaranth units (``rtl/``) implement the same names and are checked against these definitions.
All arrays are NumPy ``int64``; inputs must respect the widths named in each docstring
(:mod:`edgevit_hw.core.derive` proves the accumulator widths from those bounds).

Notation: ``>>`` is an arithmetic right shift (floor division by a power of two), ``clamp_b``
saturates to the signed ``b``-bit range ``[-2^(b-1), 2^(b-1) - 1]``.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

I64 = np.int64
EXACT_F64 = 2**53  # every integer of magnitude below this is exact in float64

# GELU table geometry (Edge-MoE): delta sampled every 1/32 on [0, 5.5] -> 177 entries.
GELU_STEP_LOG2 = 5
GELU_TABLE_LEN = 177
# rsqrt_q: the normalized operand u has 32 bits, the result m has 17 (m <= 2^16).
RSQRT_U_BITS = 32
RSQRT_M_FRAC = 31
RSQRT_M_BITS = 17  # unsigned, m <= 2^16


def smin(bits: int) -> int:
    return -(1 << (bits - 1))


def smax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def clamp(x, bits: int):
    """``clamp_b(x)``: saturate to the signed ``bits``-bit range."""
    return np.clip(x, smin(bits), smax(bits))


def round_shift(x, s):
    """``(x + 2^(s-1)) >> s`` for ``s >= 1`` (round half up); ``x`` for ``s == 0``."""
    x = np.asarray(x, dtype=I64)
    s = np.asarray(s, dtype=I64)
    half = np.where(s > 0, np.left_shift(I64(1), np.maximum(s - 1, 0)), 0)
    return np.right_shift(x + half, s)


def requant(acc, m, s, bits: int):
    """Requantization, the only rounding point of the datapath.

    ``y = clamp_bits((acc * m + 2^(s-1)) >> s)``: ``m`` an unsigned multiplier of at most
    ``mult_bits`` bits, ``1 <= s <= 62`` a right shift, round half up, then saturate. ``m`` and
    ``s`` broadcast against ``acc`` (per tensor or per output channel). The caller guarantees
    ``|acc| * m < 2^62`` (derive proves it from widths).
    """
    acc = np.asarray(acc, dtype=I64)
    return clamp(round_shift(acc * np.asarray(m, dtype=I64), s), bits)


def quantize_multiplier(ratio, mult_bits: int, max_shift: int = 62):
    """Quantizer helper (not a datapath op): ``ratio ~= m / 2^s`` with ``m`` normalized to
    ``[2^(mult_bits-1), 2^mult_bits)``. Returns int64 arrays ``(m, s)``; ``s`` is clipped to
    ``[1, max_shift]`` (tiny ratios lose precision, huge ones are refused)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    if np.any(~np.isfinite(ratio)) or np.any(ratio <= 0):
        raise ValueError("requantization ratios must be positive and finite")
    _, exp = np.frexp(ratio)  # ratio = f * 2^exp, f in [0.5, 1)
    s = np.clip(mult_bits - exp, 1, max_shift).astype(I64)
    m = np.round(np.ldexp(ratio, s)).astype(I64)
    over = m >= (1 << mult_bits)  # rounding reached 2^mult_bits
    m = np.where(over, m >> 1, m)
    s = np.where(over, s - 1, s)
    if np.any(m >= (1 << mult_bits)) or np.any(s < 1):
        raise ValueError(f"requantization ratio too large for {mult_bits}-bit multipliers")
    return m.astype(I64), s.astype(I64)


def matmul_exact(x, w, x_bits: int, w_bits: int):
    """``x @ w.T`` exactly (over the last two axes), ``x`` [..., N, K] of ``x_bits`` signed bits,
    ``w`` [..., O, K] of ``w_bits``. Uses float64 BLAS when the bound proves it exact, else int64.

    Proof of exactness: every product has magnitude at most ``2^(x_bits-1) * 2^(w_bits-1)``
    and any partial sum of K of them at most ``K`` times that; when this is below 2^53 every
    partial sum is an integer representable in float64, so each float add is exact.
    """
    k = x.shape[-1]
    bound = k * (1 << (x_bits - 1)) * (1 << (w_bits - 1))
    if bound < EXACT_F64:
        out = np.asarray(x, np.float64) @ np.swapaxes(np.asarray(w, np.float64), -1, -2)
        return out.astype(I64)
    return np.asarray(x, I64) @ np.swapaxes(np.asarray(w, I64), -1, -2)


def linear(x, w, b, x_bits: int, w_bits: int):
    """``acc = x @ w.T + b``: the exact accumulator of every matrix product (bias at the
    accumulator's scale, no rounding)."""
    return matmul_exact(x, w, x_bits, w_bits) + np.asarray(b, I64)


def residual_add(x, acc, m, s, res_bits: int):
    """``clamp_res(x + requant(acc, m, s, res_bits))``: branch output into the residual."""
    return clamp(np.asarray(x, I64) + requant(acc, m, s, res_bits), res_bits)


# ---------------------------------------------------------------------------------- exp2 ----


@cache
def exp2_table(frac_bits: int, out_bits: int) -> np.ndarray:
    """``T[f] = round(2^out_bits * 2^(f / 2^frac_bits))`` for ``f`` in ``[0, 2^frac_bits)``.

    Entries lie in ``[2^out_bits, 2^(out_bits+1))``; ``T[0] = 2^out_bits`` stands for 1.0.
    Round half up (``floor(v + 1/2)``), computed in float64 where every entry is exact.
    """
    f = np.arange(1 << frac_bits, dtype=np.float64)
    vals = np.floor(np.exp2(out_bits + f / (1 << frac_bits)) + 0.5).astype(I64)
    vals.setflags(write=False)
    return vals


def exp2_q(x, frac_bits: int, out_bits: int):
    """Integer ``2^(x / 2^F)`` for ``x <= 0`` in fixed point with ``F = frac_bits``.

    ``i = x >> F`` (floor, <= 0), ``f = x - i * 2^F`` (in ``[0, 2^F)``), result
    ``T[f] >> min(-i, out_bits + 1)`` with ``T = exp2_table(F, out_bits)``: a value in
    ``[0, 2^out_bits]``, ``2^out_bits`` meaning 1.0.

    Measured against ``2^out_bits * 2^(x/2^F)`` (tests/test_arithmetic.py): absolute error
    below 1 output unit for every ``x`` (table rounding 1/2 plus shift truncation < 1).
    """
    x = np.asarray(x, dtype=I64)
    i = np.right_shift(x, frac_bits)
    f = x - np.left_shift(i, frac_bits)
    table = exp2_table(frac_bits, out_bits)
    return np.right_shift(table[f], np.minimum(-i, out_bits + 1))


def ceil_shift(x, frac_bits: int):
    """``ceil(x / 2^F) = -((-x) >> F)``: the max grid of the softmax (integer log2 units)."""
    return -np.right_shift(-np.asarray(x, I64), frac_bits)


def floor_shift(x, d):
    """``floor(x / 2^d)`` for ``d >= 0`` (shift clamped at 63, which is the same value)."""
    return np.right_shift(np.asarray(x, I64), np.minimum(np.asarray(d, I64), 63))


def div_round(a, b):
    """``floor((2a + b) / (2b))`` for ``b > 0``: ``a / b`` rounded half up."""
    a = np.asarray(a, I64)
    b = np.asarray(b, I64)
    return np.floor_divide(2 * a + b, 2 * b)


# ------------------------------------------------------------------------------- softmax ----


def online_softmax_ref(t, v, frac_bits: int, out_bits: int):
    """Single-pass softmax-weighted sum for ONE query row: the definition, key by key.

    ``t[j]`` are log2-domain logits in fixed point (``F = frac_bits``), ``v[j]`` the value
    vectors. State: running max ``mx`` (integer log2 units), running sum ``l``, running weighted
    sum ``acc``; initially ``l = 0``, ``acc = 0``. For ``j = 0 .. N-1`` in natural order::

        c    = ceil(t[j] / 2^F)                 # ceil_shift
        new  = c if j == 0 else max(mx, c)
        d    = 0 if j == 0 else new - mx         # rescale by 2^-d, exactly a shift
        l    = floor(l / 2^d);  acc = floor(acc / 2^d)
        p    = exp2_q(t[j] - new * 2^F)          # in (2^(out_bits-1), 2^out_bits] at j == 0
        l   += p;               acc += p * v[j];  mx = new

    Measured against float softmax of the same logits (rows of up to 200 keys, logits of
    std 3): probabilities ``acc / l`` with ``v`` one-hot differ by at most 2.1e-3
    (tests/test_arithmetic.py asserts 2.5e-3); the floors of exp2 and of each rescale bias
    both ``acc`` and ``l`` downward together.

    Returns ``(acc, l)``; the output is ``normalize_attention(acc, l)``. ``l >= 2^(out_bits-1)``
    (the key that sets the max contributes at least half of 1.0), so the division is defined.
    """
    v = np.asarray(v, I64)
    mx = None
    l, acc = I64(0), np.zeros(v.shape[1:], I64)
    for j, tj in enumerate(np.asarray(t, I64)):
        c = int(ceil_shift(tj, frac_bits))
        new = c if mx is None else max(mx, c)
        d = 0 if mx is None else new - mx
        l, acc = floor_shift(l, d), floor_shift(acc, d)
        p = exp2_q(int(tj) - (new << frac_bits), frac_bits, out_bits)
        l, acc, mx = l + p, acc + p * v[j], new
    return acc, l


def online_softmax(t, v, frac_bits: int, out_bits: int):
    """Vectorized :func:`online_softmax_ref`, bit-identical (tested): ``t`` [..., R, N] logits
    for R query rows, ``v`` [..., N, Dv]. Returns ``(acc [..., R, Dv], l [..., R])``.

    Between two increases of the running max no rescale happens, so the key sequence splits
    into segments of constant max; the recurrence ``L = floor(L / 2^d) + sum(segment)`` runs
    once per segment (a handful per row), each segment sum being an exact float64 product
    (``N * 2^out_bits * 2^(v_bits-1) < 2^53``, checked).
    """
    t = np.asarray(t, I64)
    c = ceil_shift(t, frac_bits)
    mx = np.maximum.accumulate(c, axis=-1)
    p = exp2_q(t - np.left_shift(mx, frac_bits), frac_bits, out_bits)
    step = np.diff(mx, axis=-1, prepend=mx[..., :1])
    seg = np.cumsum(step > 0, axis=-1)
    vmax = int(np.abs(np.asarray(v, I64)).max(initial=0))
    assert t.shape[-1] * (1 << out_bits) * max(vmax, 1) < EXACT_F64
    vf = np.asarray(v, np.float64)
    l = np.zeros(t.shape[:-1], I64)
    acc = np.zeros(t.shape[:-1] + (vf.shape[-1],), I64)
    for k in range(int(seg.max(initial=0)) + 1):
        in_seg = seg == k
        first = in_seg & (np.cumsum(in_seg, axis=-1) == 1)
        d = np.where(k == 0, 0, (step * first).sum(axis=-1))
        pk = np.where(in_seg, p, 0)
        l = floor_shift(l, d) + pk.sum(axis=-1)
        acc = floor_shift(acc, d[..., None]) + (pk.astype(np.float64) @ vf).astype(I64)
    return acc, l


def normalize_attention(acc, l, bits: int):
    """``clamp_bits(div_round(acc, l))``: the attention output at the scale of V."""
    return clamp(div_round(acc, np.asarray(l, I64)[..., None]), bits)


# ---------------------------------------------------------------------------------- GELU ----


@cache
def gelu_table(frac_bits: int) -> np.ndarray:
    """``T[i] = round(delta(i/32) * 2^F)``, ``i = 0..176``, ``delta(a) = a * Phi(-a)`` (so
    ``GELU(x) = ReLU(x) - delta(|x|)``), followed by one zero entry (``T[177] = 0``)."""
    a = np.arange(GELU_TABLE_LEN, dtype=np.float64) / (1 << GELU_STEP_LOG2)
    phi = np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in a])
    vals = np.floor(a * phi * (1 << frac_bits) + 0.5).astype(I64)
    vals = np.append(vals, I64(0))
    vals.setflags(write=False)
    return vals


def gelu_q(u, frac_bits: int):
    """Integer GELU on fixed point with ``F = frac_bits`` fractional bits (``F >= 5``).

    ``a = |u|``, ``i = min(a >> (F-5), 177)``, ``r = a - (i << (F-5))`` (zero when clamped),
    ``delta = T[i] + round_shift((T[i+1] - T[i]) * r, F-5)`` with ``T = gelu_table(F)`` padded with
    zeros past 5.5, result ``max(u, 0) - delta``.

    Measured max abs error against exact GELU (erf form) over every input of the default
    format (F = 12, 20-bit input, range +-128): 2.66e-4 (table rounding 2^-13, interpolation
    rounding 2^-13, interpolation error <= 1e-4). That is below half an int8 LSB of any hidden
    activation scale coarser than 5.4e-4, i.e. any hidden range above 0.07 (asserted in
    tests/test_arithmetic.py).
    """
    u = np.asarray(u, I64)
    sh = frac_bits - GELU_STEP_LOG2
    a = np.abs(u)
    table = gelu_table(frac_bits)
    i = np.minimum(np.right_shift(a, sh), GELU_TABLE_LEN)
    r = np.where(i < GELU_TABLE_LEN, a - np.left_shift(i, sh), 0)
    t0 = table[i]
    t1 = table[np.minimum(i + 1, GELU_TABLE_LEN)]
    delta = t0 + round_shift((t1 - t0) * r, sh)
    return np.maximum(u, 0) - delta


# ----------------------------------------------------------------------------- LayerNorm ----


def rsqrt_q(v):
    """Integer reciprocal square root: ``1/sqrt(v) ~= m / 2^sh`` for integers ``v >= 1``.

    ``k = bitlen(v)``, ``p = k + (k mod 2)`` (even), ``u = v << (32 - p)`` if ``p <= 32`` else
    ``v >> (p - 32)`` (so ``u`` in ``[2^30, 2^32)``), ``m = max{m : m^2 * u <= 2^62}``
    (``= floor(2^31 / sqrt(u))``, in ``(2^15, 2^16]``), ``sh = 15 + p/2``.

    Measured relative error of ``m / 2^sh`` against ``1/sqrt(v)``: at most 3.1e-5
    (``2^-15``), exhaustive over v < 2^16 and sampled to 2^60 (tests/test_arithmetic.py).
    """
    v = np.asarray(v, I64)
    assert np.all(v >= 1), "rsqrt_q needs v >= 1"
    k = np.floor(np.log2(v.astype(np.float64))).astype(I64) + 1
    k = k + (np.right_shift(v, np.minimum(k, 62)) > 0) - (np.right_shift(v, k - 1) == 0)
    p = k + (k & 1)
    u = np.where(
        p <= 32,
        np.left_shift(v, np.maximum(32 - p, 0)),
        np.right_shift(v, np.maximum(p - 32, 0)),
    ).astype(np.uint64)
    m = np.floor(2.0**31 / np.sqrt(u.astype(np.float64))).astype(np.uint64)
    lim = np.uint64(1 << 62)
    for _ in range(2):
        m = np.where((m + 1) * (m + 1) * u <= lim, m + 1, m)
        m = np.where(m * m * u > lim, m - 1, m)
    return m.astype(I64), 15 + p // 2


def ln_normalize(d, r, sh, norm_frac: int):
    """The LayerNorm normalization ``n = round_shift(d * r, sh - norm_frac)``: a centered value
    ``d`` times the reciprocal square root ``r / 2^sh`` of its row's variance
    (:func:`rsqrt_q`), at ``norm_frac`` fractional bits (``sh - norm_frac >= 1``)."""
    return round_shift(np.asarray(d, I64) * np.asarray(r, I64), np.asarray(sh, I64) - norm_frac)


def layernorm_q(x, g, b, eps_q: int, norm_frac: int, m, s, bits: int):
    """Integer LayerNorm of each row of ``x`` [N, D] (residual-stream integers).

    ``S = sum_i x_i``, ``d_i = D*x_i - S`` (exact centered values times D),
    ``V = sum_i d_i^2 + eps_q`` (``eps_q = round(eps * D^3 / scale^2)``, at least 1),
    ``(r, sh) = rsqrt_q(V)``, ``n_i = ln_normalize(d_i, r, sh, norm_frac)``
    ``= round_shift(d_i * r, sh - norm_frac)``
    (``n_i ~= 2^norm_frac * (x_i - mean) / (sqrt(D) * sigma)``, ``|n_i| <= 2^norm_frac + 1``),
    output ``y_i = requant(n_i * g_i + b_i, m, s, bits)`` with integer gamma ``g`` and beta
    ``b`` folded by the quantizer. A zero-variance row gives ``n = 0`` and ``y = requant(b)``.
    """
    x = np.asarray(x, I64)
    dim = x.shape[-1]
    d = dim * x - x.sum(axis=-1, keepdims=True)
    var = (d * d).sum(axis=-1) + I64(eps_q)
    r, sh = rsqrt_q(var)
    n = ln_normalize(d, r[..., None], sh[..., None], norm_frac)
    return requant(n * np.asarray(g, I64) + np.asarray(b, I64), m, s, bits)


# ------------------------------------------------------------------------------- MoE gate ----


def topk_lower_index(t, k: int):
    """Indices of the ``k`` largest values along the last axis, largest first; equal values
    are ordered by lower index first."""
    return np.argsort(-np.asarray(t, I64), axis=-1, kind="stable")[..., :k]


def gate_q(t, k: int, frac_bits: int, out_bits: int, weight_bits: int):
    """MoE gate (M³ViT semantics) on log2-domain logits ``t`` [N, E] (fixed point, F bits).

    Top-k experts by ``t`` (ties to the lower index). Weights come from the softmax over ALL
    experts, not renormalized over the k chosen: ``mx = ceil(max_e t_e / 2^F)``,
    ``p_e = exp2_q(t_e - mx * 2^F)``, ``L = sum_e p_e``, ``w = div_round(p_e * 2^W, L)``
    with ``W = weight_bits`` (``2^W`` means 1.0). Returns ``(idx [N, k], w [N, k])``.
    """
    t = np.asarray(t, I64)
    idx = topk_lower_index(t, k)
    mx = ceil_shift(t.max(axis=-1, keepdims=True), frac_bits)
    p = exp2_q(t - np.left_shift(mx, frac_bits), frac_bits, out_bits)
    total = p.sum(axis=-1, keepdims=True)
    chosen = np.take_along_axis(p, idx, axis=-1)
    return idx, div_round(np.left_shift(chosen, weight_bits), total)


def moe_combine(acc2, w):
    """``sum_k w_k * acc2_k``: expert accumulators (all experts share the output scale) weighted
    exactly by their gate weights; ``acc2`` [N, k, D], ``w`` [N, k]. Requantized once after."""
    return (np.asarray(acc2, I64) * np.asarray(w, I64)[..., None]).sum(axis=-2)
