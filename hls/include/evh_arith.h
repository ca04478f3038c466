// evh_arith.h: the arithmetic contract in C++ (Vitis HLS synthesizable, no dynamic memory).
// Every function below has the SAME NAME as its definition in edgevit_hw/core/arithmetic.py,
// which states the exact formula; this file must agree with it bit for bit (contract and
// C-simulation tests). Every intermediate has an exact width (evh_types.h: ap_int<N> in
// synthesis): a width of edgevit_hw.core.derive, passed in as a template argument (K::*_BITS,
// emitted into evh_params.h) or as the operand's type, or the exact width of one product (sum
// of the operand widths) or sum (one bit more) of such values, stated where it is formed.
// arithmetic.linear / matmul_exact are the MAC array itself (evh_mac.h mac, and the score dot
// product in evh_attention.h); arithmetic.exp2_table / gelu_table are emitted as data into
// evh_params.h by hls/emit.py from the Python definitions.
#pragma once
#include <stdint.h>

#include "evh_types.h"

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

// arithmetic.smax / smin of a signed BITS-bit value; every clamp target of the contract
// (activations, residual, logits, GELU input) has at most 32 bits (spec limits).
template <int BITS>
constexpr int32_t smax() {
    static_assert(BITS >= 2 && BITS <= 32, "clamp targets have 2..32 bits");
    return int32_t((uint32_t(1) << (BITS - 1)) - 1u);
}
template <int BITS>
constexpr int32_t smin() {
    return -smax<BITS>() - 1;
}

// arithmetic.clamp: saturate x (any width) to the signed BITS-bit range.
template <int BITS, typename T>
inline int_t<BITS> clamp(const T& x) {
    constexpr int32_t lo = smin<BITS>(), hi = smax<BITS>();
    return x < lo ? int_t<BITS>(lo) : (x > hi ? int_t<BITS>(hi) : int_t<BITS>(x));
}

// arithmetic.floor_shift: floor(x / 2^d) for any d >= 0 (the contract's arithmetic >>): past
// the width of T the result is the sign (0 or -1) of a signed x, 0 for an unsigned one.
template <typename T, typename S>
inline T floor_shift(const T& x, const S& d) {
    constexpr int W = int_traits<T>::bits;
    if (int_traits<T>::is_signed) return T(x >> (d < W ? int(d) : W - 1));
    return d < W ? T(x >> int(d)) : T(0);
}

// arithmetic.round_shift: (x + 2^(s-1)) >> s for s >= 1 (round half up), x for s == 0. Formed
// as (q >> 1) + (q & 1) with q = floor(x / 2^(s-1)), the same value, in the width of x (no
// 2^(s-1) term, whatever s is).
template <typename T, typename S>
inline T round_shift(const T& x, const S& s) {
    if (s == 0) return x;
    const T q = floor_shift(x, s - 1);
    return T((q >> 1) + (q & 1));
}

// arithmetic.requant: clamp_BITS((acc * m + 2^(s-1)) >> s), the only rounding point. The
// product acc * m is exact in PBITS bits (derive: Linear.prod_bits = acc_bits + mult_bits,
// moe_prod_bits, ln_prod_bits; m unsigned of mult_bits).
template <int BITS, int PBITS, typename A, typename M, typename S>
inline int_t<BITS> requant(const A& acc, const M& m, const S& s) {
    typedef int_t<PBITS> P;
    return clamp<BITS>(round_shift(P(P(acc) * P(m)), s));
}

// arithmetic.residual_add: clamp_RBITS(x + requant(acc, m, s, RBITS)), the sum of two RBITS-bit
// values in RBITS + 1 bits.
template <int RBITS, int PBITS, typename X, typename A, typename M, typename S>
inline int_t<RBITS> residual_add(const X& x, const A& acc, const M& m, const S& s) {
    typedef int_t<RBITS + 1> T;
    return clamp<RBITS>(T(T(x) + T(requant<RBITS, PBITS>(acc, m, s))));
}

// arithmetic.ceil_shift: ceil(x / 2^F) = -((-x) >> F) of a signed XBITS-bit x; -x and the
// result fit XBITS + 1 bits.
template <int F, int XBITS, typename T>
inline int_t<XBITS + 1> ceil_shift(const T& x) {
    typedef int_t<XBITS + 1> W;
    return W(-floor_shift(W(-W(x)), F));
}

