// evh_mac.h: the unified compute unit. One R x C integer MAC array runs every matrix product
// (patch embedding, QKV, projection, MLP, router, experts) as ONE dataflow region, linear():
//   gather  -> X beats (R activations per k) and, per row, its destination (token, gate weight,
//              the old values of a read-modify-write destination), to the MAC array
//   loader  -> per column slab: biases and the slab head (valid columns, requant constants),
//              then K rows of C weights (pre-tiled in the image: a plain burst copy), to the
//              MAC array
//   mac     -> exact accumulators, one row of C per cycle while the next tile computes; passes
//              each slab head and each row's destination on to the epilogue
//   epilogue-> requant, GELU, residual add, logits, gate-weighted MoE accumulation: writes only
// Every loop below is PIPELINE II=1 (or UNROLLed inside one); edgevit_hw/program/perf.py
// (hls_loop_table) lists each loop's accesses per array, the ports its partitioning gives and
// the II that results. UG1399 rules cited next to the pragmas:
//   [PIPE] "pragma HLS pipeline"; [UNR] "pragma HLS unroll"; [PART] "pragma HLS
//   array_partition" (placed where the array is defined); [DEP] "pragma HLS dependence" /
//   "Managing Pipeline Dependencies"; [DF] "pragma HLS dataflow" / "Canonical Forms" and
//   "Dataflow Optimization Limitations" (see linear()); [STRM] "pragma HLS stream";
//   [TRIP] "pragma HLS loop_tripcount".
#pragma once
#include "evh_arith.h"
#include "evh_stream.h"
#include "evh_weights.h"

