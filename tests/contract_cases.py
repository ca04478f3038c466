"""Inputs of the three-way contract test: exhaustive small domains plus every boundary of each
operation of :mod:`edgevit_hw.core.arithmetic` (ties, saturation at both ends, shift 0 and the
largest shift, exact powers of two and four, zero). Each function returns int64 records, one
per row; ``rng`` adds seeded random samples on top of the directed ones."""

from __future__ import annotations

import itertools

import numpy as np

from edgevit_hw.core import arithmetic as A

I64 = np.int64
PROD_LIMIT = 1 << 62  # the contract's |acc * m| < 2^62


def _grid(*axes) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), I64)


def round_shift_rows(rng: np.random.Generator) -> np.ndarray:
    """(x, s): every x of 10 bits with every s in 0..11, then ties k*2^s + 2^(s-1), their
    neighbours and 62-bit values for every s in 0..62."""
    rows = [_grid(range(-(1 << 9), 1 << 9), range(12))]
    for s in range(63):
        half = (1 << (s - 1)) if s else 0
        top = 1 << max(61 - s, 0)
        for k in (-3, -2, -1, 0, 1, 2, top - 1, -top):
            base = k * (1 << s) + half
            if abs(base) < (1 << 62) - 1:
                rows.append(np.array([[base + d, s] for d in (-1, 0, 1)], I64))
        big = rng.integers(-(1 << 61), 1 << 61, 8)
        rows.append(np.stack([big, np.full(8, s)], axis=1))
    return np.concatenate(rows)


def _tie(rng, s: int, sign: int) -> tuple[int, int]:
    """(acc, m) with acc*m = odd * 2^(s-1) (an exact tie of a shift by s), |acc*m| < 2^62."""
    h = int(rng.integers(0, min(s - 1, 23) + 1))
    m = (2 * int(rng.integers(0, 1 << (23 - h))) + 1) << h
    room = max(0, 61 - (s - 1) - (m >> h).bit_length())
    odd = 2 * int(rng.integers(0, 1 << min(room, 40))) + 1 if room else 1
    while odd * (m >> h) * (1 << (s - 1)) >= PROD_LIMIT:
        odd, m = 1, 1 << h
    return sign * odd * (1 << (s - 1 - h)), m


def requant_rows(rng: np.random.Generator, bits_list) -> np.ndarray:
    """(acc, m, s): every 8-bit acc with every 4-bit m and s in 0..12; ties with positive and
    negative acc for every s in 1..62 (and their neighbours); values that round to exactly
    the saturation bounds of every width in ``bits_list`` and one past them; s = 62 at
    |acc*m| close to 2^62; m = 0."""
    rows = [_grid(range(-(1 << 7), 1 << 7), range(16), range(13))]
    for s in range(1, 63):
        for sign in (1, -1):
            for _ in range(4):
                acc, m = _tie(rng, s, sign)
                rows.append(np.array([[acc + d, m, s] for d in (-1, 0, 1)], I64))
    for bits in bits_list:
        for s in (1, 2, 7, 20, 40):
            for y in (A.smax(bits), A.smax(bits) + 1, A.smin(bits), A.smin(bits) - 1):
                for r in (-(1 << (s - 1)), (1 << (s - 1)) - 1):
                    if abs(y) < 1 << (61 - s):
                        rows.append(np.array([[y * (1 << s) + r, 1, s]], I64))
    top = (1 << 62) - 1
    rows.append(np.array([[top, 1, 62], [-top, 1, 62], [1 << 61, 1, 62], [-(1 << 61), 1, 62],
                          [(1 << 38) - 1, (1 << 24) - 1, 62], [-(1 << 38), (1 << 24) - 1, 62],
                          [12345, 0, 5], [-12345, 0, 1]], I64))  # fmt: skip
    m = rng.integers(0, 1 << 24, 400)
    acc = rng.integers(-(1 << 38), 1 << 38, 400)
    rows.append(np.stack([acc, m, rng.integers(0, 63, 400)], axis=1))
    return np.concatenate(rows)


def exp2_rows(frac: int, out: int, logit_bits: int) -> np.ndarray:
    """(x): every x <= 0 down to past the point where the result is 0, plus the most negative
    exponent the units form (``t - new * 2^F`` of ``logit_bits + 2`` bits)."""
    xs = np.arange(-((out + 4) << frac), 1, dtype=I64)
    low = -(1 << (logit_bits + 1))
    return np.concatenate([xs, [low, low + 1, -(1 << logit_bits)]])[:, None]


def gelu_rows(frac: int, in_bits: int, rng: np.random.Generator) -> np.ndarray:
    """(u): every input of the format when it has at most 16 bits, else every input within
    +-6.0 (the table and its clamp) plus the extremes and seeded samples."""
    lo, hi = A.smin(in_bits), A.smax(in_bits)
    if in_bits <= 16:
        return np.arange(lo, hi + 1, dtype=I64)[:, None]
    span = 6 << frac
    extra = np.concatenate([[lo, lo + 1, hi - 1, hi], rng.integers(lo, hi + 1, 2000)])
    return np.concatenate([np.arange(-span, span + 1, dtype=I64), extra])[:, None]


