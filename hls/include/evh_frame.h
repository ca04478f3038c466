// evh_frame.h: the frame controller. Receives one frame of patch pixels (AXI4-Stream, tlast on
// the last beat), checks its length, runs the encoder with every activation on chip, and
// streams the output tokens. A frame of the wrong length, or an invalid task id, sets error
// bits, produces no tokens, and the next frame is processed normally.
#pragma once
#include "evh_attention.h"
#include "evh_debug.h"
#include "evh_layernorm.h"
#include "evh_mac.h"
#include "evh_model.h"
#include "evh_moe.h"

namespace evh {

// Status register bits (sticky over one call of the top function).
constexpr uint32_t ST_ERROR = 1u << 0;     // any frame was dropped
constexpr uint32_t ST_SHORT = 1u << 1;     // tlast before the expected number of beats
constexpr uint32_t ST_LONG = 1u << 2;      // no tlast on the expected last beat
constexpr uint32_t ST_BAD_TASK = 1u << 3;  // task id >= number of tasks

// Receive one frame into pix, PIX_PER_BEAT pixels a beat (the count divides PATCH_DIM, so a beat
// stays in one patch). Returns 0, ST_SHORT or ST_LONG; always consumes through tlast.
template <class Cfg>
uint32_t read_frame(hls::stream<typename Cfg::pix_beat>& s_axis,
                    typename Cfg::pix_t pix[Cfg::PATCHES][Cfg::PATCH_DIM], uint64_t& cyc) {
    constexpr int PER = Cfg::PIX_PER_BEAT, BEATS = Cfg::PATCHES * Cfg::PATCH_DIM / PER;
    static_assert(Cfg::PATCH_DIM % PER == 0, "a beat straddles two patches");
    int n = 0;
    bool last = false;
read_beats:
    while (!last) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": a beat per cycle; PER <= C
                                 // pixels go to PER distinct banks of the cyclic partition
EVH_PRAGMA(HLS LOOP_TRIPCOUNT min = BEATS max = BEATS)
#ifndef __SYNTHESIS__
        if (s_axis.empty()) return n < BEATS ? ST_SHORT : ST_LONG;  // C-sim: input ran out
#endif
        const typename Cfg::pix_beat b = s_axis.read();
        const int row = n / (Cfg::PATCH_DIM / PER), col = n % (Cfg::PATCH_DIM / PER) * PER;
        for (int j = 0; j < PER; ++j)
            if (n < BEATS) pix[row][col + j] = typename Cfg::pix_t(b.data.range(8 * j + 7, 8 * j).to_uint());
        last = b.last == 1;
        if (n <= BEATS) ++n;  // saturates at BEATS + 1 ("too many")
        ++cyc;
    }
    return n < BEATS ? ST_SHORT : (n > BEATS ? ST_LONG : 0u);
}

// Field LO..LO+BITS-1 of an instruction word.
template <class Cfg>
inline uint32_t insn_field(const ap_uint<Cfg::INSN_BITS>& w, int lo, int bits) {
    return uint32_t(w.range(lo + bits - 1, lo).to_uint());
}

// The INSN_BEATS beats of instruction slot `slot` (0: the program header), one burst.
template <class Cfg>
ap_uint<Cfg::INSN_BITS> fetch_slot(const typename Cfg::wbeat_t* port, int slot) {
    ap_uint<Cfg::INSN_BITS> w = 0;
fetch_beats:
    for (int b = 0; b < Cfg::INSN_BEATS; ++b) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": one beat per cycle
        w.range(Cfg::PORT_BITS * b + Cfg::PORT_BITS - 1, Cfg::PORT_BITS * b) =
            port[uint32_t(slot) * Cfg::INSN_BEATS + uint32_t(b)];
    }
    return w;
}

