// evh_mac.h: the unified compute unit. One R x C integer MAC array runs every matrix product
// (patch embedding, QKV, projection, MLP, router, experts) as ONE dataflow region, linear():
//   gather  -> X beats (R activations per k) and, per row, its destination (token, gate weight)
//   loader  -> per column slab: biases (to the array), the tile head (to the epilogue), K rows
//              of C weights (pre-tiled in the image: a plain burst copy)
//   mac     -> exact accumulators, one row of C per cycle while the next tile computes
//   epilogue-> requant, GELU, residual add, logits, gate-weighted MoE accumulation
// Every loop below is PIPELINE II=1 (or UNROLLed inside one); edgevit_hw/program/perf.py
// (hls_loop_table) lists each loop's accesses per array, the ports its partitioning gives and
// the II that results. UG1399 rules cited next to the pragmas:
//   [PIPE] "pragma HLS pipeline"; [UNR] "pragma HLS unroll"; [PART] "pragma HLS
//   array_partition" (placed where the array is defined); [DEP] "pragma HLS dependence" /
//   "Managing Pipeline Dependencies"; [DF] "pragma HLS dataflow" / "Canonical Forms";
//   [STRM] "pragma HLS stream"; [TRIP] "pragma HLS loop_tripcount".
#pragma once
#include "evh_arith.h"
#include "evh_stream.h"
#include "evh_weights.h"

namespace evh {

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }
constexpr int imax(int a, int b) { return a > b ? a : b; }
constexpr int imin(int a, int b) { return a < b ? a : b; }

// One matrix job of the program, decoded (task stride applied, queue length as rows).
struct Job {
    uint32_t w, b, q;  // beats of the weights, biases (NONE: none) and requant words
    int k_dim, o_dim, nrows, row0;
    int src, epi, expert;
    bool gather, scatter;  // rows from / to the queue of `expert`
    int32_t gm, gs;        // EPI_GELU: requant of the GELU output
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
using HeadStream = hls::stream<TileHead<Cfg>>;
template <class Cfg>
using AccStream = hls::stream<AccRow<Cfg>>;
template <class Cfg>
using DstStream = hls::stream<RowDst<Cfg>>;
template <class Cfg>
using WRowStream = hls::stream<WRow<Cfg>>;
template <class Cfg>
using BiasStream = hls::stream<BiasRow<Cfg>>;

// Source row of compact row i of the job (its queue's token when gathering).
template <class Cfg>
inline int src_row(const Job& j, const typename Cfg::tok_idx_t qtok[Cfg::MOE_N], int i) {
    return j.gather ? int(qtok[i]) : i;
}

// L activations of row `row`, columns [k0, k0 + L), of the job's source buffer (0 past K).
template <class Cfg>
inline void read_segment(const Job& j, const typename Cfg::Act& a, int row, int k0,
                         typename Cfg::xin_t seg[imin(Cfg::R, Cfg::C)]) {
    constexpr int L = imin(Cfg::R, Cfg::C);
    for (int l = 0; l < L; ++l) {
EVH_PRAGMA(HLS UNROLL)  // [UNR] L consecutive columns: L distinct banks of the cyclic-C buffers
        const int k = k0 + l;
        typename Cfg::xin_t v = 0;
        if (k < j.k_dim) {
            if (j.src == Cfg::BUF_PIXELS) v = a.pixels[row][k];
            else if (j.src == Cfg::BUF_LN_OUT) v = a.ln_out[row][k];
            else if (j.src == Cfg::BUF_ATTN_OUT) v = a.attn_out[row][k];
            else v = a.hidden[row][k];
        }
        seg[l] = v;
    }
}

// Gather process: for every (slab, token tile) it streams K beats of R activations read from
// a double-buffered transpose tile xt (tile i streams from xt[i & 1] while tile i + 1 fills
// xt[(i + 1) & 1], one row segment of L values per step: a data-dependent row costs one
// access per bank, expert queues included), and the destination of each of the tile's rows.
template <class Cfg>
void gather(const Job& j, const typename Cfg::Act& a, XStream<Cfg>& xs, DstStream<Cfg>& ds) {
    constexpr int R = Cfg::R, L = imin(Cfg::R, Cfg::C), XK = ceil_div(Cfg::MAX_K, L) * L;
    typename Cfg::xin_t xt[2][R][XK];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt complete dim = 1)  // [PART] parity halves
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt complete dim = 2)  // [PART] R rows read per step
EVH_PRAGMA(HLS ARRAY_PARTITION variable = xt cyclic factor = imin(Cfg::R, Cfg::C) dim = 3)
    const typename Cfg::tok_idx_t* qtok = a.queue_tokens[j.expert];
    const typename Cfg::slot_t* qslot = a.queue_slots[j.expert];
    const int tt_n = ceil_div(j.nrows, R), segs = ceil_div(j.k_dim, L);
    const int tiles = ceil_div(j.o_dim, Cfg::C) * tt_n, steps = tile_steps<Cfg>(j.k_dim);
