// evh_mac.h: the unified compute unit. One R x C integer MAC array runs every matrix product
// (patch embedding, QKV, projection, MLP, router, experts): a gather process streams token
// tiles in, weights stream from DRAM one C-column tile at a time (double-buffered: tile t+1
// loads while tile t computes), and exact accumulators leave through post-processing
// epilogues (requant, GELU, residual add, logits, gate-weighted MoE accumulation).
#pragma once
#include "evh_arith.h"
#include "evh_stream.h"
#include "evh_weights.h"

namespace evh {

template <class Cfg>
using XStream = hls::stream<XBeat<Cfg>>;
template <class Cfg>
using HeadStream = hls::stream<TileHead<Cfg>>;
template <class Cfg>
using AccStream = hls::stream<AccRow<Cfg>>;

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Gather: for each output tile, for each token tile of R rows (rows[] or identity), K beats of
// R activations. Rows past nrows are zero.
template <class Cfg, typename XT, int XS>
void gather_rows(const XT src[][XS], const typename Cfg::tok_idx_t rows[Cfg::MOE_N], bool ident,
                 int nrows, int k_dim, int o_dim, XStream<Cfg>& xs) {
    const int ot_n = ceil_div(o_dim, Cfg::C), tt_n = ceil_div(nrows, Cfg::R);
    for (int ot = 0; ot < ot_n; ++ot)
        for (int tt = 0; tt < tt_n; ++tt) {
            int src_row[Cfg::R];
            for (int r = 0; r < Cfg::R; ++r) {
                const int i = tt * Cfg::R + r;
                src_row[r] = i < nrows ? (ident ? i : int(rows[i])) : -1;
            }
        gather_k:
            for (int k = 0; k < k_dim; ++k) {
EVH_PRAGMA(HLS PIPELINE II = 1)
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K)
                XBeat<Cfg> b;
                for (int r = 0; r < Cfg::R; ++r)
                    b.v[r] = src_row[r] >= 0 ? typename Cfg::xin_t(src[src_row[r]][k])
                                            : typename Cfg::xin_t(0);
                xs.write(b);
            }
        }
}

// Weight tile t of a layer (columns [t*C, t*C + ncols)) with biases and requant constants.
template <class Cfg>
void load_tile(const typename Cfg::wbeat_t* port, const LinSeg& seg, int k_dim, int o_dim, int t,
               typename Cfg::w_t w[Cfg::MAX_K][Cfg::C], i64 bias[Cfg::C], TileHead<Cfg>& head) {
    const int o0 = t * Cfg::C;
    const int ncols = o_dim - o0 < Cfg::C ? o_dim - o0 : Cfg::C;
    load_weight_tile<Cfg>(port, seg.w, k_dim, o0, w);
    head.col0 = o0;
    head.ncols = ncols;
    constexpr int BW = Cfg::BIAS64 ? 2 : 1;  // words per bias
    uint32_t bw[2 * Cfg::C], qw[Cfg::C];
    if (seg.b != NONE) read_words<Cfg, 2 * Cfg::C>(port, seg.b, uint32_t(BW * o0), BW * ncols, bw);
    if (seg.q != NONE) read_words<Cfg, Cfg::C>(port, seg.q, uint32_t(o0), ncols, qw);
    for (int c = 0; c < Cfg::C; ++c) {
        const bool on = c < ncols;
        bias[c] = 0;
        if (on && seg.b != NONE)
            bias[c] = Cfg::BIAS64 ? word_i64(bw[2 * c], bw[2 * c + 1]) : word_i32(bw[c]);
        head.m[c] = 1;
        head.s[c] = 0;
        if (on && seg.q != NONE) word_rq(qw[c], head.m[c], head.s[c]);
    }
}

// arithmetic.linear on one (output tile, token tiles) pair: acc = x . w^T + b, exact.
template <class Cfg>
void compute_tile(const typename Cfg::w_t w[Cfg::MAX_K][Cfg::C], const i64 bias[Cfg::C],
                  const TileHead<Cfg>& head, int k_dim, int nrows, XStream<Cfg>& xs,
                  HeadStream<Cfg>& hs, AccStream<Cfg>& as) {
    typedef typename Cfg::acc_t acc_t;
    hs.write(head);
    const int tt_n = ceil_div(nrows, Cfg::R);
    for (int tt = 0; tt < tt_n; ++tt) {
        acc_t acc[Cfg::R][Cfg::C];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = acc complete dim = 0)
        for (int r = 0; r < Cfg::R; ++r)
            for (int c = 0; c < Cfg::C; ++c) acc[r][c] = acc_t(bias[c]);
    mac_k:
        for (int k = 0; k < k_dim; ++k) {
EVH_PRAGMA(HLS PIPELINE II = 1)
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K)
            const XBeat<Cfg> x = xs.read();
            for (int r = 0; r < Cfg::R; ++r) {
                const acc_t xv = acc_t(x.v[r]);
                for (int c = 0; c < Cfg::C; ++c) acc[r][c] += xv * acc_t(w[k][c]);
            }
        }
        for (int r = 0; r < Cfg::R; ++r) {
            const int row = tt * Cfg::R + r;
            if (row >= nrows) break;
            AccRow<Cfg> out;
            out.row = row;
            for (int c = 0; c < Cfg::C; ++c) out.v[c] = acc[r][c];
            as.write(out);
        }
    }
}

