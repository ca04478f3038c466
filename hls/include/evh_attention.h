// evh_attention.h: the attention engine. P query rows stay resident; K and V vectors stream in
// ONCE per block of P rows, one key per step, through a P-stage skew register: at step t row p
// sees key t - p, so every row consumes keys in natural order 0..N-1 (the order the online
// softmax is defined in) while the read bandwidth is one K and one V vector per step whatever
// P is. Scores are produced and consumed on the fly: no N x N matrix exists anywhere.
#pragma once
#include "evh_mac.h"  // ceil_div

namespace evh {

// One block of P query rows of head h: rows [i0, i0 + P) of Q against all keys. qkv is
// partitioned cyclic QKV_BANKS >= DH in dim 2 where it is defined (evh_frame.h), so the DH
// values of a K row and of a V row are one access per bank each (two ports).
template <class Cfg>
void attention_rows(const typename Cfg::act_t qkv[Cfg::N][3 * Cfg::D], int h, int i0,
                    typename Cfg::mult_t lm, typename Cfg::shift_t ls,
                    typename Cfg::act_t out[Cfg::N][Cfg::D]) {
    constexpr int P = Cfg::P, DH = Cfg::DH, N = Cfg::N, D = Cfg::D, C = Cfg::C;
    typedef typename Cfg::act_t act_t;
    typedef typename Cfg::score_t score_t;
    act_t q[P][DH], kreg[P][DH], vreg[P][DH];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = q complete dim = 0)     // UG1399 "pragma HLS array_partition": registers
EVH_PRAGMA(HLS ARRAY_PARTITION variable = kreg complete dim = 0)  // (the skew register)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = vreg complete dim = 0)
    SoftmaxRow<DH, Cfg> st[P];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = st complete dim = 0)
    // one exp2 table per row (P lookups per step), entries of EXP_OUT + 1 unsigned bits
    uint_t<Cfg::EXP_OUT + 1> etab[P][1 << Cfg::EXP_F];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = etab complete dim = 1)
exp2_copy:
    for (int f = 0; f < (1 << Cfg::EXP_F); ++f) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline" (constant: per-row ROMs)
        for (int p = 0; p < P; ++p) etab[p][f] = uint_t<Cfg::EXP_OUT + 1>(Cfg::EXP2_TABLE[f]);
    }
load_q:
    for (int p = 0; p < P; ++p) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": one query row per cycle
        online_softmax_init<DH, Cfg>(st[p]);
        for (int d = 0; d < DH; ++d) {
            q[p][d] = i0 + p < N ? qkv[i0 + p][h * DH + d] : act_t(0);
            kreg[p][d] = 0;
            vreg[p][d] = 0;
        }
    }
skew_steps:
    for (int t = 0; t < N + P - 1; ++t) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        for (int p = P - 1; p > 0; --p)
            for (int d = 0; d < DH; ++d) {
                kreg[p][d] = kreg[p - 1][d];
                vreg[p][d] = vreg[p - 1][d];
            }
        if (t < N)
            for (int d = 0; d < DH; ++d) {
                kreg[0][d] = qkv[t][D + h * DH + d];
                vreg[0][d] = qkv[t][2 * D + h * DH + d];
            }
        for (int p = 0; p < P; ++p) {
            const int j = t - p;
            if (j < 0 || j >= N || i0 + p >= N) continue;
            score_t s = 0;  // arithmetic.matmul_exact, one (query, key) pair
            for (int d = 0; d < DH; ++d) s = score_t(s + score_t(q[p][d]) * score_t(kreg[p][d]));
            // the logit: score (score_bits) times lm (mult_bits), exact in their sum
            const typename Cfg::logit_t tl =
                requant<Cfg::LOGIT_BITS, Cfg::SCORE_BITS + Cfg::MULT_BITS>(s, lm, ls);
            online_softmax_ref<DH, Cfg>(st[p], tl, vreg[p], etab[p]);
        }
    }
normalize:
    for (int i = 0; i < P * ceil_div(DH, C); ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": C dividers, C lanes of a row
        const int p = i / ceil_div(DH, C), d0 = (i % ceil_div(DH, C)) * C;
        if (i0 + p >= N) break;
        for (int u = 0; u < C; ++u) {
            const int d = d0 + u;
            if (d < DH)
                out[i0 + p][h * DH + d] = act_t(normalize_attention<Cfg>(st[p].acc[d], st[p].l));
        }
    }
}

}  // namespace evh