// Instruction j of the program (slot j + 1), decoded with derive's field layout.
template <class Cfg>
Insn decode(const typename Cfg::wbeat_t* port, int j) {
    const ap_uint<Cfg::INSN_BITS> w = fetch_slot<Cfg>(port, j + 1);
#define EVH_F(name, NAME) in.name = insn_field<Cfg>(w, Cfg::ISA_##NAME##_LO, Cfg::ISA_##NAME##_BITS)
    Insn in;
    EVH_F(op, OP); EVH_F(epi, EPI); EVH_F(src, SRC); EVH_F(dst, DST); EVH_F(flags, FLAGS);
    EVH_F(k, K); EVH_F(out, OUT); EVH_F(rows, ROWS); EVH_F(row0, ROW0); EVH_F(index, INDEX);
    EVH_F(a0, A0); EVH_F(a1, A1); EVH_F(a2, A2); EVH_F(a3, A3); EVH_F(stride, STRIDE);
#undef EVH_F
    return in;
}

// The matrix job of a MATMUL: the task's router (a0, a2 + task * stride), the queue length
// of expert `index` as rows when gathering or scattering, the GELU output requant (a3).
template <class Cfg>
Job<Cfg> make_job(const typename Cfg::wbeat_t* port, const Insn& in, int task,
                  const typename Cfg::Act& a) {
    const uint32_t step = (in.flags & Cfg::FLAG_TASK) ? uint32_t(task) * in.stride : 0u;
    Job<Cfg> j;
    j.w = in.a0 + step;
    j.b = in.a1;
    j.q = in.a2 == NONE ? NONE : in.a2 + step;
    j.k_dim = in.k;
    j.o_dim = in.out;
    j.gather = (in.flags & Cfg::FLAG_GATHER) != 0;
    j.scatter = (in.flags & Cfg::FLAG_SCATTER) != 0;
    j.expert = j.gather || j.scatter ? in.index : 0;
    j.nrows = j.gather || j.scatter ? int(a.queue_counts[in.index]) : in.rows;
    j.row0 = in.row0;
    j.src = in.src;
    j.epi = in.epi;
    j.gm = 1;
    j.gs = 0;
    if (in.epi == Cfg::EPI_GELU) read_rq<Cfg>(port, in.a3, 0, j.gm, j.gs);
    return j;
}

// LOAD_RES: the initial residual tokens (position embedding, class token), D words a row.
template <class Cfg>
void load_residual(const typename Cfg::wbeat_t* port, uint32_t seg, typename Cfg::Act& a) {
    uint32_t w[Cfg::D];
load_res_rows:
    for (int n = 0; n < Cfg::N; ++n) {
        read_words<Cfg, Cfg::D>(port, seg, uint32_t(n * Cfg::D), Cfg::D, w);
    load_res_cols:
        for (int d = 0; d < Cfg::D; ++d) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
            a.residual[n][d] = word_int<Cfg::RES_BITS>(w[d]);
        }
    }
}

// MOE_COMBINE: residual = residual_add(residual, MoE sums, m_d, s_d), C lanes per cycle.
template <class Cfg>
void moe_combine_rows(const typename Cfg::wbeat_t* port, uint32_t seg, typename Cfg::Act& a) {
    uint32_t qw[Cfg::D];
EVH_PRAGMA(HLS ARRAY_PARTITION variable = qw cyclic factor = Cfg::C dim = 1)  // [PART] C lanes
    read_words<Cfg, Cfg::D>(port, seg, 0, Cfg::D, qw);
combine_steps:
    for (int i = 0; i < Cfg::N * ceil_div(Cfg::D, Cfg::C); ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        const int n = i / ceil_div(Cfg::D, Cfg::C), d0 = (i % ceil_div(Cfg::D, Cfg::C)) * Cfg::C;
        for (int c = 0; c < Cfg::C; ++c) {  // UG1399 "pragma HLS unroll" (inside PIPELINE)
            const int d = d0 + c;
            if (d >= Cfg::D) continue;
            typename Cfg::mult_t m;
            typename Cfg::shift_t s;
            word_rq<Cfg>(qw[d], m, s);
            a.residual[n][d] = residual_add<Cfg::RES_BITS, Cfg::MOE_PROD_BITS>(
                a.residual[n][d], a.moe_acc[n][d], m, s);
        }
    }
}