// The MAC array for one layer: weight tiles ping-pong between wbuf[0] and wbuf[1] (explicit
// branches so each buffer is a distinct memory: tile t+1 loads while tile t computes).
template <class Cfg>
void mac_unit(const typename Cfg::wbeat_t* port, const LinSeg& seg, int k_dim, int o_dim,
              int nrows, typename Cfg::w_t wbuf[2][Cfg::MAX_K][Cfg::C], XStream<Cfg>& xs,
              HeadStream<Cfg>& hs, AccStream<Cfg>& as) {
// Each half: the C columns of a row k are read in parallel by the array and written in
// parallel by the loader (up to WPB lanes of one row per beat): complete in c.
EVH_PRAGMA(HLS ARRAY_PARTITION variable = wbuf complete dim = 1)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = wbuf complete dim = 3)
    i64 bias[2][Cfg::C];
    TileHead<Cfg> head[2];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = bias complete dim = 0)
    const int ot_n = ceil_div(o_dim, Cfg::C);
    load_tile<Cfg>(port, seg, k_dim, o_dim, 0, wbuf[0], bias[0], head[0]);
    for (int t = 0; t < ot_n; ++t) {
        const bool more = t + 1 < ot_n;
        if ((t & 1) == 0) {
            if (more) load_tile<Cfg>(port, seg, k_dim, o_dim, t + 1, wbuf[1], bias[1], head[1]);
            compute_tile<Cfg>(wbuf[0], bias[0], head[0], k_dim, nrows, xs, hs, as);
        } else {
            if (more) load_tile<Cfg>(port, seg, k_dim, o_dim, t + 1, wbuf[0], bias[0], head[0]);
            compute_tile<Cfg>(wbuf[1], bias[1], head[1], k_dim, nrows, xs, hs, as);
        }
    }
}

// ---- epilogues: each consumes ceil(O/C) tile heads, each followed by nrows accumulator rows.

// requant to a BITS-wide destination (activations, router logits):
// dst[row][col_base + col] = requant(acc, m, s, BITS).
template <int BITS, class Cfg, class T, int DS>
void epi_requant(HeadStream<Cfg>& hs, AccStream<Cfg>& as, int o_dim, int nrows, T dst[][DS]) {
    for (int t = 0; t < ceil_div(o_dim, Cfg::C); ++t) {
        const TileHead<Cfg> h = hs.read();
        for (int i = 0; i < nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            const AccRow<Cfg> a = as.read();
            for (int c = 0; c < Cfg::C; ++c)  // unrolled: C lanes per row
                if (c < h.ncols)
                    dst[a.row][h.col0 + c] = T(requant(a.v[c], h.m[c], h.s[c], BITS));
        }
    }
}

// residual_add into the residual stream at token row + row_offset.
template <class Cfg>
void epi_residual(HeadStream<Cfg>& hs, AccStream<Cfg>& as, int o_dim, int nrows, int row_offset,
                  typename Cfg::res_t res[Cfg::N][Cfg::D]) {
    for (int t = 0; t < ceil_div(o_dim, Cfg::C); ++t) {
        const TileHead<Cfg> h = hs.read();
        for (int i = 0; i < nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            const AccRow<Cfg> a = as.read();
            const int tok = a.row + row_offset;
            for (int c = 0; c < Cfg::C; ++c)  // unrolled: C lanes per row
                if (c < h.ncols)
                    res[tok][h.col0 + c] = typename Cfg::res_t(
                        residual_add(res[tok][h.col0 + c], a.v[c], h.m[c], h.s[c], Cfg::RES_BITS));
        }
    }
}

// requant to the GELU input, gelu_q, requant (gm, gs) to the hidden activations.
template <class Cfg>
void epi_gelu(HeadStream<Cfg>& hs, AccStream<Cfg>& as, int o_dim, int nrows, i64 gm, int gs,
              typename Cfg::act_t hid[Cfg::N][Cfg::HID]) {
    for (int t = 0; t < ceil_div(o_dim, Cfg::C); ++t) {
        const TileHead<Cfg> h = hs.read();
        for (int i = 0; i < nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            const AccRow<Cfg> a = as.read();
            for (int c = 0; c < Cfg::C; ++c)  // unrolled: C lanes per row
                if (c < h.ncols) {
                    const i64 u = requant(a.v[c], h.m[c], h.s[c], Cfg::GELU_IN_BITS);
                    const i64 g = gelu_q<Cfg::GELU_F, Cfg>(u, Cfg::GELU_TABLE);
                    hid[a.row][h.col0 + c] = typename Cfg::act_t(requant(g, gm, gs, Cfg::ACT_BITS));
                }
        }
    }
}

// moe_combine scatter: queue row -> (token, slot); acc[token] += gate_w[token][slot] * acc2.
template <class Cfg>
void epi_moe(HeadStream<Cfg>& hs, AccStream<Cfg>& as, int o_dim, int nrows,
             const typename Cfg::tok_idx_t qtok[Cfg::MOE_N],
             const typename Cfg::slot_t qslot[Cfg::MOE_N],
             const typename Cfg::gw_t gate_w[Cfg::MOE_N][Cfg::TOPK],
             typename Cfg::moe_t macc[Cfg::MOE_N][Cfg::D]) {
    for (int t = 0; t < ceil_div(o_dim, Cfg::C); ++t) {
        const TileHead<Cfg> h = hs.read();
        for (int i = 0; i < nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            const AccRow<Cfg> a = as.read();
            const int tok = qtok[a.row];
            const i64 w = gate_w[tok][qslot[a.row]];
            for (int c = 0; c < Cfg::C; ++c)  // unrolled: C lanes per row
                if (c < h.ncols)
                    macc[tok][h.col0 + c] =
                        typename Cfg::moe_t(moe_combine(macc[tok][h.col0 + c], w, a.v[c]));
        }
    }
}

}  // namespace evh
