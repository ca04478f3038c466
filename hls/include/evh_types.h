// evh_types.h: the integer types of the kernels. int_t<N> / uint_t<N> hold exactly N bits:
// ap_int<N> / ap_uint<N> under synthesis (__SYNTHESIS__) and in the -DEVH_AP_TYPES
// C-simulation build, else (the fast C-simulation build) the smallest native integer with at
// least N bits. Every width N in the kernels is a width of edgevit_hw.core.derive (emitted into
// evh_params.h as Cfg::*_BITS) or the exact width of a product (sum of the operand widths) or
// sum (one bit more) of such values; no per-lane value is typed by a wider C type.
#pragma once
#include <stdint.h>

#include <type_traits>

// The ap_types headers (hls4ml's copy of the Xilinx ones) default-construct ap_private by
// clearing unused bits of an uninitialized word; after inlining GCC reports that as
// -W(maybe-)uninitialized inside those headers. The warning is silenced for the headers only
// (diagnostic state is per source location), not for this project's code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <ap_int.h>
#pragma GCC diagnostic pop

namespace evh {

#if defined(EVH_AP_TYPES) || defined(__SYNTHESIS__)
template <int N>
using int_t = ap_int<N>;
template <int N>
using uint_t = ap_uint<N>;
#else
// The native fallback (C-simulation only): the one place a 64-bit C type stands for a
// derived width (N > 32).
template <int N, bool S>
struct native_int {
    static_assert(N >= 1 && N <= 64, "a native C-simulation type holds at most 64 bits");
    typedef typename std::conditional<(N <= 8), int8_t, int16_t>::type s16;
    typedef typename std::conditional<(N <= 16), s16, int32_t>::type s32;
    typedef typename std::conditional<(N <= 32), s32, int64_t>::type s;
    typedef typename std::conditional<(N <= 8), uint8_t, uint16_t>::type u16;
    typedef typename std::conditional<(N <= 16), u16, uint32_t>::type u32;
    typedef typename std::conditional<(N <= 32), u32, uint64_t>::type u;
    typedef typename std::conditional<S, s, u>::type type;
};
template <int N>
using int_t = typename native_int<N, true>::type;
template <int N>
using uint_t = typename native_int<N, false>::type;
#endif

// Width and signedness of a kernel integer type (native or ap).
template <typename T>
struct int_traits {
    static constexpr int bits = 8 * int(sizeof(T));
    static constexpr bool is_signed = T(-1) < T(0);
};
template <int N>
struct int_traits<ap_int<N>> {
    static constexpr int bits = N;
    static constexpr bool is_signed = true;
};
template <int N>
struct int_traits<ap_uint<N>> {
    static constexpr int bits = N;
    static constexpr bool is_signed = false;
};

constexpr int imax(int a, int b) { return a > b ? a : b; }
constexpr int imin(int a, int b) { return a < b ? a : b; }

// Bits of an unsigned value v (0 for 0), at compile time.
constexpr int ubits_of(uint32_t v) { return v ? 1 + ubits_of(v >> 1) : 0; }

}  // namespace evh
