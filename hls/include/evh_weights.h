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
    return uint32_t(beat.range(32 * lane + 31, 32 * lane).to_uint());
}

// A requantization word: multiplier m (low 24 bits; m < 2^mult_bits, quantize_multiplier) and
// shift s (bits 24..31; s <= 62 fits derive's SHIFT_BITS).
template <class Cfg>
inline void word_rq(uint32_t w, typename Cfg::mult_t& m, typename Cfg::shift_t& s) {
    m = typename Cfg::mult_t(w & 0xFFFFFFu);
    s = typename Cfg::shift_t(w >> 24);
}

// Requantization word i of the segment starting at beat `seg`.
template <class Cfg>
inline void read_rq(const typename Cfg::wbeat_t* port, uint32_t seg, uint32_t i,
                    typename Cfg::mult_t& m, typename Cfg::shift_t& s) {
    word_rq<Cfg>(read_word<Cfg>(port, seg, i), m, s);
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
                dst[w - w0] = uint32_t(beat.range(32 * j + 31, 32 * j).to_uint());
        }
    }
}

constexpr uint32_t NONE = 0xFFFFFFFFu;  // an absent segment (edgevit_hw.program.isa.NONE)

// A signed N-bit value (N <= 32) held in one 32-bit word.
template <int N>
inline int_t<N> word_int(uint32_t w) {
    static_assert(N <= 32, "one word holds at most 32 bits");
    return int_t<N>(int32_t(w));
}

// A signed N-bit value held in the words (lo, hi) of a 64-bit two's complement value (biases
// wider than 32 bits, LayerNorm beta and eps): lo alone when N <= 32, else hi * 2^32 + lo,
// formed in N bits.
template <int N, bool TWO = (N > 32)>
struct word_pair {
    static int_t<N> get(uint32_t lo, uint32_t) { return int_t<N>(int32_t(lo)); }
};
template <int N>
struct word_pair<N, true> {
    static int_t<N> get(uint32_t lo, uint32_t hi) {
        typedef int_t<N> T;
        return T(T(T(int32_t(hi)) * (T(1) << 32)) + T(lo));
    }
};

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
    constexpr int BW = Cfg::BIAS64 ? 2 : 1;  // words per bias (BIAS64: bias_bits > 32)
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
            bias[c] = typename Cfg::acc_t(
                word_pair<Cfg::BIAS_BITS>::get(bw[BW * c], bw[BW * c + BW - 1]));
        head.m[c] = 1;
        head.s[c] = 0;
        if (on && qseg != NONE) word_rq<Cfg>(qw[c], head.m[c], head.s[c]);
    }
}

}  // namespace evh