namespace evh {

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One matrix job of the program, decoded (task stride applied, queue length as rows).
template <class Cfg>
struct Job {
    uint32_t w, b, q;  // beats of the weights, biases (NONE: none) and requant words
    int k_dim, o_dim, nrows, row0;
    int src, epi, expert;
    bool gather, scatter;     // rows from / to the queue of `expert`
    typename Cfg::mult_t gm;  // EPI_GELU: requant of the GELU output
    typename Cfg::shift_t gs;
};

// Steps of one token tile: K products, at least R (the drain of the previous tile's R rows
// overlaps them), and at least the fill of the next tile's R rows, L = min(R, C) per step.
template <class Cfg>
inline int tile_steps(int k_dim) {
    constexpr int L = imin(Cfg::R, Cfg::C);
    return imax(imax(k_dim, Cfg::R), Cfg::R * ceil_div(k_dim, L));
}

template <class Cfg>
using XStream = hls::stream<XBeat<Cfg>>;
template <class Cfg>
using DstStream = hls::stream<RowDst<Cfg>>;
template <class Cfg>
using SlabStream = hls::stream<SlabHead<Cfg>>;
template <class Cfg>
using WRowStream = hls::stream<WRow<Cfg>>;
template <class Cfg>
using HeadStream = hls::stream<TileHead<Cfg>>;
template <class Cfg>
using AccStream = hls::stream<AccRow<Cfg>>;

// A row of each on-chip buffer a matrix job reads (gather) or writes (epilogue).
template <class Cfg>
using PixRow = typename Cfg::pix_t[Cfg::PATCH_DIM];
template <class Cfg>
using ActRow = typename Cfg::act_t[Cfg::D];
template <class Cfg>
using HidRow = typename Cfg::act_t[Cfg::HID];
template <class Cfg>
using ResRow = typename Cfg::res_t[Cfg::D];
template <class Cfg>
using MoeRow = typename Cfg::moe_t[Cfg::D];

// Source row of compact row i of the job (its queue's token when gathering).
template <class Cfg>
inline int src_row(const Job<Cfg>& j, const typename Cfg::tok_idx_t qtok[Cfg::MOE_N], int i) {
    return j.gather ? int(qtok[i]) : i;
}

// L activations of row `row`, columns [k0, k0 + L), of the job's source buffer (0 past K).
template <class Cfg>
inline void read_segment(const Job<Cfg>& j, const PixRow<Cfg> pixels[Cfg::PATCHES],
                         const ActRow<Cfg> ln_out[Cfg::N], const ActRow<Cfg> attn_out[Cfg::N],
                         const HidRow<Cfg> hidden[Cfg::N], int row, int k0,
                         typename Cfg::xin_t seg[imin(Cfg::R, Cfg::C)]) {
    constexpr int L = imin(Cfg::R, Cfg::C);
    for (int l = 0; l < L; ++l) {
EVH_PRAGMA(HLS UNROLL)  // [UNR] L consecutive columns: L distinct banks of the cyclic-C buffers
        const int k = k0 + l;
        typename Cfg::xin_t v = 0;
        if (k < j.k_dim) {
            if (j.src == Cfg::BUF_PIXELS) v = pixels[row][k];
            else if (j.src == Cfg::BUF_LN_OUT) v = ln_out[row][k];
            else if (j.src == Cfg::BUF_ATTN_OUT) v = attn_out[row][k];
            else if (j.src == Cfg::BUF_HIDDEN) v = hidden[row][k];
        }
        seg[l] = v;
    }
}

// The destination of compact row ci of column slab t: token row, gate weight when scattering,
// and the C old values of the row's slab columns when the epilogue adds to them (residual,
// MoE sums; one access per bank of their cyclic-C partition).
template <class Cfg>
inline RowDst<Cfg> row_dst(const Job<Cfg>& j, const ResRow<Cfg> residual[Cfg::N],
                           const MoeRow<Cfg> moe_acc[Cfg::MOE_N],
                           const typename Cfg::tok_idx_t qtok[Cfg::MOE_N],
                           const typename Cfg::slot_t qslot[Cfg::MOE_N],
                           const typename Cfg::gw_t gate_w[Cfg::MOE_N][Cfg::TOPK], int t,
                           int ci) {
    RowDst<Cfg> d;
    const int tok = j.scatter ? int(qtok[ci]) : ci + j.row0;
    d.tok = typename Cfg::tok_idx_t(tok);
    d.gw = j.scatter ? gate_w[tok][int(qslot[ci])] : typename Cfg::gw_t(0);
    for (int c = 0; c < Cfg::C; ++c) {
EVH_PRAGMA(HLS UNROLL)  // [UNR] C lanes: C banks of the cyclic-C residual / MoE sums
        const int col = t * Cfg::C + c;
        old_t<Cfg> v = 0;
        if (col < j.o_dim && j.epi == Cfg::EPI_RESIDUAL) v = residual[tok][col];
        else if (col < j.o_dim && j.epi == Cfg::EPI_MOE) v = moe_acc[tok][col];
        d.old[c] = v;
    }
    return d;
}

// Gather process, the region's only reader of activation buffers: for every (slab, token
// tile) it streams K beats of R activations read from a double-buffered transpose tile xt
// (tile i streams from xt[i & 1] while tile i + 1 fills xt[(i + 1) & 1], one row segment of
// L values per step: a data-dependent row costs one access per bank, expert queues
// included), and the destination of each of the tile's rows (row_dst).
template <class Cfg>
void gather(const Job<Cfg>& j, const PixRow<Cfg> pixels[Cfg::PATCHES],
            const ActRow<Cfg> ln_out[Cfg::N], const ActRow<Cfg> attn_out[Cfg::N],
            const HidRow<Cfg> hidden[Cfg::N], const ResRow<Cfg> residual[Cfg::N],
            const MoeRow<Cfg> moe_acc[Cfg::MOE_N],
            const typename Cfg::tok_idx_t queue_tokens[Cfg::E][Cfg::MOE_N],
            const typename Cfg::slot_t queue_slots[Cfg::E][Cfg::MOE_N],
            const typename Cfg::gw_t gate_weights[Cfg::MOE_N][Cfg::TOPK], XStream<Cfg>& xs,
            DstStream<Cfg>& ds) {
    constexpr int R = Cfg::R, L = imin(Cfg::R, Cfg::C), XK = ceil_div(Cfg::MAX_K, L) * L;
    typename Cfg::xin_t xt[2][R][XK];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt complete dim = 1)  // [PART] parity halves
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt complete dim = 2)  // [PART] R rows read per step
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt cyclic factor = imin(Cfg::R, Cfg::C) dim = 3)
    const typename Cfg::tok_idx_t* qtok = queue_tokens[j.expert];
    const typename Cfg::slot_t* qslot = queue_slots[j.expert];
    const int tt_n = ceil_div(j.nrows, R), segs = ceil_div(j.k_dim, L);
    const int tiles = ceil_div(j.o_dim, Cfg::C) * tt_n, steps = tile_steps<Cfg>(j.k_dim);