gather_fill0:
    for (int f = 0; f < R * segs; ++f) {  // the first tile
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::R * Cfg::MAX_K)  // [TRIP]
        const int r = f / segs, s = f % segs;
        typename Cfg::xin_t seg[L];
        if (r < j.nrows) read_segment<Cfg>(j, a, src_row<Cfg>(j, qtok, r), s * L, seg);
        for (int l = 0; l < L; ++l) xt[0][r][s * L + l] = r < j.nrows ? seg[l] : typename Cfg::xin_t(0);
    }
    int tile = 0, tt = 0, k = 0, fr = 0, fs = 0, frow = -1;
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
        if (k < R && tt * R + k < j.nrows) {  // destination of this tile's row k
            const int ci = tt * R + k;
            RowDst<Cfg> d;
            d.tok = typename Cfg::tok_idx_t(j.scatter ? int(qtok[ci]) : ci + j.row0);
            d.gw = j.scatter ? a.gate_weights[int(qtok[ci])][int(qslot[ci])]
                             : typename Cfg::gw_t(0);
            ds.write(d);
        }
        if (tile + 1 < tiles && fr < R) {  // one segment of the next tile's row fr
            const int ni = nt * R + fr;
            if (fs == 0) frow = ni < j.nrows ? src_row<Cfg>(j, qtok, ni) : -1;
            typename Cfg::xin_t seg[L];
            if (frow >= 0) read_segment<Cfg>(j, a, frow, fs * L, seg);
            for (int l = 0; l < L; ++l) xt[1 - cur][fr][fs * L + l] = frow >= 0 ? seg[l] : typename Cfg::xin_t(0);
            if (++fs == segs) {
                fs = 0;
                ++fr;
            }
        }
        if (++k == steps) {
            k = 0;
            fr = 0;
            tt = nt;
            ++tile;
        }
    }
}

// Loader process: per column slab t (outputs [t*C, t*C + C)), its biases to the array, its
// head (first column, valid columns, requant constants) to the epilogue, then K rows of C
// weights, RB beats per row, read as one burst.
template <class Cfg>
void loader(const typename Cfg::wbeat_t* port, const Job& j, BiasStream<Cfg>& bs,
            HeadStream<Cfg>& hs, WRowStream<Cfg>& ws) {
    const int slabs = ceil_div(j.o_dim, Cfg::C);
slabs_loop:
    for (int t = 0; t < slabs; ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP] a sequence of burst loops per slab
        BiasRow<Cfg> bias;
        TileHead<Cfg> head;
        load_slab_head<Cfg>(port, j.b, j.q, j.o_dim, t, bias.v, head);
        bs.write(bias);
        hs.write(head);
        load_slab_rows<Cfg>(port, j.w, j.k_dim, t, ws);
    }
}

// The MAC array process over every tile of the job in ONE pipelined loop: at step k of a
// tile, acc[r][c] = (k == 0 ? bias[c] : acc[r][c]) + x[r] * w[k][c] (the bias folded into
// k = 0), the previous tile's accumulators (copied to `shadow` at k = 0) leave one row per
// step k < R, and the next slab's weight rows arrive in the other half of the double
// buffer: slab t computes from wbuf[t & 1] (one compute site, the half chosen by parity).
template <class Cfg>
void mac(const Job& j, typename Cfg::w_t wbuf[2][Cfg::MAX_K][Cfg::C], XStream<Cfg>& xs,
         BiasStream<Cfg>& bs, WRowStream<Cfg>& ws, AccStream<Cfg>& as) {
    typedef typename Cfg::acc_t acc_t;
    constexpr int R = Cfg::R, C = Cfg::C;
    acc_t acc[R][C], shadow[R][C];
    acc_t bias[2][C];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = acc complete dim = 0)     // [PART] R*C registers