// arithmetic.div_round: floor((2a + b) / (2b)) for b > 0 (a / b rounded half up), in NBITS
// signed bits: the caller's bound on |2a + b| and 2b (which then also holds the quotient).
template <int NBITS, typename A, typename B>
inline int_t<NBITS> div_round(const A& a, const B& b) {
    typedef int_t<NBITS> T;
    const T num = T(T(a) + T(a) + T(b)), den = T(T(b) + T(b));
    T q = T(num / den);
    const T rem = T(num - T(q * den));  // one divider: the remainder from the quotient
    if (rem != 0 && num < 0) q = T(q - 1);  // C++ truncates toward zero: make it floor
    return q;
}

// arithmetic.exp2_q: T[f] >> min(-i, OUT + 1), i = x >> F, f = x - i * 2^F, for x <= 0 of
// XBITS signed bits. `table` is arithmetic.exp2_table(F, OUT) (evh_params.h): entries in
// [2^OUT, 2^(OUT+1)), so entries and result are unsigned OUT + 1 bits; -i fits XBITS bits.
template <int F, int OUT, int XBITS, typename X, typename TAB>
inline uint_t<OUT + 1> exp2_q(const X& x, const TAB table) {
    typedef int_t<XBITS> XT;
    const XT ni = XT(-floor_shift(XT(x), F));
    const int f = int(XT(x) & XT((1 << F) - 1));
    const int sh = ni < OUT + 1 ? int(ni) : OUT + 1;
    return floor_shift(uint_t<OUT + 1>(table[f]), sh);
}

// arithmetic.online_softmax_ref: the state of ONE query row (K::*_BITS from derive: the max
// on the ceil_shift grid of a LOGIT_BITS logit, the running sum softmax_sum_bits, the running
// weighted sums softmax_acc_bits).
template <int DV, class K>
struct SoftmaxRow {
    int_t<K::LOGIT_BITS + 1> mx;
    uint_t<K::SOFTMAX_SUM_BITS> l;
    int_t<K::SOFTMAX_ACC_BITS> acc[DV];
    bool started;
};

template <int DV, class K>
inline void online_softmax_init(SoftmaxRow<DV, K>& st) {
    st.mx = 0;
    st.l = 0;
    st.started = false;
    for (int d = 0; d < DV; ++d) st.acc[d] = 0;
}

// arithmetic.online_softmax_ref, the loop body for key j (keys in natural order 0..N-1):
// c = ceil(t/2^F); new = max(mx, c); rescale l, acc by floor(./2^(new-mx));
// p = exp2_q(t - new*2^F);
// l += p; acc += p * v.
// Widths: c, new in LOGIT_BITS + 1; new - mx >= 0 and t - new*2^F <= 0 in LOGIT_BITS + 2;
// p unsigned EXP_OUT + 1; p * v within softmax_acc_bits (derive's bound on acc).
template <int DV, class K, typename T, typename VT, typename TAB>
inline void online_softmax_ref(SoftmaxRow<DV, K>& st, const T& t, const VT v[DV],
                               const TAB table) {
    constexpr int F = K::EXP_F, LB = K::LOGIT_BITS;
    typedef int_t<LB + 1> C;
    typedef int_t<LB + 2> X;
    typedef int_t<K::SOFTMAX_ACC_BITS> A;
    const C c = ceil_shift<F, LB>(t);
    const C nw = (!st.started || c > st.mx) ? c : st.mx;
    const X d = st.started ? X(X(nw) - X(st.mx)) : X(0);
    if (d > 0) {
        st.l = floor_shift(st.l, d);
        for (int k = 0; k < DV; ++k) st.acc[k] = floor_shift(st.acc[k], d);
    }
    const X x = X(X(t) - X(X(nw) * X(1 << F)));
    const uint_t<K::EXP_OUT + 1> p = exp2_q<F, K::EXP_OUT, LB + 2>(x, table);
    st.l = uint_t<K::SOFTMAX_SUM_BITS>(st.l + p);
    for (int k = 0; k < DV; ++k) st.acc[k] = A(st.acc[k] + A(A(p) * A(v[k])));
    st.mx = nw;
    st.started = true;
}

