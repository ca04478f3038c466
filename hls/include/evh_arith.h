// evh_arith.h: the arithmetic contract in C++ (Vitis HLS synthesizable, no dynamic memory).
// Every function below has the SAME NAME as its definition in edgevit_hw/arithmetic.py, which
// states the exact formula; this file must agree with it bit for bit (C-simulation tests).
// Scalar intermediates are 64-bit (derive.py proves every product before a shift fits in 63
// bits); the MAC array's per-MAC path uses the derived acc_t (evh_mac.h).
// arithmetic.linear / matmul_exact are the MAC array itself (evh_mac.h compute_tile, and the
// score dot product in evh_attention.h); arithmetic.exp2_table / gelu_table are emitted as data
// into evh_params.h by edgevit_hw/hls_emit.py from the Python definitions.
#pragma once
#include <stdint.h>

// HLS pragmas are written EVH_PRAGMA(HLS ...): under Vitis HLS (__SYNTHESIS__) they become
// _Pragma("HLS ...") exactly as written; g++ 12 would report them as unknown pragmas, a
// warning its diagnostic pragmas cannot silence, so C-simulation drops them.
#ifdef __SYNTHESIS__
#define EVH_PRAGMA(x) _Pragma(#x)
#else
#define EVH_PRAGMA(x)
#endif
// Loop labels name loops in Vitis HLS reports; g++ sees them as unused labels.
#pragma GCC diagnostic ignored "-Wunused-label"

