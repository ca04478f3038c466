// evh_weights.h: reading the weight image from the m_axi port (PORT_BITS-wide beats).
// Image layout (edgevit_hw/program/image.py): every segment starts on a beat boundary;
// weights are pre-tiled in C-column slabs of WPB = PORT_BITS / WB two's-complement lanes per
// beat (lane j = bits [j*WB, (j+1)*WB)); parameter words are 32-bit lanes; a 64-bit value is
// two words (lo, hi).
#pragma once
#include "evh_arith.h"
#include "evh_stream.h"

namespace evh {

// 32-bit word i of the segment starting at beat `seg`.
template <class Cfg>
inline uint32_t read_word(const typename Cfg::wbeat_t* port, uint32_t seg, uint32_t i) {
    constexpr int WPW = Cfg::PORT_BITS / 32;
    const typename Cfg::wbeat_t beat = port[seg + i / WPW];
    const int lane = int(i % WPW);
    return uint32_t(beat.range(32 * lane + 31, 32 * lane).to_uint64());
}

// A requantization word: multiplier m (low 24 bits) and shift s (bits 24..31).
template <class Cfg>
inline void read_rq(const typename Cfg::wbeat_t* port, uint32_t seg, uint32_t i, int32_t& m,
                    int32_t& s) {
    const uint32_t w = read_word<Cfg>(port, seg, i);
    m = int32_t(w & 0xFFFFFFu);
    s = int32_t(w >> 24);
}

// Burst-read `count` consecutive 32-bit words from word w0 of the segment at beat `seg`: one
// beat per cycle, sequential addresses (inferred as an AXI burst).
template <class Cfg, int MAXN>
void read_words(const typename Cfg::wbeat_t* port, uint32_t seg, uint32_t w0, int count,
                uint32_t dst[MAXN]) {
    constexpr int WPW = Cfg::PORT_BITS / 32;
    const uint32_t w1 = w0 + uint32_t(count);
    const uint32_t b0 = w0 / WPW, b1 = (w1 + WPW - 1) / WPW;
read_word_beats:
    for (uint32_t b = b0; b < b1; ++b) {
EVH_PRAGMA(HLS PIPELINE II = 1)
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = MAXN / WPW + 1)
        const typename Cfg::wbeat_t beat = port[seg + b];
        for (int j = 0; j < WPW; ++j) {
EVH_PRAGMA(HLS UNROLL)
            const uint32_t w = b * WPW + uint32_t(j);
            if (w >= w0 && w < w1)
                dst[w - w0] = uint32_t(beat.range(32 * j + 31, 32 * j).to_uint64());
        }
    }
}

constexpr uint32_t NONE = 0xFFFFFFFFu;  // an absent segment (edgevit_hw.program.isa.NONE)

// Decoders of words already read: a signed 32-bit value, a 64-bit value (lo, hi), a
// requantization word (m | s << 24).
inline i64 word_i32(uint32_t w) { return i64(int32_t(w)); }
inline i64 word_i64(uint32_t lo, uint32_t hi) { return i64(u64(lo) | (u64(hi) << 32)); }
inline void word_rq(uint32_t w, int32_t& m, int32_t& s) {
    m = int32_t(w & 0xFFFFFFu);
    s = int32_t(w >> 24);
}

// Burst-copy the K weight rows of column slab t (outputs [t*C, t*C + C)) to the MAC array:
// the image holds the slab pre-tiled (program/image.py), K rows of C lanes in RB = Cfg::RB
// beats each, so one beat per cycle, a row leaving with its last beat. Lanes past the
// layer's outputs are zeros in the image.
template <class Cfg>
void load_slab_rows(const typename Cfg::wbeat_t* port, uint32_t seg, int k_dim, int t,
                    hls::stream<WRow<Cfg>>& ws) {
    constexpr int WPB = Cfg::WPB, WB = Cfg::WB, RB = Cfg::RB;
    const uint32_t base = seg + uint32_t(t) * uint32_t(k_dim) * RB;
    const uint32_t nbeats = uint32_t(k_dim) * RB;
    WRow<Cfg> row;
    int rb = 0;
load_beats:
    for (uint32_t i = 0; i < nbeats; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE] UG1399 "pragma HLS pipeline": one beat per cycle
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K * Cfg::RB)
        const typename Cfg::wbeat_t beat = port[base + i];
        for (int j = 0; j < WPB; ++j) {
EVH_PRAGMA(HLS UNROLL)  // UG1399 "pragma HLS unroll": the beat's lanes in parallel
            const int c = rb * WPB + j;
            if (c < Cfg::C) {
                ap_int<WB> lane = beat.range(WB * j + WB - 1, WB * j);
                row.v[c] = typename Cfg::w_t(lane.to_int());
            }
        }
        if (++rb == RB) {
            rb = 0;
            ws.write(row);
        }
    }
}

// Biases (32- or 64-bit words, 0 when the layer has none) and requantization constants
// (m = 1, s = 0 when none) of the C columns of slab t; columns past o_dim get 0 and (1, 0).
template <class Cfg>
void load_slab_head(const typename Cfg::wbeat_t* port, uint32_t bseg, uint32_t qseg, int o_dim,
                    int t, typename Cfg::acc_t bias[Cfg::C], TileHead<Cfg>& head) {
    constexpr int BW = Cfg::BIAS64 ? 2 : 1;  // words per bias
    const int o0 = t * Cfg::C;
    const int ncols = o_dim - o0 < Cfg::C ? o_dim - o0 : Cfg::C;
    uint32_t bw[2 * Cfg::C], qw[Cfg::C];
    if (bseg != NONE) read_words<Cfg, 2 * Cfg::C>(port, bseg, uint32_t(BW * o0), BW * ncols, bw);
    if (qseg != NONE) read_words<Cfg, Cfg::C>(port, qseg, uint32_t(o0), ncols, qw);
    head.ncols = ncols;
    for (int c = 0; c < Cfg::C; ++c) {
EVH_PRAGMA(HLS UNROLL)  // UG1399 "pragma HLS unroll": C columns (registers)
        const bool on = c < ncols;
        bias[c] = 0;
        if (on && bseg != NONE)
            bias[c] = typename Cfg::acc_t(Cfg::BIAS64 ? word_i64(bw[2 * c], bw[2 * c + 1])
                                                      : word_i32(bw[c]));
        head.m[c] = 1;
        head.s[c] = 0;
        if (on && qseg != NONE) word_rq(qw[c], head.m[c], head.s[c]);
    }
}

}  // namespace evh