gather_fill0:
    for (int f = 0; f < R * segs; ++f) {  // the first tile
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::R * Cfg::MAX_K)  // [TRIP]
        const int r = f / segs, s = f % segs;
        typename Cfg::xin_t seg[L];
        if (r < j.nrows)
            read_segment<Cfg>(j, pixels, ln_out, attn_out, hidden, src_row<Cfg>(j, qtok, r),
                              s * L, seg);
        for (int l = 0; l < L; ++l) xt[0][r][s * L + l] = r < j.nrows ? seg[l] : typename Cfg::xin_t(0);
    }
    int tile = 0, slab = 0, tt = 0, k = 0, fr = 0, fs = 0, frow = -1;
gather_steps:
    for (int i = 0; i < tiles * steps; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K * 64)  // [TRIP]
EVH_PRAGMA(HLS DEPENDENCE variable = xt inter false)  // [DEP] fill xt[nxt], stream xt[cur]
        const int cur = tile & 1, nt = tt + 1 == tt_n ? 0 : tt + 1;
        if (k < j.k_dim) {
            XBeat<Cfg> b;
            for (int r = 0; r < R; ++r) b.v[r] = xt[cur][r][k];
            xs.write(b);
        }
        if (k < R && tt * R + k < j.nrows)  // destination of this tile's row k
            ds.write(row_dst<Cfg>(j, residual, moe_acc, qtok, qslot, gate_weights, slab,
                                  tt * R + k));
        if (tile + 1 < tiles && fr < R) {  // one segment of the next tile's row fr
            const int ni = nt * R + fr;
            if (fs == 0) frow = ni < j.nrows ? src_row<Cfg>(j, qtok, ni) : -1;
            typename Cfg::xin_t seg[L];
            if (frow >= 0)
                read_segment<Cfg>(j, pixels, ln_out, attn_out, hidden, frow, fs * L, seg);
            for (int l = 0; l < L; ++l) xt[1 - cur][fr][fs * L + l] = frow >= 0 ? seg[l] : typename Cfg::xin_t(0);
            if (++fs == segs) {
                fs = 0;
                ++fr;
            }
        }
        if (++k == steps) {
            k = 0;
            fr = 0;
            if (nt == 0) ++slab;
            tt = nt;
            ++tile;
        }
    }
}

// Loader process, the region's only reader of the weight port: per column slab t (outputs
// [t*C, t*C + C)), its biases and head to the MAC array, then K rows of C weights, RB beats
// per row, read as one burst.
template <class Cfg>
void loader(const typename Cfg::wbeat_t* port, const Job<Cfg>& j, SlabStream<Cfg>& ls,
            WRowStream<Cfg>& ws) {
    const int slabs = ceil_div(j.o_dim, Cfg::C);
slabs_loop:
    for (int t = 0; t < slabs; ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP] a sequence of burst loops per slab
        SlabHead<Cfg> h;
        load_slab_head<Cfg>(port, j.b, j.q, j.o_dim, t, h.bias, h.head);
        ls.write(h);
        load_slab_rows<Cfg>(port, j.w, j.k_dim, t, ws);
    }
}