// arithmetic.normalize_attention: clamp_ACT(div_round(acc, l)); |2 acc + l| and 2l fit
// max(softmax_acc_bits, softmax_sum_bits) + 2 signed bits.
template <class K, typename A, typename L>
inline int_t<K::ACT_BITS> normalize_attention(const A& acc, const L& l) {
    constexpr int NB = imax(K::SOFTMAX_ACC_BITS, K::SOFTMAX_SUM_BITS) + 2;
    return clamp<K::ACT_BITS>(div_round<NB>(acc, l));
}

// The contract's constants reach the kernels as a class K (EvhCfg, emitted from Python):
// K::GELU_STEP_LOG2 and K::GELU_LAST (arithmetic.GELU_STEP_LOG2, GELU_TABLE_LEN), K::RSQRT_U_BITS,
// K::RSQRT_M_FRAC and K::RSQRT_M_BITS (arithmetic.RSQRT_*). None is retyped here.

// arithmetic.gelu_q: a = |u|, i = min(a >> (F-L), LAST), r = a - (i << (F-L)) (0 if clamped),
// delta = T[i] + round_shift((T[i+1]-T[i]) * r, F-L), result max(u, 0) - delta, with
// F = K::GELU_F, L = K::GELU_STEP_LOG2, LAST = K::GELU_LAST; `table` is arithmetic.gelu_table(F):
// LAST entries plus one trailing zero. Widths: u of K::GELU_IN_BITS, a unsigned of as many,
// r unsigned F-L, table entries and their differences K::GELU_TABLE_BITS signed (emit.py),
// the result K::GELU_OUT_BITS (derive).
template <class K, typename U, typename TAB>
inline int_t<K::GELU_OUT_BITS> gelu_q(const U& u, const TAB table) {
    constexpr int B = K::GELU_IN_BITS, LAST = K::GELU_LAST, TB = K::GELU_TABLE_BITS;
    constexpr int SH = K::GELU_F - K::GELU_STEP_LOG2;
    typedef int_t<B> UT;
    typedef int_t<TB + SH + 1> P;  // (T[i+1] - T[i]) * r: TB signed times SH unsigned bits
    typedef int_t<imax(B, TB) + 1> G;  // max(u, 0) - delta
    const UT ut = UT(u);
    const uint_t<B> a = ut < 0 ? uint_t<B>(-int_t<B + 1>(ut)) : uint_t<B>(ut);
    const uint_t<B> i0 = a >> SH;
    const int i = i0 < LAST ? int(i0) : LAST;
    const uint_t<SH> r = i < LAST ? uint_t<SH>(a - (uint_t<B>(i) << SH)) : uint_t<SH>(0);
    const int_t<TB> t0 = int_t<TB>(table[i]), t1 = int_t<TB>(table[i < LAST ? i + 1 : LAST]);
    const P diff = P(P(int_t<TB>(t1 - t0)) * P(r));
    const int_t<TB> delta = int_t<TB>(t0 + round_shift(diff, SH));
    return int_t<K::GELU_OUT_BITS>(G(G(ut > 0 ? ut : UT(0)) - G(delta)));
}

// The smallest power of two p with 2p >= w: the first step of a halving scan over w bits.
constexpr int half_span(int w) { return w <= 2 ? 1 : 2 * half_span((w + 1) / 2); }

// bit length of an unsigned W-bit v (0 for 0), helper of rsqrt_q: a count-leading-zeros in
// log2(W) halving steps (a priority encoder once unrolled), not a W-step scan.
template <int W, typename T>
inline int bitlen(T v) {
    int k = 0;
    for (int s = half_span(W); s > 0; s >>= 1) {
EVH_PRAGMA(HLS UNROLL)  // UG1399 "pragma HLS unroll"
        if (v >> s) {
            v = T(v >> s);
            k += s;
        }
    }
    return k + int(v);  // v is now 0 or 1
}