namespace evh {

typedef int64_t i64;
typedef uint64_t u64;

// arithmetic.smin
constexpr i64 smin(int bits) { return -(i64(1) << (bits - 1)); }
// arithmetic.smax
constexpr i64 smax(int bits) { return (i64(1) << (bits - 1)) - 1; }

// arithmetic.clamp: saturate to the signed `bits`-bit range.
inline i64 clamp(i64 x, int bits) {
    const i64 lo = smin(bits), hi = smax(bits);
    return x < lo ? lo : (x > hi ? hi : x);
}

// arithmetic.round_shift: (x + 2^(s-1)) >> s for s >= 1 (round half up), x for s == 0.
inline i64 round_shift(i64 x, int s) {
    return s > 0 ? (x + (i64(1) << (s - 1))) >> s : x;
}

// arithmetic.requant: clamp_bits((acc * m + 2^(s-1)) >> s), the only rounding point.
inline i64 requant(i64 acc, i64 m, int s, int bits) {
    return clamp(round_shift(acc * m, s), bits);
}

// arithmetic.residual_add: clamp_res(x + requant(acc, m, s, res_bits)).
inline i64 residual_add(i64 x, i64 acc, i64 m, int s, int res_bits) {
    return clamp(x + requant(acc, m, s, res_bits), res_bits);
}

// arithmetic.ceil_shift: ceil(x / 2^F) = -((-x) >> F).
inline i64 ceil_shift(i64 x, int frac_bits) { return -((-x) >> frac_bits); }

// arithmetic.floor_shift: floor(x / 2^d), d >= 0, shift clamped at 63 (same value).
inline i64 floor_shift(i64 x, i64 d) { return x >> (d > 63 ? 63 : d); }

// arithmetic.div_round: floor((2a + b) / (2b)) for b > 0 (a / b rounded half up).
inline i64 div_round(i64 a, i64 b) {
    const i64 num = 2 * a + b, den = 2 * b;
    i64 q = num / den;
    const i64 rem = num - q * den;  // one divider: the remainder from the quotient
    if (rem != 0 && num < 0) q -= 1;  // C++ truncates toward zero: make it floor
    return q;
}

// arithmetic.exp2_q: T[f] >> min(-i, out_bits + 1), i = x >> F, f = x - i * 2^F, x <= 0.
// `table` is arithmetic.exp2_table(F, OUT) (emitted into evh_params.h).
template <int F, int OUT>
inline i64 exp2_q(i64 x, const int32_t table[1 << F]) {
    const i64 i = x >> F;
    const int f = int(x & ((i64(1) << F) - 1));
    const i64 sh = (-i < OUT + 1) ? -i : OUT + 1;
    return i64(table[f]) >> sh;
}

// arithmetic.online_softmax_ref: the state of ONE query row and its update for ONE key.
template <int DV>
struct SoftmaxRow {
    i64 mx;
    i64 l;
    i64 acc[DV];
    bool started;
};

template <int DV>
inline void online_softmax_init(SoftmaxRow<DV>& st) {
    st.mx = 0;
    st.l = 0;
    st.started = false;
    for (int d = 0; d < DV; ++d) st.acc[d] = 0;
}

// arithmetic.online_softmax_ref, the loop body for key j (keys in natural order 0..N-1):
// c = ceil(t/2^F); new = max(mx, c); rescale l, acc by floor(./2^(new-mx));
// p = exp2_q(t - new*2^F);
// l += p; acc += p * v.
template <int DV, int F, int OUT, typename VT>
inline void online_softmax_ref(SoftmaxRow<DV>& st, i64 t, const VT v[DV],
                               const int32_t table[1 << F]) {
    const i64 c = ceil_shift(t, F);
    const i64 nw = (!st.started || c > st.mx) ? c : st.mx;
    const i64 d = st.started ? nw - st.mx : 0;
    if (d > 0) {
        st.l = floor_shift(st.l, d);
        for (int k = 0; k < DV; ++k) st.acc[k] = floor_shift(st.acc[k], d);
    }
    const i64 p = exp2_q<F, OUT>(t - nw * (i64(1) << F), table);
    st.l += p;
    for (int k = 0; k < DV; ++k) st.acc[k] += p * i64(v[k]);
    st.mx = nw;
    st.started = true;
}

// arithmetic.normalize_attention: clamp_bits(div_round(acc, l)).
inline i64 normalize_attention(i64 acc, i64 l, int bits) { return clamp(div_round(acc, l), bits); }

// The contract's constants reach the kernels as a class K (EvhCfg, emitted from Python):
// K::GELU_STEP_LOG2 and K::GELU_LAST (arithmetic.GELU_STEP_LOG2, GELU_TABLE_LEN), K::RSQRT_U_BITS,
// K::RSQRT_M_FRAC and K::RSQRT_M_BITS (arithmetic.RSQRT_*). None is retyped here.

// arithmetic.gelu_q: a = |u|, i = min(a >> (F-L), LAST), r = a - (i << (F-L)) (0 if clamped),
// delta = T[i] + round_shift((T[i+1]-T[i]) * r, F-L), result max(u, 0) - delta, with
// L = K::GELU_STEP_LOG2, LAST = K::GELU_LAST; `table` is arithmetic.gelu_table(F): LAST entries
// plus one trailing zero.
template <int F, class K>
inline i64 gelu_q(i64 u, const int32_t table[K::GELU_LAST + 1]) {
    constexpr int LAST = K::GELU_LAST;
    const int sh = F - K::GELU_STEP_LOG2;
    const i64 a = u < 0 ? -u : u;
    const i64 i0 = a >> sh;
    const int i = i0 < LAST ? int(i0) : LAST;
    const i64 r = i < LAST ? a - (i64(i) << sh) : 0;
    const i64 t0 = table[i], t1 = table[i < LAST ? i + 1 : LAST];
    const i64 delta = t0 + round_shift((t1 - t0) * r, sh);
    return (u > 0 ? u : 0) - delta;
}

// bit length of v (0 for 0), helper of rsqrt_q: a count-leading-zeros in six halving steps
// (a priority encoder once unrolled), not a 64-step scan.
inline int bitlen_u64(u64 v) {
    int k = 0;
    for (int s = 32; s > 0; s >>= 1) {
EVH_PRAGMA(HLS UNROLL)  // UG1399 "pragma HLS unroll"
        if (v >> s) {
            v >>= s;
            k += s;
        }
    }
    return k + int(v);  // v is now 0 or 1
}

// arithmetic.rsqrt_q with U = K::RSQRT_U_BITS (32), MF = K::RSQRT_M_FRAC (31) and
// MB = K::RSQRT_M_BITS (17): k = bitlen(v), p = k + (k mod 2), u = v << (U-p) or v >> (p-U),
// m = max{m : m^2 * u <= 2^(2 MF)} (bit-serial search over MB bits, m <= 2^(MB-1)),
// sh = MF - U/2 + p/2. The search keeps sq = m^2 u and mu = m u, so a candidate
// cand = m + 2^b costs shifts and adds: cand^2 u = sq + 2^(b+1) mu + 2^(2b) u (every bit of m
// is above b), below 2^64 whenever cand <= 2^(MB-1) (then cand^2 <= 2^32, u < 2^32).
template <class K>
inline void rsqrt_q(i64 v, i64& m_out, int& sh_out) {
    constexpr int U = K::RSQRT_U_BITS, MF = K::RSQRT_M_FRAC, MB = K::RSQRT_M_BITS;
    const int k = bitlen_u64(u64(v));
    const int p = k + (k & 1);
    const u64 u = p <= U ? u64(v) << (U - p) : u64(v) >> (p - U);
    const u64 lim = u64(1) << (2 * MF);
    u64 m = 0, sq = 0, mu = 0;
rsqrt_bits:
    for (int b = MB - 1; b >= 0; --b) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": add-compare recurrence
        const u64 cand = m | (u64(1) << b);
        const u64 cand_sq = sq + (mu << (b + 1)) + (u << (2 * b));
        if (cand <= (u64(1) << (MB - 1)) && cand_sq <= lim) {
            m = cand;
            sq = cand_sq;
            mu += u << b;
        }
    }
    m_out = i64(m);
    sh_out = MF - U / 2 + p / 2;
}