// The MAC array process over every tile of the job in ONE pipelined loop: at step k of a
// tile, acc[r][c] = (k == 0 ? bias[c] : acc[r][c]) + x[r] * w[k][c] (the bias folded into
// k = 0), the previous tile's accumulators (copied to `shadow` at k = 0) leave one row per
// step k < R with the row's destination, and the next slab's weight rows arrive in the other
// half of the double buffer wbuf (derive's weight_tiles_x2, this process's own memory): slab
// t computes from wbuf[t & 1] (one compute site, the half chosen by parity). Each slab head
// goes on to the epilogue when the MAC array takes it, before any row of its slab.
template <class Cfg>
void mac(const Job<Cfg>& j, XStream<Cfg>& xs, DstStream<Cfg>& ds, SlabStream<Cfg>& ls,
         WRowStream<Cfg>& ws, HeadStream<Cfg>& hs, AccStream<Cfg>& as) {
    typedef typename Cfg::acc_t acc_t;
    constexpr int R = Cfg::R, C = Cfg::C;
    typename Cfg::Act::weight_tiles_x2_t wbuf;
EVH_PRAGMA(HLS ARRAY_PARTITION variable = wbuf complete dim = 1)  // [PART] parity halves
EVH_PRAGMA(HLS ARRAY_PARTITION variable = wbuf complete dim = 3)  // [PART] C lanes
    acc_t acc[R][C], shadow[R][C];
    acc_t bias[2][C];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = acc complete dim = 0)     // [PART] R*C registers
EVH_PRAGMA(HLS ARRAY_PARTITION variable = shadow complete dim = 0)  // [PART] R*C registers
EVH_PRAGMA(HLS ARRAY_PARTITION variable = bias complete dim = 0)    // [PART] C per step
    const int slabs = ceil_div(j.o_dim, C), tt_n = ceil_div(j.nrows, R);
    const int steps = tile_steps<Cfg>(j.k_dim), tiles = slabs * tt_n;
    const SlabHead<Cfg> h0 = ls.read();
    hs.write(h0.head);
    for (int c = 0; c < C; ++c) {  // [UNR] (complete partitions: registers)
        bias[0][c] = h0.bias[c];
        for (int r = 0; r < R; ++r) acc[r][c] = 0;
    }
mac_preload:
    for (int k = 0; k < j.k_dim; ++k) {  // the first slab's rows
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K)  // [TRIP]
        const WRow<Cfg> wr = ws.read();
        for (int c = 0; c < C; ++c) wbuf[0][k][c] = wr.v[c];
    }
    int slab = 0, tt = 0, k = 0, wk = 0, dtt = -1;
mac_steps:
    for (int i = 0; i < tiles * steps + R; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::MAX_K * 64)  // [TRIP]
EVH_PRAGMA(HLS DEPENDENCE variable = wbuf inter false)  // [DEP] load wbuf[1-p], read wbuf[p]
        const bool run = i < tiles * steps;
        const int p = slab & 1;
        if ((run && k == 0) || i == tiles * steps) {  // a tile done: its rows to drain
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) shadow[r][c] = acc[r][c];
        }
        if (run && k < j.k_dim) {
            const XBeat<Cfg> x = xs.read();
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c)
                    acc[r][c] = acc_t((k == 0 ? bias[p][c] : acc[r][c]) +
                                      acc_t(x.v[r]) * acc_t(wbuf[p][k][c]));
        }
        if (run && slab + 1 < slabs && wk < j.k_dim) {  // the next slab's rows
            if (wk == 0) {
                const SlabHead<Cfg> nb = ls.read();
                hs.write(nb.head);
                for (int c = 0; c < C; ++c) bias[1 - p][c] = nb.bias[c];
            }
            const WRow<Cfg> wr = ws.read();
            for (int c = 0; c < C; ++c) wbuf[1 - p][wk][c] = wr.v[c];
            ++wk;
        }
        const int dk = run ? k : i - tiles * steps;  // drain step of the previous tile
        if (dtt >= 0 && dk < R && dtt * R + dk < j.nrows) {
            AccRow<Cfg> out;
            for (int c = 0; c < C; ++c) out.v[c] = shadow[dk][c];
            out.dst = ds.read();
            as.write(out);
        }
        if (run && ++k == steps) {
            k = 0;
            dtt = tt;
            if (++tt == tt_n) {
                tt = 0;
                wk = 0;
                ++slab;
            }
        }
    }
}