// arithmetic.rsqrt_q with U = K::RSQRT_U_BITS (32), MF = K::RSQRT_M_FRAC (31) and
// MB = K::RSQRT_M_BITS (17), of v >= 1 (unsigned K::LN_VAR_BITS): k = bitlen(v),
// p = k + (k mod 2), u = v << (U-p) or v >> (p-U) (unsigned U bits), m = max{m : m^2 * u <=
// 2^(2 MF)} (bit-serial search over MB bits, m <= 2^(MB-1)), sh = MF - U/2 + p/2. The search
// keeps sq = m^2 u and mu = m u, so a candidate cand = m + 2^b costs shifts and adds:
// cand^2 u = sq + 2^(b+1) mu + 2^(2b) u (every bit of m is above b), below 2^(2(MB-1) + U)
// whenever cand <= 2^(MB-1); mu < 2^(MB-1+U). Once per LayerNorm row (not per lane).
template <class K, typename V>
inline void rsqrt_q(const V& v, uint_t<K::RSQRT_M_BITS>& m_out, int& sh_out) {
    constexpr int U = K::RSQRT_U_BITS, MF = K::RSQRT_M_FRAC, MB = K::RSQRT_M_BITS;
    constexpr int VB = K::LN_VAR_BITS;
    typedef uint_t<MB> m_t;
    typedef uint_t<2 * (MB - 1) + U> sq_t;
    typedef uint_t<MB - 1 + U> mu_t;
    const uint_t<VB> vv = uint_t<VB>(v);
    const int k = bitlen<VB>(vv);
    const int p = k + (k & 1);
    const uint_t<U> u = p <= U ? uint_t<U>(uint_t<U>(vv) << (U - p)) : uint_t<U>(vv >> (p - U));
    const sq_t lim = sq_t(1) << (2 * MF);
    m_t m = 0;
    sq_t sq = 0;
    mu_t mu = 0;
rsqrt_bits:
    for (int b = MB - 1; b >= 0; --b) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": add-compare recurrence
        const m_t cand = m_t(m | (m_t(1) << b));
        const sq_t cand_sq = sq_t(sq + (sq_t(mu) << (b + 1)) + (sq_t(u) << (2 * b)));
        if (cand <= (m_t(1) << (MB - 1)) && cand_sq <= lim) {
            m = cand;
            sq = cand_sq;
            mu = mu_t(mu + (mu_t(u) << b));
        }
    }
    m_out = m;
    sh_out = MF - U / 2 + p / 2;
}

// arithmetic.ln_normalize: round_shift(d * r, sh - K::LN_FRAC), the LayerNorm normalization:
// d of K::LN_D_BITS times r (unsigned RSQRT_M_BITS) in K::LN_DR_BITS, the result in
// K::LN_N_BITS (derive).
template <class K, typename D, typename R>
inline int_t<K::LN_N_BITS> ln_normalize(const D& d, const R& r, int sh) {
    typedef int_t<K::LN_DR_BITS> P;
    return int_t<K::LN_N_BITS>(round_shift(P(P(d) * P(r)), sh - K::LN_FRAC));
}

// arithmetic.layernorm_q for one row: S = sum x, d_i = D*x_i - S, V = sum d_i^2 + eps_q,
// (r, sh) = rsqrt_q(V), n_i = round_shift(d_i * r, sh - F), y_i = requant(n_i*g_i + b_i, m, s)
// to OBITS. Widths from derive: S ln_sum_bits, d ln_d_bits, d^2 and V unsigned ln_var_bits,
// n*g + b ln_acc_bits, its product with m ln_prod_bits. LANES elements per pipelined step
// (x, g, b, y partitioned cyclic LANES by the caller).
template <int D, class K, int OBITS, int LANES, typename XT, typename GT, typename BT,
          typename EPS, typename M, typename S, typename OT>
void layernorm_q(const XT x[D], const GT g[D], const BT b[D], const EPS& eps_q, const M& m,
                 const S& s, OT y[D]) {
    typedef int_t<K::LN_SUM_BITS> sum_t;
    typedef int_t<K::LN_D_BITS> d_t;
    typedef uint_t<K::LN_VAR_BITS> var_t;
    typedef int_t<K::LN_VAR_BITS + 1> sq_t;  // d * d, signed operands
    typedef int_t<K::LN_ACC_BITS> acc_t;
    sum_t sum = 0;
ln_sum:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": LANES values, an adder tree
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) sum = sum_t(sum + sum_t(x[i0 + l]));
    }
    var_t var = var_t(eps_q);
