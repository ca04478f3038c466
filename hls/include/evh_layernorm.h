// evh_layernorm.h: integer LayerNorm over the residual stream, one row at a time
// (layernorm_q itself is in evh_arith.h).
#pragma once
#include "evh_arith.h"
#include "evh_weights.h"

namespace evh {

// All rows; gamma, beta, eps and (m, s) read once from the weight image. Gamma of
// ln_gamma_bits, beta of bias_bits (the quantizer saturates both), eps_q unsigned of
// ln_var_bits (the quantizer caps it), all decoded at their derived widths.
template <class Cfg, typename OT>
void layernorm_rows(const typename Cfg::wbeat_t* port, const NormSeg& seg,
                    const typename Cfg::res_t x[Cfg::N][Cfg::D], OT y[Cfg::N][Cfg::D]) {
    typename Cfg::gamma_t g[Cfg::D];
    typename Cfg::bias_t b[Cfg::D];
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
        g[i] = word_int<Cfg::LN_GAMMA_BITS>(gw[i]);
        b[i] = word_pair<Cfg::BIAS_BITS>::get(bw[2 * i], bw[2 * i + 1]);
    }
    const uint_t<Cfg::LN_VAR_BITS> eps_q =
        uint_t<Cfg::LN_VAR_BITS>(word_pair<Cfg::LN_VAR_BITS + 1>::get(ew[0], ew[1]));
    typename Cfg::mult_t m;
    typename Cfg::shift_t s;
    word_rq<Cfg>(qw[0], m, s);
ln_rows:
    for (int n = 0; n < Cfg::N; ++n)  // rows in sequence: four pipelined lane loops each
        layernorm_q<Cfg::D, Cfg, Cfg::ACT_BITS, Cfg::C>(x[n], g, b, eps_q, m, s, y[n]);
}

}  // namespace evh
