// evh_frame.h: the frame controller. Receives one frame of patch pixels (AXI4-Stream, tlast on
// the last beat), checks its length, runs the encoder with every activation on chip, and
// streams the output tokens. A frame of the wrong length, or an invalid task id, sets error
// bits, produces no tokens, and the next frame is processed normally.
#pragma once
#include "evh_attention.h"
#include "evh_debug.h"
#include "evh_layernorm.h"
#include "evh_mac.h"
#include "evh_moe.h"

namespace evh {

// Status register bits (sticky over one call of the top function).
constexpr uint32_t ST_ERROR = 1u << 0;     // any frame was dropped
constexpr uint32_t ST_SHORT = 1u << 1;     // tlast before the expected number of beats
constexpr uint32_t ST_LONG = 1u << 2;      // no tlast on the expected last beat
constexpr uint32_t ST_BAD_TASK = 1u << 3;  // task id >= number of tasks

// Receive one frame into pix. Returns 0, ST_SHORT or ST_LONG; always consumes through tlast.
template <class Cfg>
uint32_t read_frame(hls::stream<typename Cfg::pix_beat>& s_axis,
                    typename Cfg::pix_t pix[Cfg::PATCHES][Cfg::PATCH_DIM], uint64_t& cyc) {
    constexpr int NPIX = Cfg::PATCHES * Cfg::PATCH_DIM;
    int n = 0;
    bool last = false;
read_beats:
    while (!last) {
EVH_PRAGMA(HLS PIPELINE II = 1)
EVH_PRAGMA(HLS LOOP_TRIPCOUNT min = NPIX max = NPIX)
#ifndef __SYNTHESIS__
        if (s_axis.empty()) return n < NPIX ? ST_SHORT : ST_LONG;  // C-sim: input ran out
#endif
        const typename Cfg::pix_beat b = s_axis.read();
        if (n < NPIX) pix[n / Cfg::PATCH_DIM][n % Cfg::PATCH_DIM] = typename Cfg::pix_t(b.data);
        last = b.last == 1;
        if (n <= NPIX) ++n;  // saturates at NPIX + 1 ("too many")
        ++cyc;
    }
    return n < NPIX ? ST_SHORT : (n > NPIX ? ST_LONG : 0u);
}

// Operand source and post-processing pipeline of one matrix product (runtime: one compute
// unit serves every layer).
enum SrcKind { SRC_PIX, SRC_LN, SRC_ATTN, SRC_HID };

// One job of the unified compute unit: weights, shape, rows (all nrows in order when ident,
// else the queue of `expert`), source, epilogue and its scalars.
struct Job {
    LinSeg seg;
    int k_dim, o_dim, nrows;
    int src, epi;
    bool ident;
    int row_offset;   // Cfg::EPI_RESIDUAL: token = row + row_offset
    int32_t gm, gs;   // Cfg::EPI_GELU: requant of the GELU output
    int expert;       // queue of the expert (rows and Cfg::EPI_MOE scatter)
};

inline Job make_job(const LinSeg& seg, int k_dim, int o_dim, int nrows, int src, int epi) {
    const Job j = {seg, k_dim, o_dim, nrows, src, epi, true, 0, 1, 0, 0};
    return j;
}

// Gather process: streams the job's rows of its source buffer into the MAC array.
template <class Cfg>
void gather(const typename Cfg::pix_t pix[Cfg::PATCHES][Cfg::PATCH_DIM],
            const typename Cfg::act_t ln[Cfg::N][Cfg::D],
            const typename Cfg::act_t attn[Cfg::N][Cfg::D],
            const typename Cfg::act_t hid[Cfg::N][Cfg::HID],
            const typename Cfg::tok_idx_t rows[Cfg::MOE_N], const Job& j, XStream<Cfg>& xs) {
    typedef typename Cfg::act_t act_t;
    if (j.src == SRC_PIX)
        gather_rows<Cfg, typename Cfg::pix_t, Cfg::PATCH_DIM>(pix, rows, j.ident, j.nrows,
                                                               j.k_dim, j.o_dim, xs);
    else if (j.src == SRC_LN)
        gather_rows<Cfg, act_t, Cfg::D>(ln, rows, j.ident, j.nrows, j.k_dim, j.o_dim, xs);
    else if (j.src == SRC_ATTN)
        gather_rows<Cfg, act_t, Cfg::D>(attn, rows, j.ident, j.nrows, j.k_dim, j.o_dim, xs);
    else
        gather_rows<Cfg, act_t, Cfg::HID>(hid, rows, j.ident, j.nrows, j.k_dim, j.o_dim, xs);
}

// Epilogue process: the job's post-processing pipeline writes its destination buffer.
template <class Cfg>
void epilogue(const Job& j, HeadStream<Cfg>& hs, AccStream<Cfg>& as,
              typename Cfg::res_t res[Cfg::N][Cfg::D],
              typename Cfg::act_t qkv[Cfg::N][3 * Cfg::D],
              typename Cfg::act_t hid[Cfg::N][Cfg::HID],
              typename Cfg::logit_t logits[Cfg::MOE_N][Cfg::E],
              typename Cfg::moe_t macc[Cfg::MOE_N][Cfg::D],
              const typename Cfg::tok_idx_t qtok[Cfg::MOE_N],
              const typename Cfg::slot_t qslot[Cfg::MOE_N],
              const typename Cfg::gw_t gate_w[Cfg::MOE_N][Cfg::TOPK]) {
    if (j.epi == Cfg::EPI_REQUANT_ACT)
        epi_requant<Cfg::ACT_BITS>(hs, as, j.o_dim, j.nrows, qkv);
    else if (j.epi == Cfg::EPI_RESIDUAL)
        epi_residual<Cfg>(hs, as, j.o_dim, j.nrows, j.row_offset, res);
    else if (j.epi == Cfg::EPI_GELU)
        epi_gelu<Cfg>(hs, as, j.o_dim, j.nrows, j.gm, j.gs, hid);
    else if (j.epi == Cfg::EPI_REQUANT_LOGIT)
        epi_requant<Cfg::LOGIT_BITS>(hs, as, j.o_dim, j.nrows, logits);
    else
        epi_moe<Cfg>(hs, as, j.o_dim, j.nrows, qtok, qslot, gate_w, macc);
}

// The unified compute unit: gather -> R x C MAC array (weight tiles double-buffered from
// DRAM) -> epilogue, one DATAFLOW region, ONE function for every matrix product of the model.
template <class Cfg>
void linear(const typename Cfg::wbeat_t* port, const Job& j, typename Cfg::Act& a) {
EVH_PRAGMA(HLS DATAFLOW)
    XStream<Cfg> xs("xs");
    HeadStream<Cfg> hs("hs");
    AccStream<Cfg> as("as");
EVH_PRAGMA(HLS STREAM variable = xs depth = 4)
EVH_PRAGMA(HLS STREAM variable = hs depth = 2)
EVH_PRAGMA(HLS STREAM variable = as depth = Cfg::R)
    gather<Cfg>(a.pixels, a.ln_out, a.attn_out, a.hidden, a.queue_tokens[j.expert], j, xs);
    mac_unit<Cfg>(port, j.seg, j.k_dim, j.o_dim, j.nrows, a.weight_tiles_x2, xs, hs, as);
    epilogue<Cfg>(j, hs, as, a.residual, a.qkv, a.hidden, a.gate_logits, a.moe_acc, a.queue_tokens[j.expert],
                  a.queue_slots[j.expert], a.gate_weights);
}

// Modeled cycles of one matrix product: MAC k-steps, plus the first weight tile's load (the
// later tiles load behind the computation of the previous one).
template <class Cfg>
uint64_t mac_cycles(const Job& j) {
    const uint64_t tiles = uint64_t(ceil_div(j.o_dim, Cfg::C)) * ceil_div(j.nrows, Cfg::R);
    const uint64_t steps = tiles * j.k_dim;
    return steps + uint64_t(j.k_dim) * Cfg::RB;  // a pre-tiled slab: K rows of RB beats
}

// Run one job on the compute unit; returns its modeled cycles.
template <class Cfg>
uint64_t run_job(const typename Cfg::wbeat_t* port, const Job& j, typename Cfg::Act& a) {
    linear<Cfg>(port, j, a);
    return mac_cycles<Cfg>(j);
}

// Patch embedding: residual = initial tokens, then residual_add of the patches' products.
template <class Cfg, class Off>
void embed(const typename Cfg::wbeat_t* port, typename Cfg::Act& a, uint64_t& cyc) {
    uint32_t w[Cfg::D];
    for (int n = 0; n < Cfg::N; ++n) {  // LOAD_RES: position embedding (+ class token)
        read_words<Cfg, Cfg::D>(port, Off::init, uint32_t(n * Cfg::D), Cfg::D, w);
        for (int d = 0; d < Cfg::D; ++d) a.residual[n][d] = typename Cfg::res_t(word_i32(w[d]));
    }
    Job j = make_job(Off::patch, Cfg::PATCH_DIM, Cfg::D, Cfg::PATCHES, SRC_PIX, Cfg::EPI_RESIDUAL);
    j.row_offset = Cfg::CLASS_TOKEN ? 1 : 0;
    cyc += run_job<Cfg>(port, j, a);
    EVH_DUMP2("embed", 0, a.residual, Cfg::N, Cfg::D);
}

// ln1 -> QKV -> attention engine -> projection + residual.
template <class Cfg, class Off>
void attention_block(const typename Cfg::wbeat_t* port, int i, typename Cfg::Act& a, uint64_t& cyc) {
    layernorm_rows<Cfg>(port, Off::ln1[i], a.residual, Cfg::ACT_BITS, a.ln_out);
    EVH_DUMP2("blocks.%d.ln1", i, a.ln_out, Cfg::N, Cfg::D);
    cyc += uint64_t(Cfg::N) * Cfg::D * 2;
    const Job qkv = make_job(Off::qkv[i], Cfg::D, 3 * Cfg::D, Cfg::N, SRC_LN, Cfg::EPI_REQUANT_ACT);
    cyc += run_job<Cfg>(port, qkv, a);
    EVH_DUMP2("blocks.%d.qkv", i, a.qkv, Cfg::N, 3 * Cfg::D);
    int32_t lm, ls;
    read_rq<Cfg>(port, Off::logit_q[i], 0, lm, ls);
    attention_engine<Cfg>(a.qkv, lm, ls, a.attn_out);
    cyc += uint64_t(Cfg::HEADS) * ceil_div(Cfg::N, Cfg::P) * (Cfg::N + Cfg::P - 1);
    EVH_DUMP2("blocks.%d.attn", i, a.attn_out, Cfg::N, Cfg::D);
    const Job proj = make_job(Off::proj[i], Cfg::D, Cfg::D, Cfg::N, SRC_ATTN, Cfg::EPI_RESIDUAL);
    cyc += run_job<Cfg>(port, proj, a);
    EVH_DUMP2("blocks.%d.res1", i, a.residual, Cfg::N, Cfg::D);
}

// Dense MLP: fc1 + GELU epilogue, fc2 + residual epilogue.
template <class Cfg, class Off>
void mlp_block(const typename Cfg::wbeat_t* port, int i, typename Cfg::Act& a, uint64_t& cyc) {
    Job j = make_job(Off::fc1[i], Cfg::D, Cfg::MLP, Cfg::N, SRC_LN, Cfg::EPI_GELU);
    read_rq<Cfg>(port, Off::gelu_q[i], 0, j.gm, j.gs);
    cyc += run_job<Cfg>(port, j, a);
    EVH_DUMP2("blocks.%d.hidden", i, a.hidden, Cfg::N, Cfg::MLP);
    const Job fc2 = make_job(Off::fc2[i], Cfg::MLP, Cfg::D, Cfg::N, SRC_HID, Cfg::EPI_RESIDUAL);
    cyc += run_job<Cfg>(port, fc2, a);
}

// MoE: router (task's gate) -> queues -> each used expert once: efc1 + GELU on its queued
// tokens, efc2 + gate-weighted scatter-accumulate -> one requant into the residual.
template <class Cfg, class Off>
void moe_block(const typename Cfg::wbeat_t* port, int i, int task, typename Cfg::Act& a, uint64_t& cyc) {
    const Job gate = make_job(Off::gate[i][task], Cfg::D, Cfg::E, Cfg::N, SRC_LN, Cfg::EPI_REQUANT_LOGIT);
    cyc += run_job<Cfg>(port, gate, a);
    EVH_DUMP2("blocks.%d.gate_logits", i, a.gate_logits, Cfg::N, Cfg::E);
    router<Cfg>(a.gate_logits, a.gate_idx, a.gate_weights);
    EVH_DUMP2("blocks.%d.gate_idx", i, a.gate_idx, Cfg::N, Cfg::TOPK);
    EVH_DUMP2("blocks.%d.gate_w", i, a.gate_weights, Cfg::N, Cfg::TOPK);
    build_queues<Cfg>(a.gate_idx, a.queue_tokens, a.queue_slots, a.queue_counts);
    for (int n = 0; n < Cfg::N; ++n)
        for (int d = 0; d < Cfg::D; ++d) a.moe_acc[n][d] = 0;
    int32_t gm, gs;
    read_rq<Cfg>(port, Off::gelu_q[i], 0, gm, gs);
experts:
    for (int e = 0; e < Cfg::E; ++e) {
        const int cnt = a.queue_counts[e];
        if (cnt == 0) continue;  // unused expert: its weights are never read
        Job fc1 = make_job(Off::efc1[i][e], Cfg::D, Cfg::EH, cnt, SRC_LN, Cfg::EPI_GELU);
        fc1.ident = false;  // gather the expert's queued tokens
        fc1.expert = e;
        fc1.gm = gm;
        fc1.gs = gs;
        Job fc2 = make_job(Off::efc2[i][e], Cfg::EH, Cfg::D, cnt, SRC_HID, Cfg::EPI_MOE);
        fc2.expert = e;  // compact hidden rows 0..cnt-1, scattered back to their tokens
        cyc += run_job<Cfg>(port, fc1, a);
        cyc += run_job<Cfg>(port, fc2, a);
    }
    EVH_DUMP2("blocks.%d.moe_acc", i, a.moe_acc, Cfg::N, Cfg::D);
    uint32_t qw[Cfg::D];
    read_words<Cfg, Cfg::D>(port, Off::moe_q[i], 0, Cfg::D, qw);
    for (int n = 0; n < Cfg::N; ++n)
        for (int d = 0; d < Cfg::D; ++d) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            int32_t m, s;
            word_rq(qw[d], m, s);
            const i64 y = residual_add(a.residual[n][d], a.moe_acc[n][d], m, s, Cfg::RES_BITS);
            a.residual[n][d] = typename Cfg::res_t(y);
        }
}