ln_var:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) {
                const d_t d = d_t(d_t(D) * d_t(x[i0 + l]) - d_t(sum));
                var = var_t(var + var_t(sq_t(d) * sq_t(d)));
            }
    }
    uint_t<K::RSQRT_M_BITS> r;
    int sh;
    rsqrt_q<K>(var, r, sh);
ln_norm:
    for (int i0 = 0; i0 < D; i0 += LANES) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        for (int l = 0; l < LANES; ++l)
            if (i0 + l < D) {
                const d_t d = d_t(d_t(D) * d_t(x[i0 + l]) - d_t(sum));
                const int_t<K::LN_N_BITS> n = ln_normalize<K>(d, r, sh);
                const acc_t v = acc_t(acc_t(n) * acc_t(g[i0 + l]) + acc_t(b[i0 + l]));
                y[i0 + l] = OT(requant<OBITS, K::LN_PROD_BITS>(v, m, s));
            }
    }
}

// arithmetic.topk_lower_index: the TOPK largest of t[0..E), largest first, ties to lower index.
template <int E, int TOPK, typename T>
inline void topk_lower_index(const T t[E], int idx[TOPK]) {
    bool taken[E];
    for (int e = 0; e < E; ++e) taken[e] = false;
    for (int k = 0; k < TOPK; ++k) {
        int best = -1;
        for (int e = 0; e < E; ++e)
            if (!taken[e] && (best < 0 || t[e] > t[best])) best = e;
        taken[best] = true;
        idx[k] = best;
    }
}

// The exp2 table of lookup e: one table for all, or table[e] (one copy per expert, so a
// pipelined router makes its E lookups in one cycle).
template <typename TE>
inline const TE* exp_table_of(const TE* table, int) {
    return table;
}
template <typename TE, int LEN>
inline const TE* exp_table_of(const TE (*table)[LEN], int e) {
    return table[e];
}

// arithmetic.gate_q for one token: top-k indices, then weights div_round(p_e * 2^W, sum p)
// from the softmax over ALL experts (mx = ceil(max t / 2^F), p_e = exp2_q(t_e - mx * 2^F)).
// Widths: t of K::LOGIT_BITS, t_e - mx*2^F in LOGIT_BITS + 2, p_e unsigned EXP_OUT + 1, their
// sum K::GATE_SUM_BITS (derive), p_e * 2^W unsigned EXP_OUT + W + 1; the weight <= 2^W.
template <int E, int TOPK, class K, typename T, typename WT, typename TAB>
inline void gate_q(const T t[E], int idx[TOPK], WT w[TOPK], TAB table) {
    constexpr int F = K::EXP_F, O = K::EXP_OUT, W = K::GATE_W_BITS, LB = K::LOGIT_BITS;
    typedef int_t<LB + 2> X;
    typedef uint_t<O + W + 1> N;
    constexpr int NB = imax(O + W + 2, K::GATE_SUM_BITS) + 2;  // |2a + b|, 2b (div_round)
    topk_lower_index<E, TOPK>(t, idx);
    T tmax = t[0];
    for (int e = 1; e < E; ++e) tmax = t[e] > tmax ? t[e] : tmax;
    const int_t<LB + 1> mx = ceil_shift<F, LB>(tmax);
    uint_t<O + 1> p[E];
    uint_t<K::GATE_SUM_BITS> total = 0;
    for (int e = 0; e < E; ++e) {
        const X x = X(X(t[e]) - X(X(mx) * X(1 << F)));
        p[e] = exp2_q<F, O, LB + 2>(x, exp_table_of(table, e));
        total = uint_t<K::GATE_SUM_BITS>(total + p[e]);
    }
    for (int k = 0; k < TOPK; ++k) w[k] = WT(div_round<NB>(N(N(p[idx[k]]) << W), total));
}

// arithmetic.moe_combine, one term: acc += w_k * acc2_k (exact, order-independent sum), in
// MBITS = derive's moe_acc_bits (which bounds top_k such products).
template <int MBITS, typename A, typename W, typename X>
inline int_t<MBITS> moe_combine(const A& acc, const W& w, const X& acc2) {
    typedef int_t<MBITS> T;
    return T(T(acc) + T(T(w) * T(acc2)));
}

}  // namespace evh