// arithmetic.ln_normalize: round_shift(d * r, sh - norm_frac), the LayerNorm normalization.
inline i64 ln_normalize(i64 d, i64 r, int sh, int norm_frac) {
    return round_shift(d * r, sh - norm_frac);
}

// arithmetic.layernorm_q for one row: S = sum x, d_i = D*x_i - S, V = sum d_i^2 + eps_q,
// (r, sh) = rsqrt_q(V), n_i = round_shift(d_i * r, sh - F), y_i = requant(n_i*g_i + b_i, m, s).
// LANES elements per pipelined step (x, g, b, y partitioned cyclic LANES by the caller).
template <int D, int LN_FRAC, class K, typename XT, typename OT, int LANES = 1>
void layernorm_q(const XT x[D], const i64 g[D], const i64 b[D], i64 eps_q, i64 m, int s, int bits,
                 OT y[D]) {
    i64 sum = 0;
ln_sum:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": LANES values, an adder tree
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) sum += x[i0 + l];
    }
    i64 var = eps_q;
ln_var:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) {
                const i64 d = i64(D) * x[i0 + l] - sum;
                var += d * d;
            }
    }
    i64 r;
    int sh;
    rsqrt_q<K>(var, r, sh);
ln_norm:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) {
                const i64 d = i64(D) * x[i0 + l] - sum;
                const i64 n = ln_normalize(d, r, sh, LN_FRAC);
                y[i0 + l] = OT(requant(n * g[i0 + l] + b[i0 + l], m, s, bits));
            }
    }
}

// arithmetic.topk_lower_index: the K largest of t[0..E), largest first, ties to lower index.
template <int E, int K>
inline void topk_lower_index(const i64 t[E], int idx[K]) {
    bool taken[E];
    for (int e = 0; e < E; ++e) taken[e] = false;
    for (int k = 0; k < K; ++k) {
        int best = -1;
        for (int e = 0; e < E; ++e)
            if (!taken[e] && (best < 0 || t[e] > t[best])) best = e;
        taken[best] = true;
        idx[k] = best;
    }
}

// The exp2 table of lookup e: one table for all, or table[e] (one copy per expert, so a
// pipelined router makes its E lookups in one cycle).
inline const int32_t* exp_table_of(const int32_t* table, int) { return table; }
template <int LEN>
inline const int32_t* exp_table_of(const int32_t (*table)[LEN], int e) { return table[e]; }

// arithmetic.gate_q for one token: top-k indices, then weights div_round(p_e * 2^W, sum p)
// from the softmax over ALL experts (mx = ceil(max t / 2^F), p_e = exp2_q(t_e - mx * 2^F)).
template <int E, int K, int F, int OUT, int W, typename TAB>
inline void gate_q(const i64 t[E], int idx[K], i64 w[K], TAB table) {
    topk_lower_index<E, K>(t, idx);
    i64 tmax = t[0];
    for (int e = 1; e < E; ++e) tmax = t[e] > tmax ? t[e] : tmax;
    const i64 mx = ceil_shift(tmax, F);
    i64 p[E];
    i64 total = 0;
    for (int e = 0; e < E; ++e) {
        p[e] = exp2_q<F, OUT>(t[e] - mx * (i64(1) << F), exp_table_of(table, e));
        total += p[e];
    }
    for (int k = 0; k < K; ++k) w[k] = div_round(p[idx[k]] * (i64(1) << W), total);
}

// arithmetic.moe_combine, one term: acc += w_k * acc2_k (exact, order-independent sum).
inline i64 moe_combine(i64 acc, i64 w, i64 acc2) { return acc + w * acc2; }

}  // namespace evh
