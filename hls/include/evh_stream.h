// evh_stream.h: AXI4-Stream beat types and the internal stream beats of the accelerator.
#pragma once
#include <stdint.h>

#include "evh_arith.h"  // first: the diagnostic settings of C-simulation (and ap_int.h)

// hls4ml's hls_stream.h, like its ap_types headers, trips GCC's uninitialized-use analysis
// inside the header itself: silenced for the header only (per source location).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <hls_stream.h>
#pragma GCC diagnostic pop

// One stream element type for C-simulation and synthesis alike: Vitis's hls::axis wherever
// ap_axi_sdata.h exists (C-sim, synthesis and co-simulation under Vitis), else (this repo's
// g++ C-simulation, whose ap_types come from hls4ml) a struct with the same members.
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#define EVH_HAVE_HLS_AXIS 1
#endif

namespace evh {

#ifdef EVH_HAVE_HLS_AXIS
template <int W>
using axis_beat = hls::axis<ap_uint<W>, 0, 0, 0>;
#else
// Same member names as hls::axis (ap_axi_sdata.h, shipped with Vitis, not with hls4ml): data,
// keep, strb, last.
template <int W>
struct axis_beat {
    ap_uint<W> data;
    ap_uint<(W + 7) / 8> keep;
    ap_uint<(W + 7) / 8> strb;
    ap_uint<1> last;
};
#endif

// One instruction of the program (edgevit_hw.program.isa), decoded: field names as in derive.
struct Insn {
    int op, epi, src, dst, flags, k, out, rows, row0, index;
    uint32_t a0, a1, a2, a3, stride;
};

// Beat offsets of one LayerNorm: gamma [D] (32-bit), beta [D] (64-bit), eps (64-bit), m|s<<24.
struct NormSeg {
    uint32_t g, b, eps, q;
};

// One k-step of a token tile into the MAC array: R activations (one per array row).
template <class Cfg>
struct XBeat {
    typename Cfg::xin_t v[Cfg::R];
};

// One k-row of a column slab's weights: C lanes.
template <class Cfg>
struct WRow {
    typename Cfg::w_t v[Cfg::C];
};

// Per column slab, to the epilogue: valid columns, requantization constants (m, s) per column.
template <class Cfg>
struct TileHead {
    int ncols;
    typename Cfg::mult_t m[Cfg::C];
    typename Cfg::shift_t s[Cfg::C];
};

// Per column slab, from the loader to the MAC array: its biases (0 where the layer has none
// or past its outputs) and its head, which the MAC array forwards to the epilogue.
template <class Cfg>
struct SlabHead {
    typename Cfg::acc_t bias[Cfg::C];
    TileHead<Cfg> head;
};

// A value of a read-modify-write destination (residual stream or MoE sums) as the gather read
// it before the epilogue's write: the wider of the two types.
template <class Cfg>
using old_t = int_t<imax(Cfg::RES_BITS, Cfg::MOE_ACC_BITS)>;

// Where a row of the job goes, from the gather (which reads the expert queues and the old
// destination values) through the MAC array to the epilogue: destination token row, its gate
// weight when scattering to the MoE sums, and the C destination values of the row's slab
// columns when the epilogue adds to them (residual, MoE).
template <class Cfg>
struct RowDst {
    typename Cfg::tok_idx_t tok;
    typename Cfg::gw_t gw;
    old_t<Cfg> old[Cfg::C];
};

// One row of a slab leaving the MAC array (bias already added, exact), with its destination.
template <class Cfg>
struct AccRow {
    typename Cfg::acc_t v[Cfg::C];
    RowDst<Cfg> dst;
};

}  // namespace evh