// ---- epilogues: per slab one head, then nrows accumulator rows, each with its destination.
// Each writes C lanes of one destination row per cycle at columns col0 + c: the buffers are
// partitioned cyclic C (or a multiple) in dim 2 where they are defined (evh_frame.h), so the
// C lanes are C banks. They only write: a residual add or MoE sum adds to the old values the
// gather read and the row carries (so no array of the region is read in its middle).

// The requantization product: an accumulator times m, exact in acc_bits + mult_bits (derive:
// Linear.prod_bits of the widest linear that runs).
template <class Cfg>
constexpr int epi_prod_bits() {
    return Cfg::ACC_BITS + Cfg::MULT_BITS;
}

// requant to a BITS-wide destination (activations, router logits).
template <int BITS, class Cfg, class T, int DS>
void epi_requant(const Job<Cfg>& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, T dst[][DS]) {
epi_requant_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP] head read, then the pipelined rows
        const TileHead<Cfg> h = hs.read();
    epi_requant_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
            const AccRow<Cfg> x = as.read();
            const int row = x.dst.tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] (inside PIPELINE) C lanes
                if (c < h.ncols)
                    dst[row][t * Cfg::C + c] =
                        T(requant<BITS, epi_prod_bits<Cfg>()>(x.v[c], h.m[c], h.s[c]));
        }
    }
}

// residual_add into the residual stream: the row's old values plus the requantized branch.
template <class Cfg>
void epi_residual(const Job<Cfg>& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as,
                  ResRow<Cfg> residual[Cfg::N]) {
epi_residual_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP]
        const TileHead<Cfg> h = hs.read();
    epi_residual_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
            const AccRow<Cfg> x = as.read();
            const int tok = x.dst.tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (c < h.ncols)
                    residual[tok][t * Cfg::C + c] =
                        typename Cfg::res_t(residual_add<Cfg::RES_BITS, epi_prod_bits<Cfg>()>(
                            x.dst.old[c], x.v[c], h.m[c], h.s[c]));
        }
    }
}

// requant to the GELU input, gelu_q, requant (gm, gs) to the hidden activations. Each lane
// reads its own copy of the GELU table (two reads per lane: a dual-port ROM each).
template <class Cfg>
void epi_gelu(const Job<Cfg>& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as,
              HidRow<Cfg> hidden[Cfg::N]) {
    constexpr int LEN = Cfg::GELU_LAST + 1;
    typedef int_t<Cfg::GELU_TABLE_BITS> tab_t;
    tab_t tab[Cfg::C][LEN];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = tab complete dim = 1)  // [PART] one ROM per lane
gelu_table_copy:
    for (int e = 0; e < LEN; ++e) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE] (constant: Vitis folds it into per-lane ROMs)
        for (int c = 0; c < Cfg::C; ++c) tab[c][e] = tab_t(Cfg::GELU_TABLE[e]);
    }
epi_gelu_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP]
        const TileHead<Cfg> h = hs.read();
    epi_gelu_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
            const AccRow<Cfg> x = as.read();
            const int row = x.dst.tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (c < h.ncols) {
                    const int_t<Cfg::GELU_IN_BITS> u =
                        requant<Cfg::GELU_IN_BITS, epi_prod_bits<Cfg>()>(x.v[c], h.m[c], h.s[c]);
                    const int_t<Cfg::GELU_OUT_BITS> g = gelu_q<Cfg>(u, tab[c]);
                    hidden[row][t * Cfg::C + c] = typename Cfg::act_t(
                        requant<Cfg::ACT_BITS, Cfg::GELU_OUT_BITS + Cfg::MULT_BITS>(g, j.gm, j.gs));
                }
        }
    }
}

// moe_combine scatter: sums[token] = old + gate weight * acc2 (token, weight and old values
// carried by the row).
template <class Cfg>
void epi_moe(const Job<Cfg>& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as,
             MoeRow<Cfg> moe_acc[Cfg::MOE_N]) {
epi_moe_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP]
        hs.read();  // the expert's second layer has no requantization
    epi_moe_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
            const AccRow<Cfg> x = as.read();
            const int tok = x.dst.tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (t * Cfg::C + c < j.o_dim)
                    moe_acc[tok][t * Cfg::C + c] = typename Cfg::moe_t(
                        moe_combine<Cfg::MOE_ACC_BITS>(x.dst.old[c], x.dst.gw, x.v[c]));
        }
    }
}