// QUEUES: per-expert queues from the router's choices; clears the MoE sums.
template <class Cfg>
void queues(typename Cfg::Act& a) {
    build_queues<Cfg>(a.gate_idx, a.queue_tokens, a.queue_slots, a.queue_counts);
clear_moe:
    for (int i = 0; i < Cfg::MOE_N * ceil_div(Cfg::D, Cfg::C); ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline"
        const int n = i / ceil_div(Cfg::D, Cfg::C), d0 = (i % ceil_div(Cfg::D, Cfg::C)) * Cfg::C;
        for (int c = 0; c < Cfg::C; ++c)
            if (d0 + c < Cfg::D) a.moe_acc[n][d0 + c] = 0;
    }
}

// OUTPUT: stream the tokens of `src` (LN_OUT or RESIDUAL), TOK_PER_BEAT elements a beat (the
// count divides D, so a beat stays in one token), tlast on the last beat.
template <class Cfg>
void write_tokens(hls::stream<typename Cfg::tok_beat>& m_axis, int src, const typename Cfg::Act& a) {
    constexpr int PER = Cfg::TOK_PER_BEAT, TB = Cfg::TOK_BITS, BEATS = Cfg::N * Cfg::D / PER;
    static_assert(Cfg::D % PER == 0, "a beat straddles two tokens");
out_beats:
    for (int i = 0; i < BEATS; ++i) {
EVH_PRAGMA(HLS PIPELINE II = 1)  // UG1399 "pragma HLS pipeline": one beat per cycle; PER <= C
                                 // elements come from PER distinct banks of the cyclic partition
        const int n = i / (Cfg::D / PER), d0 = i % (Cfg::D / PER) * PER;
        typename Cfg::tok_beat b;
        for (int j = 0; j < PER; ++j) {
            const ap_int<TB> v = src == Cfg::BUF_LN_OUT ? ap_int<TB>(a.ln_out[n][d0 + j])
                                                        : ap_int<TB>(a.residual[n][d0 + j]);
            b.data.range(TB * j + TB - 1, TB * j) = v;
        }
        b.keep = -1;
        b.strb = -1;
        b.last = i == BEATS - 1 ? 1 : 0;
        m_axis.write(b);
    }
}

// Execute one instruction: one call site per unit (linear() for every MATMUL).
template <class Cfg>
void execute(const typename Cfg::wbeat_t* port, const Insn& in, int task, typename Cfg::Act& a,
             hls::stream<typename Cfg::tok_beat>& m_axis) {
    if (in.op == Cfg::OP_MATMUL) {
        const Job<Cfg> j = make_job<Cfg>(port, in, task, a);
        if (j.nrows > 0) linear<Cfg>(port, j, a);  // an unused expert's weights are never read
    } else if (in.op == Cfg::OP_LAYERNORM) {
        const NormSeg seg = {in.a0, in.a1, in.a3, in.a2};
        layernorm_rows<Cfg>(port, seg, a.residual, a.ln_out);
    } else if (in.op == Cfg::OP_ATTENTION) {
        typename Cfg::mult_t lm;
        typename Cfg::shift_t ls;
        read_rq<Cfg>(port, in.a2, 0, lm, ls);
        attention_rows<Cfg>(a.qkv, in.index, in.row0, lm, ls, a.attn_out);
    } else if (in.op == Cfg::OP_LOAD_RES) {
        load_residual<Cfg>(port, in.a0, a);
    } else if (in.op == Cfg::OP_ROUTE) {
        router<Cfg>(a.gate_logits, a.gate_idx, a.gate_weights);
    } else if (in.op == Cfg::OP_QUEUES) {
        queues<Cfg>(a);
    } else if (in.op == Cfg::OP_MOE_COMBINE) {
        moe_combine_rows<Cfg>(port, in.a2, a);
    } else if (in.op == Cfg::OP_OUTPUT) {
        write_tokens<Cfg>(m_axis, in.src, a);
    }
}

