// evh_moe.h: the MoE router (gate logits come from the MAC array) and the per-expert token
// queues (patch reordering): tokens routed to expert e are listed in token order, so each
// selected expert's weights stream from DRAM once per frame and unused experts cost nothing.
#pragma once
#include "evh_arith.h"

namespace evh {

// arithmetic.gate_q per token, one token per cycle: E logits (gate_logits partitioned in
// dim 2 where defined), E exp2 lookups in E table copies; widths of gate_q (evh_arith.h).
template <class Cfg>
void router(const typename Cfg::logit_t logits[Cfg::MOE_N][Cfg::E],
            typename Cfg::eidx_t gate_idx[Cfg::MOE_N][Cfg::TOPK],
            typename Cfg::gw_t gate_w[Cfg::MOE_N][Cfg::TOPK]) {
    uint_t<Cfg::EXP_OUT + 1> etab[Cfg::E][1 << Cfg::EXP_F];  // arithmetic.exp2_table entries
EVH_PRAGMA(HLS ARRAY_PARTITION variable = etab complete dim = 1)  // UG1399 "pragma HLS array_partition"
router_table:
    for (int f = 0; f < (1 << Cfg::EXP_F); ++f) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline" (constant: per-expert ROMs)
        for (int e = 0; e < Cfg::E; ++e) etab[e][f] = uint_t<Cfg::EXP_OUT + 1>(Cfg::EXP2_TABLE[f]);
    }
router_tokens:
    for (int n = 0; n < Cfg::N; ++n) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        typename Cfg::logit_t t[Cfg::E];
        typename Cfg::gw_t w[Cfg::TOPK];
        int idx[Cfg::TOPK];
        for (int e = 0; e < Cfg::E; ++e) t[e] = logits[n][e];
        gate_q<Cfg::E, Cfg::TOPK, Cfg>(t, idx, w, etab);
        for (int k = 0; k < Cfg::TOPK; ++k) {
            gate_idx[n][k] = typename Cfg::eidx_t(idx[k]);
            gate_w[n][k] = w[k];
        }
    }
}

// golden.expert_queues: for each expert, its (token, slot) pairs in token order.
template <class Cfg>
void build_queues(const typename Cfg::eidx_t gate_idx[Cfg::MOE_N][Cfg::TOPK],
                  typename Cfg::tok_idx_t qtok[Cfg::E][Cfg::MOE_N],
                  typename Cfg::slot_t qslot[Cfg::E][Cfg::MOE_N], typename Cfg::cnt_t qcount[Cfg::E]) {
    for (int e = 0; e < Cfg::E; ++e) qcount[e] = 0;  // registers (complete partition)
queue_entries:
    for (int n = 0; n < Cfg::N; ++n)
        for (int k = 0; k < Cfg::TOPK; ++k) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            const int e = gate_idx[n][k];
            qtok[e][qcount[e]] = typename Cfg::tok_idx_t(n);
            qslot[e][qcount[e]] = typename Cfg::slot_t(k);
            ++qcount[e];
        }
}

}  // namespace evh