// Epilogue process, the region's only writer: the job's post-processing pipeline writes its
// destination buffer.
template <class Cfg>
void epilogue(const Job<Cfg>& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as,
              typename Cfg::act_t qkv[Cfg::N][3 * Cfg::D], ResRow<Cfg> residual[Cfg::N],
              HidRow<Cfg> hidden[Cfg::N], typename Cfg::logit_t gate_logits[Cfg::MOE_N][Cfg::E],
              MoeRow<Cfg> moe_acc[Cfg::MOE_N]) {
    if (j.epi == Cfg::EPI_REQUANT_ACT)
        epi_requant<Cfg::ACT_BITS>(j, hs, as, qkv);
    else if (j.epi == Cfg::EPI_RESIDUAL)
        epi_residual<Cfg>(j, hs, as, residual);
    else if (j.epi == Cfg::EPI_GELU)
        epi_gelu<Cfg>(j, hs, as, hidden);
    else if (j.epi == Cfg::EPI_REQUANT_LOGIT)
        epi_requant<Cfg::LOGIT_BITS>(j, hs, as, gate_logits);
    else  // Cfg::EPI_MOE
        epi_moe<Cfg>(j, hs, as, moe_acc);
}

// The unified compute unit: ONE function for every matrix product of the program, called
// from one site (the frame controller's job loop). Its body is ONE dataflow region in the
// canonical form of UG1399 ("Canonical Forms"; "Dataflow Optimization Limitations"), which
// tests/test_csim.py checks on this text:
//  - only local stream declarations and four process calls, no other statement;
//  - every stream is written by one process and read by one LATER process, the next on its
//    path: gather -> mac, loader -> mac, mac -> epilogue (no feedback; nothing bypasses the
//    MAC array: the row destinations and slab heads the epilogue needs pass through it);
//  - every activation buffer is an argument read only by a process with no input stream
//    (gather) or written only by one with no output stream (epilogue): no region input is
//    read in the middle, no output written before the end;
//  - a buffer both read and written (hidden, residual, moe_acc) is read by the earlier process
//    and written by the later one, read before write, as the rule for function arguments
//    asks; the anti-dependency is kept by the program: a job's source buffer is never its
//    destination (checked on every compiled preset), and the old destination values a
//    residual add or MoE sum needs are read by the gather and carried by the row, so each
//    element is read before the epilogue writes it, once.
template <class Cfg>
void linear(const typename Cfg::wbeat_t* port, const Job<Cfg>& j, typename Cfg::Act& a) {
EVH_PRAGMA(HLS DATAFLOW)  // [DF] the canonical region described above
    XStream<Cfg> xs("xs");
    DstStream<Cfg> ds("ds");
    SlabStream<Cfg> ls("ls");
    WRowStream<Cfg> ws("ws");
    HeadStream<Cfg> hs("hs");
    AccStream<Cfg> as("as");
EVH_PRAGMA(HLS STREAM variable = xs depth = 4)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = ds depth = 2 * Cfg::R)  // [STRM] a tile ahead of its rows
EVH_PRAGMA(HLS STREAM variable = ls depth = 2)  // [STRM] the next slab's head while one computes
EVH_PRAGMA(HLS STREAM variable = ws depth = 4)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = hs depth = 2)  // [STRM] a head leaves one slab early: <= 2 wait
EVH_PRAGMA(HLS STREAM variable = as depth = Cfg::R)  // [STRM]
    gather<Cfg>(j, a.pixels, a.ln_out, a.attn_out, a.hidden, a.residual, a.moe_acc,
                a.queue_tokens, a.queue_slots, a.gate_weights, xs, ds);
    loader<Cfg>(port, j, ls, ws);
    mac<Cfg>(j, xs, ds, ls, ws, hs, as);
    epilogue<Cfg>(j, hs, as, a.qkv, a.residual, a.hidden, a.gate_logits, a.moe_acc);
}

}  // namespace evh
