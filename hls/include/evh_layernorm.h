// evh_layernorm.h: integer LayerNorm over the residual stream, one row at a time
// (layernorm_q itself is in evh_arith.h).
#pragma once
#include "evh_arith.h"
#include "evh_weights.h"

namespace evh {

// All rows; gamma, beta, eps and (m, s) read once from the weight image.
template <class Cfg, typename OT>
void layernorm_rows(const typename Cfg::wbeat_t* port, const NormSeg& seg,
                    const typename Cfg::res_t x[Cfg::N][Cfg::D], int bits,
                    OT y[Cfg::N][Cfg::D]) {
    i64 g[Cfg::D], b[Cfg::D];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = g cyclic factor = Cfg::C dim = 1)  // UG1399 "pragma HLS array_partition": C lanes
EVH_PRAGMA(HLS ARRAY_PARTITION variable = b cyclic factor = Cfg::C dim = 1)
    uint32_t gw[Cfg::D], bw[2 * Cfg::D], ew[2], qw[1];
    read_words<Cfg, Cfg::D>(port, seg.g, 0, Cfg::D, gw);
    read_words<Cfg, 2 * Cfg::D>(port, seg.b, 0, 2 * Cfg::D, bw);
    read_words<Cfg, 2>(port, seg.eps, 0, 2, ew);
    read_words<Cfg, 1>(port, seg.q, 0, 1, qw);
ln_params:
    for (int i = 0; i < Cfg::D; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        g[i] = word_i32(gw[i]);
        b[i] = word_i64(bw[2 * i], bw[2 * i + 1]);
    }
    const i64 eps_q = word_i64(ew[0], ew[1]);
    int32_t m, s;
    word_rq(qw[0], m, s);
ln_rows:
    for (int n = 0; n < Cfg::N; ++n)  // rows in sequence: four pipelined lane loops each
        layernorm_q<Cfg::D, Cfg::LN_FRAC, Cfg, typename Cfg::res_t, OT, Cfg::C>(x[n], g, b, eps_q,
                                                                              m, s, bits, y[n]);
}

}  // namespace evh