// The whole program on one received frame: the instruction count from the header, then each
// instruction fetched, decoded and executed in order; returns the modeled cycles
// (hls_model_cycles, the per-loop table of edgevit_hw/program/perf.py).
template <class Cfg, class Off>
uint64_t run_program(const typename Cfg::wbeat_t* port, int task, typename Cfg::Act& a,
                     hls::stream<typename Cfg::tok_beat>& m_axis) {
    const int count = int(insn_field<Cfg>(fetch_slot<Cfg>(port, 0), Cfg::HEAD_COUNT_LO, 32));
    uint64_t cyc = 0;
program_loop:
    for (int j = 0; j < count; ++j) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 1024)  // UG1399 "pragma HLS loop_tripcount"
        const Insn in = decode<Cfg>(port, j);
        execute<Cfg>(port, in, task, a, m_axis);
        cyc += insn_cycles<Cfg>(in, a);
        EVH_DUMP_AFTER(Off, j, a);
    }
    return cyc;
}

// Frame loop: `frames` frames; counters and sticky status for the control registers. The
// on-chip buffers are defined here, and partitioned here (UG1399 "pragma HLS array_partition":
// where the array is defined; "pragma HLS disaggregate": the struct's members become
// separate memories), all but the MAC array's weight double buffer, which its process owns
// (evh_mac.h mac). Dim 2 cyclic C: an epilogue writes C lanes of a row, the gather reads
// min(R, C) consecutive columns, LayerNorm reads C lanes; qkv cyclic QKV_BANKS (a multiple
// of C and of the head width DH), so one K row and one V row (DH values each) read per step
// of the attention engine are one access per bank and port.
template <class Cfg, class Off>
void frame_controller(hls::stream<typename Cfg::pix_beat>& s_axis,
                      hls::stream<typename Cfg::tok_beat>& m_axis,
                      const typename Cfg::wbeat_t* port, uint32_t task, uint32_t frames,
                      uint32_t& status, uint32_t& frames_ok, uint32_t& frames_bad,
                      uint64_t& cycles) {
    static typename Cfg::Act a;
EVH_PRAGMA(HLS DISAGGREGATE variable = a)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.pixels cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.residual cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.ln_out cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.qkv cyclic factor = Cfg::QKV_BANKS dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.attn_out cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.hidden cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.moe_acc cyclic factor = Cfg::C dim = 2)
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.gate_logits complete dim = 2)   // E per token
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.gate_idx complete dim = 2)      // TOPK per token
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.gate_weights complete dim = 2)  // TOPK per token
EVH_PRAGMA(HLS ARRAY_PARTITION variable = a.queue_counts complete dim = 1)  // any e per cycle
    uint32_t st = 0, ok = 0, bad = 0;
    uint64_t cyc = 0;
frames_loop:
    for (uint32_t f = 0; f < frames; ++f) {
EVH_PRAGMA(HLS LOOP_TRIPCOUNT max = 1)  // UG1399 "pragma HLS loop_tripcount": per frame
        uint32_t err = read_frame<Cfg>(s_axis, a.pixels, cyc);
        if (task >= uint32_t(Cfg::TASKS)) err |= ST_BAD_TASK;
        if (err) {
            st |= err | ST_ERROR;
            ++bad;
            continue;  // no output tokens for this frame
        }
        cyc += Cfg::PIPE_DEPTH;  // read_frame counted its beats
        cyc += run_program<Cfg, Off>(port, int(task), a, m_axis);
        ++ok;
    }
    status = st;
    frames_ok = ok;
    frames_bad = bad;
    cycles = cyc;
}

}  // namespace evh