EVH_PRAGMA(HLS ARRAY_PARTITION variable = shadow complete dim = 0)  // [PART] R*C registers
EVH_PRAGMA(HLS ARRAY_PARTITION variable = bias complete dim = 0)    // [PART] C per step
    const int slabs = ceil_div(j.o_dim, C), tt_n = ceil_div(j.nrows, R);
    const int steps = tile_steps<Cfg>(j.k_dim), tiles = slabs * tt_n;
    const BiasRow<Cfg> b0 = bs.read();
    for (int c = 0; c < C; ++c) {  // [UNR] (complete partitions: registers)
        bias[0][c] = b0.v[c];
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
                const BiasRow<Cfg> nb = bs.read();
                for (int c = 0; c < C; ++c) bias[1 - p][c] = nb.v[c];
            }
            const WRow<Cfg> wr = ws.read();
            for (int c = 0; c < C; ++c) wbuf[1 - p][wk][c] = wr.v[c];
            ++wk;
        }
        const int dk = run ? k : i - tiles * steps;  // drain step of the previous tile
        if (dtt >= 0 && dk < R && dtt * R + dk < j.nrows) {
            AccRow<Cfg> out;
            for (int c = 0; c < C; ++c) out.v[c] = shadow[dk][c];
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

// ---- epilogues: per slab one head, then nrows accumulator rows with their destinations.
// Each writes C lanes of one destination row per cycle at columns col0 + c: the buffers are
// partitioned cyclic C (or a multiple) in dim 2 where they are defined (evh_frame.h), so the
// C lanes are C banks; a read-modify-write row (residual, MoE sums) is never the row of the
// previous iteration inside one slab (rows of a job, or tokens of one expert's queue, are
// distinct), hence [DEP] inter false.

// requant to a BITS-wide destination (activations, router logits).
template <int BITS, class Cfg, class T, int DS>
void epi_requant(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, DstStream<Cfg>& ds,
                 T dst[][DS]) {
epi_requant_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP] head read, then the pipelined rows
        const TileHead<Cfg> h = hs.read();
    epi_requant_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
            const AccRow<Cfg> x = as.read();
            const int row = ds.read().tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] (inside PIPELINE) C lanes
                if (c < h.ncols)
                    dst[row][t * Cfg::C + c] = T(requant(x.v[c], h.m[c], h.s[c], BITS));
        }
    }
}

// residual_add into the residual stream.
template <class Cfg>
void epi_residual(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, DstStream<Cfg>& ds,
                  typename Cfg::res_t res[Cfg::N][Cfg::D]) {
epi_residual_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP]
        const TileHead<Cfg> h = hs.read();
    epi_residual_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
EVH_PRAGMA(HLS DEPENDENCE variable = res inter false)  // [DEP] distinct rows per slab
            const AccRow<Cfg> x = as.read();
            const int tok = ds.read().tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (c < h.ncols) {
                    const int col = t * Cfg::C + c;
                    res[tok][col] = typename Cfg::res_t(
                        residual_add(res[tok][col], x.v[c], h.m[c], h.s[c], Cfg::RES_BITS));
                }
        }
    }
}

// requant to the GELU input, gelu_q, requant (gm, gs) to the hidden activations. Each lane
// reads its own copy of the GELU table (two reads per lane: a dual-port ROM each).
template <class Cfg>
void epi_gelu(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, DstStream<Cfg>& ds,
              typename Cfg::act_t hid[Cfg::N][Cfg::HID]) {
    constexpr int LEN = Cfg::GELU_LAST + 1;
    int32_t tab[Cfg::C][LEN];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = tab complete dim = 1)  // [PART] one ROM per lane
