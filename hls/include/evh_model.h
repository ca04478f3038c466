// evh_model.h: the modeled cycles of one instruction as this C++ is scheduled (model_cycles,
// not a hardware counter). The same formulas, loop by loop, are edgevit_hw/program/perf.py
// hls_loop_table (every loop II = 1, PIPE_DEPTH cycles of fill per pipelined loop run); a
// test checks that both give the same total on a frame.
#pragma once
#include "evh_mac.h"

namespace evh {

// Beats of a read_words burst of n words starting on a beat boundary, plus its fill.
template <class Cfg>
constexpr uint64_t words_cycles(int n) {
    return uint64_t(ceil_div(n, Cfg::PORT_BITS / 32)) + Cfg::PIPE_DEPTH;
}

// A matrix job of `rows` rows: the first slab's load (or the gather's first fill), then per
// slab the larger of its tiles' steps and the next slab's load, then the last tile's drain.
template <class Cfg>
uint64_t matmul_cycles(const Insn& in, int rows) {
    if (rows == 0) return 0;
    constexpr int C = Cfg::C, R = Cfg::R, L = imin(Cfg::R, Cfg::C), BW = Cfg::BIAS64 ? 2 : 1;
    const int k = in.k, slabs = ceil_div(in.out, C), tt_n = ceil_div(rows, R);
    const uint64_t head = (in.a1 != NONE ? words_cycles<Cfg>(BW * C) : 0) +
                          (in.a2 != NONE ? words_cycles<Cfg>(C) : 0);
    const uint64_t load = uint64_t(k) * Cfg::RB + Cfg::PIPE_DEPTH + head;
    const uint64_t fill = uint64_t(R) * ceil_div(k, L) + Cfg::PIPE_DEPTH;
    const uint64_t tiles = uint64_t(tt_n) * tile_steps<Cfg>(k);
    return (load > fill ? load : fill) + slabs * (tiles > load ? tiles : load) + R +
           Cfg::PIPE_DEPTH;
}

// LayerNorm: its constants, then per row three lane loops of ceil(D/C) and the rsqrt search.
template <class Cfg>
constexpr uint64_t layernorm_cycles() {
    return words_cycles<Cfg>(Cfg::D) + words_cycles<Cfg>(2 * Cfg::D) + words_cycles<Cfg>(2) +
           words_cycles<Cfg>(1) + Cfg::D + Cfg::PIPE_DEPTH +
           uint64_t(Cfg::N) * (3 * ceil_div(Cfg::D, Cfg::C) + Cfg::RSQRT_M_BITS +
                               4 * Cfg::PIPE_DEPTH);
}

// One attention block of P rows: load the queries, N + P - 1 skew steps, normalize C lanes.
template <class Cfg>
constexpr uint64_t attention_cycles() {
    return words_cycles<Cfg>(1) + Cfg::P + (Cfg::N + Cfg::P - 1) +
           uint64_t(Cfg::P) * ceil_div(Cfg::DH, Cfg::C) + 3 * Cfg::PIPE_DEPTH;
}

// Cycles of one instruction (its fetch included); expert jobs use the queue lengths built.
template <class Cfg>
uint64_t insn_cycles(const Insn& in, const typename Cfg::Act& a) {
    constexpr int N = Cfg::N, D = Cfg::D, LANES = ceil_div(Cfg::D, Cfg::C), PD = Cfg::PIPE_DEPTH;
    const uint64_t fetch = Cfg::INSN_BEATS + PD;
    const bool queued = (in.flags & (Cfg::FLAG_GATHER | Cfg::FLAG_SCATTER)) != 0;
    if (in.op == Cfg::OP_MATMUL)
        return fetch + matmul_cycles<Cfg>(in, queued ? int(a.queue_counts[in.index]) : in.rows);
    if (in.op == Cfg::OP_LAYERNORM) return fetch + layernorm_cycles<Cfg>();
    if (in.op == Cfg::OP_ATTENTION) return fetch + attention_cycles<Cfg>();
    if (in.op == Cfg::OP_LOAD_RES) return fetch + N * (words_cycles<Cfg>(D) + D + PD);
    if (in.op == Cfg::OP_ROUTE) return fetch + N + PD;
    if (in.op == Cfg::OP_QUEUES) return fetch + N * Cfg::TOPK + PD + Cfg::MOE_N * LANES + PD;
    if (in.op == Cfg::OP_MOE_COMBINE) return fetch + words_cycles<Cfg>(D) + N * LANES + PD;
    return fetch + uint64_t(N) * D / Cfg::TOK_PER_BEAT + PD;  // OP_OUTPUT: a beat per cycle
}

}  // namespace evh