// Stream the output tokens (final LayerNorm output, or the residual), tlast on the last one.
template <class Cfg, typename T>
void write_tokens(hls::stream<typename Cfg::tok_beat>& m_axis, const T y[Cfg::N][Cfg::D],
                  uint64_t& cyc) {
    for (int n = 0; n < Cfg::N; ++n)
        for (int d = 0; d < Cfg::D; ++d) {
EVH_PRAGMA(HLS PIPELINE II = 1)
            typename Cfg::tok_beat b;
            b.data = ap_int<Cfg::TOK_BITS>(i64(y[n][d]));
            b.keep = -1;
            b.strb = -1;
            b.last = (n == Cfg::N - 1 && d == Cfg::D - 1) ? 1 : 0;
            m_axis.write(b);
            ++cyc;
        }
}

// The whole encoder on one received frame.
template <class Cfg, class Off>
void run_model(const typename Cfg::wbeat_t* port, int task, typename Cfg::Act& a,
               hls::stream<typename Cfg::tok_beat>& m_axis, uint64_t& cyc) {
    embed<Cfg, Off>(port, a, cyc);
blocks:
    for (int i = 0; i < Cfg::DEPTH; ++i) {
        attention_block<Cfg, Off>(port, i, a, cyc);
        layernorm_rows<Cfg>(port, Off::ln2[i], a.residual, Cfg::ACT_BITS, a.ln_out);
        EVH_DUMP2("blocks.%d.ln2", i, a.ln_out, Cfg::N, Cfg::D);
        if (Cfg::MOE_N == Cfg::N && Cfg::IS_MOE[i])
            moe_block<Cfg, Off>(port, i, task, a, cyc);
        else
            mlp_block<Cfg, Off>(port, i, a, cyc);
        EVH_DUMP2("blocks.%d.res2", i, a.residual, Cfg::N, Cfg::D);
    }
    if (Cfg::FINAL_NORM) {
        layernorm_rows<Cfg>(port, Off::norm, a.residual, Cfg::ACT_BITS, a.ln_out);
        EVH_DUMP2("norm", 0, a.ln_out, Cfg::N, Cfg::D);
        write_tokens<Cfg>(m_axis, a.ln_out, cyc);
    } else {
        write_tokens<Cfg>(m_axis, a.residual, cyc);
    }
}

// Frame loop: `frames` frames; counters and sticky status for the control registers.
template <class Cfg, class Off>
void frame_controller(hls::stream<typename Cfg::pix_beat>& s_axis,
                      hls::stream<typename Cfg::tok_beat>& m_axis,
                      const typename Cfg::wbeat_t* port, uint32_t task, uint32_t frames,
                      uint32_t& status, uint32_t& frames_ok, uint32_t& frames_bad,
                      uint64_t& cycles) {
    static typename Cfg::Act a;
    uint32_t st = 0, ok = 0, bad = 0;
    uint64_t cyc = 0;
frames_loop:
    for (uint32_t f = 0; f < frames; ++f) {
        uint32_t err = read_frame<Cfg>(s_axis, a.pixels, cyc);
        if (task >= uint32_t(Cfg::TASKS)) err |= ST_BAD_TASK;
        if (err) {
            st |= err | ST_ERROR;
            ++bad;
            continue;  // no output tokens for this frame
        }
        run_model<Cfg, Off>(port, int(task), a, m_axis, cyc);
        ++ok;
    }
    status = st;
    frames_ok = ok;
    frames_bad = bad;
    cycles = cyc;
}

}  // namespace evh