gelu_table_copy:
    for (int e = 0; e < LEN; ++e) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE] (constant: Vitis folds it into per-lane ROMs)
        for (int c = 0; c < Cfg::C; ++c) tab[c][e] = Cfg::GELU_TABLE[e];
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
            const int row = ds.read().tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (c < h.ncols) {
                    const i64 u = requant(x.v[c], h.m[c], h.s[c], Cfg::GELU_IN_BITS);
                    const i64 g = gelu_q<Cfg::GELU_F, Cfg>(u, tab[c]);
                    hid[row][t * Cfg::C + c] =
                        typename Cfg::act_t(requant(g, j.gm, j.gs, Cfg::ACT_BITS));
                }
        }
    }
}

// moe_combine scatter: acc[token] += gate weight * acc2 (token, weight from the side stream).
template <class Cfg>
void epi_moe(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, DstStream<Cfg>& ds,
             typename Cfg::moe_t macc[Cfg::MOE_N][Cfg::D]) {
epi_moe_slabs:
    for (int t = 0; t < ceil_div(j.o_dim, Cfg::C); ++t) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 64)  // [TRIP]
        hs.read();  // the expert's second layer has no requantization
    epi_moe_rows:
        for (int i = 0; i < j.nrows; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // [PIPE]
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = Cfg::N)  // [TRIP]
EVH_PRAGMA(HLS DEPENDENCE variable = macc inter false)  // [DEP] distinct tokens per queue
            const AccRow<Cfg> x = as.read();
            const RowDst<Cfg> d = ds.read();
            const int tok = d.tok;
            for (int c = 0; c < Cfg::C; ++c)  // [UNR] C lanes
                if (t * Cfg::C + c < j.o_dim) {
                    const int col = t * Cfg::C + c;
                    macc[tok][col] =
                        typename Cfg::moe_t(moe_combine(macc[tok][col], i64(d.gw), x.v[c]));
                }
        }
    }
}

// Epilogue process: the job's post-processing pipeline writes its destination buffer.
template <class Cfg>
void epilogue(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as, DstStream<Cfg>& ds,
              typename Cfg::Act& a) {
    if (j.epi == Cfg::EPI_REQUANT_ACT)
        epi_requant<Cfg::ACT_BITS>(j, hs, as, ds, a.qkv);
    else if (j.epi == Cfg::EPI_RESIDUAL)
        epi_residual<Cfg>(j, hs, as, ds, a.residual);
    else if (j.epi == Cfg::EPI_GELU)
        epi_gelu<Cfg>(j, hs, as, ds, a.hidden);
    else if (j.epi == Cfg::EPI_REQUANT_LOGIT)
        epi_requant<Cfg::LOGIT_BITS>(j, hs, as, ds, a.gate_logits);
    else
        epi_moe<Cfg>(j, hs, as, ds, a.moe_acc);
}

// The unified compute unit: ONE function for every matrix product of the program, called
// from one site (the frame controller's job loop). Forward-only channels: gather -> mac ->
// epilogue, loader -> mac and epilogue, gather -> epilogue (row destinations).
template <class Cfg>
void linear(const typename Cfg::wbeat_t* port, const Job& j, typename Cfg::Act& a) {
EVH_PRAGMA(HLS DATAFLOW)  // [DF]
    XStream<Cfg> xs("xs");
    DstStream<Cfg> ds("ds");
    BiasStream<Cfg> bs("bs");
    HeadStream<Cfg> hs("hs");
    WRowStream<Cfg> ws("ws");
    AccStream<Cfg> as("as");
EVH_PRAGMA(HLS STREAM variable = xs depth = 4)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = ds depth = 2 * Cfg::R)  // [STRM] a tile ahead of its rows
EVH_PRAGMA(HLS STREAM variable = bs depth = 2)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = hs depth = 2)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = ws depth = 4)  // [STRM]
EVH_PRAGMA(HLS STREAM variable = as depth = Cfg::R)  // [STRM]
    gather<Cfg>(j, a, xs, ds);
    loader<Cfg>(port, j, bs, hs, ws);
    mac<Cfg>(j, a.weight_tiles_x2, xs, bs, ws, as);
    epilogue<Cfg>(j, hs, as, ds, a);
}

}  // namespace evh