def power_boundaries(v_bits: int) -> list[int]:
    """Around every power of four (4^j - 1, 4^j, 4^j + 1: the normalized operand is exactly
    2^30, where the search's bound ``m^2 u <= 2^62`` holds with equality), every other power
    of two (2 * 4^j and neighbours) and, where p > 32, the last v whose truncated operand is
    still exactly 2^30 and the first after it; the largest v of ``v_bits``."""
    vals = []
    for j in range(v_bits // 2 + 1):
        for base in (1 << (2 * j), 2 << (2 * j)):
            vals += [base - 1, base, base + 1]
        p = 2 * j + 2
        if p > 32:
            vals += [(1 << (2 * j)) + (1 << (p - 32)) - 1, (1 << (2 * j)) + (1 << (p - 32))]
    return [v for v in [*vals, (1 << v_bits) - 1] if 1 <= v < (1 << v_bits)]


def rsqrt_rows(v_bits: int, rng: np.random.Generator) -> np.ndarray:
    """(v): every v < 2^10, the power boundaries, seeded samples."""
    vals = [*range(1, 1 << 10), *power_boundaries(v_bits)]
    vals += rng.integers(1, 1 << v_bits, 200).tolist()
    return np.unique(np.array(vals, I64))[:, None]


def ln_normalize_rows(v_bits: int, rng: np.random.Generator) -> np.ndarray:
    """(d, r, sh) with ``(r, sh) = rsqrt_q(V)`` and ``d^2 <= V`` (a centered value of a row of
    variance V): every such d for V < 2^8; for V at powers of two and four, d = 0, +-sqrt(V)
    bounds and every d whose product d*r is an exact tie of the shift (positive and
    negative); seeded samples."""
    pairs = [(v, d) for v in range(1, 1 << 8) for d in range(-int(v**0.5), int(v**0.5) + 1)]
    for v in power_boundaries(v_bits) + rng.integers(1, 1 << v_bits, 200).tolist():
        root = int(np.sqrt(float(v)))
        pairs += [(v, 0), (v, root), (v, -root), (v, int(rng.integers(-root, root + 1)))]
    v, d = (np.array(x, I64) for x in zip(*pairs, strict=True))
    r, sh = A.rsqrt_q(v)
    return np.stack([d, r, sh], axis=1)


def ln_tie_rows(v_bits: int, norm_frac: int) -> np.ndarray:
    """(d, r, sh) where d*r is an exact tie of the shift sh - NF (d = +-odd * 2^(e-1-z) for
    r = r' * 2^z), for V at every power of four and its neighbours."""
    rows = []
    for j in range(1, v_bits // 2):
        for v in ((1 << (2 * j)) - 1, 1 << (2 * j), (1 << (2 * j)) + 1):
            r, sh = (int(x[0]) for x in A.rsqrt_q(np.array([v])))
            e = sh - norm_frac
            z = (r & -r).bit_length() - 1
            if e - 1 - z < 0:
                continue
            inv = pow(r >> z, -1, 1 << (e - z))
            d0 = ((1 << (e - 1 - z)) * inv) % (1 << (e - z))
            for d in (d0, d0 - (1 << (e - z)), d0 + (1 << (e - z))):
                if d * d <= 4 * v:
                    rows += [[d, r, sh], [-d, r, sh]]
    return np.array(rows, I64)


def div_rows(q_bits: int, a_bits: int, b_lo: int, b_hi: int, rng) -> np.ndarray:
    """(a0, a1, b) for a signed q-bit result: every a with |a| <= 4 * (2^(q-1) + 1) with every
    b <= 16 (saturation at both ends for b <= 4); exact ties a = (k + 1/2) b around both
    saturation bounds and zero; the extremes of a and b; seeded samples."""
    lim = 4 * ((1 << (q_bits - 1)) + 1)
    small = [(a, -a, b) for b in range(1, 17) for a in range(-lim, lim + 1)]
    rows = [np.array(small, I64)]
    ks = [A.smin(q_bits) - 1, A.smin(q_bits), -1, 0, A.smax(q_bits) - 1, A.smax(q_bits)]
    for b in [b_lo + (b_lo % 2), b_hi - (b_hi % 2), 2, 1 << (b_hi.bit_length() - 1)]:
        ties = [(2 * k + 1) * b // 2 for k in ks]
        rows.append(np.array([[t + d, -t - d, b] for t in ties for d in (-1, 0, 1)], I64))
    amax = (1 << (a_bits - 1)) - 1
    rows.append(np.array([[amax, -amax - 1, b_lo], [amax, -amax - 1, b_hi], [0, 0, b_hi]], I64))
    b = rng.integers(b_lo, b_hi + 1, 500)[:, None]
    a = rng.integers(-(1 << q_bits), 1 << q_bits, (500, 2)) * b // 2 + rng.integers(-b, b)
    rows.append(np.concatenate([a, b], axis=1))
    return np.concatenate(rows)


def gate_div_rows(w_bits: int, out_bits: int, experts: int, rng) -> np.ndarray:
    """(a0, a1, b) of the gate weights: a = p * 2^W with 0 <= p <= min(L, 2^O), L = b in the
    range the router forms (``2^(O-1) <= L <= E * 2^O``): p at its bounds, 0, 1, L/2; exact
    ties p * 2^(W+1) = odd * L; seeded samples."""
    lo, hi = 1 << (out_bits - 1), experts << out_bits
    rows = []
    for ell in [lo, lo + 1, hi, hi - 1, *rng.integers(lo, hi + 1, 300).tolist()]:
        top = min(ell, 1 << out_bits)
        p = [top, top // 2, (top + 1) // 2, 0, 1, int(rng.integers(0, top + 1))]
        rows += [[p[i] << w_bits, p[i + 1] << w_bits, ell] for i in range(0, len(p), 2)]
    for odd_l in (1, 3, 5):
        ell = odd_l << (w_bits + 1)
        ps = [k * odd_l for k in range(1, 64, 2) if k * odd_l <= min(ell, 1 << out_bits)]
        if lo <= ell <= hi:
            rows += [[p << w_bits, p << w_bits, ell] for p in ps]
    return np.array(rows, I64)


def softmax_rows(frac: int, logit_bits: int, n: int, dv: int, v_bits: int, rng) -> np.ndarray:
    """Rows of ``n`` keys, each ``(t, v[dv])`` flattened. For n <= 3: every sequence over a set
    of logits on, just below and just above the rescale grid (multiples of 2^F) and the two
    logit extremes. For longer rows: staircases that grow the running max by exactly one grid
    step per key (from the grid point and from one past it), jumps beyond the largest rescale
    shift, descending and constant rows, and seeded random rows."""
    lo, hi = A.smin(logit_bits), A.smax(logit_bits)
    g = 1 << frac
    if n <= 3:
        pts = sorted({c * g + d for c in (-2, -1, 0, 1) for d in (-1, 0, 1)} | {lo, hi})
        ts = _grid(*[pts] * n)
    else:
        steps = np.arange(n, dtype=I64)
        named = [steps * g, steps * g + 1, -steps * g, (steps - n) * g + 1,
                 np.where(steps % 2, hi, lo), np.full(n, lo), np.full(n, hi),
                 np.where(steps == n - 1, hi, lo), np.full(n, 0)]  # fmt: skip
        rand = rng.integers(lo, hi + 1, (200, n)) >> rng.integers(0, logit_bits, (200, 1))
        ts = np.concatenate([np.stack(named), rand])
    vmin, vmax = A.smin(v_bits), A.smax(v_bits)
    v = rng.integers(vmin, vmax + 1, (len(ts), n, dv))
    v[::3, :, 0] = vmin  # floors of negative sums at every rescale
    v[1::3, :, -1] = vmax
    return np.concatenate([ts[:, :, None], v], axis=2).reshape(len(ts), n * (1 + dv))


def topk_rows(experts: int, logit_bits: int, rng) -> np.ndarray:
    """(t[E]): for E <= 4 every vector over {min, -1, 0, max} and over {0..3} (all ties
    patterns); else seeded vectors over {-1, 0, 1} (many ties) and full range, all-equal."""
    lo, hi = A.smin(logit_bits), A.smax(logit_bits)
    if experts <= 4:
        return np.concatenate([_grid(*[(lo, -1, 0, hi)] * experts), _grid(*[range(4)] * experts)])
    few = rng.integers(-1, 2, (400, experts))
    full = rng.integers(lo, hi + 1, (100, experts))
    same = np.array([np.full(experts, x) for x in (lo, -1, 0, 1, hi)], I64)
    return np.concatenate([few, full, same])


def gate_rows(experts: int, frac: int, logit_bits: int, rng) -> np.ndarray:
    """(t[E]): for E <= 4 every vector over logits at the extremes, on and next to the max's
    grid; else seeded tokens: all equal, ties at the top, one dominant, full range."""
    lo, hi = A.smin(logit_bits), A.smax(logit_bits)
    g = 1 << frac
    if experts <= 4:
        return _grid(*[(lo, -g - 1, -g, -1, 0, 1, g, hi)] * experts)
    same = np.array([np.full(experts, x) for x in (lo, -g, -1, 0, 1, g, hi)], I64)
    tie = rng.integers(-4 * g, 4 * g, (100, experts))
    tie[:, 1] = tie[:, experts - 1] = tie.max(axis=1)
    full = rng.integers(lo, hi + 1, (100, experts)) >> rng.integers(0, logit_bits, (100, 1))
    return np.concatenate([same, tie, full])
