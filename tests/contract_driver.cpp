// contract_driver.cpp: runs ONE operation of hls/include/evh_arith.h (the HLS kernels' arithmetic)
// on records read from a file, for the three-way contract test (tests/test_contract.py).
//
// Usage: contract_driver OP IN OUT EXP2_TABLE GELU_TABLE
//   IN, OUT      little-endian int64 values, records back to back (layouts below)
//   EXP2_TABLE   int64 arithmetic.exp2_table(EVH_F, EVH_O), 2^EVH_F entries
//   GELU_TABLE   int64 arithmetic.gelu_table(EVH_GF), EVH_GELU_LAST + 1 entries
// Compile-time parameters (-D): EVH_F, EVH_O (exp2), EVH_GF (GELU), EVH_E, EVH_K, EVH_W (gate),
// EVH_DV (softmax value width), EVH_D, EVH_NF (LayerNorm row length, normalization bits), and
// the derived widths the kernels' templates take (EVH_<NAME>_BITS, see contract_cpp.py). With
// -DEVH_AP_TYPES every intermediate is ap_int of exactly those widths (the synthesis types).
//
// Record layouts (input -> output):
//   round_shift          x s                      -> y
//   requant              acc m s bits             -> y
//   exp2_q               x                        -> y
//   gelu_q               u                        -> y
//   rsqrt_q              v                        -> m sh
//   ln_normalize         d r sh nf                -> n
//   layernorm_q          x[D] g[D] b[D] eps m s bits -> y[D]
//   div_round            a b                      -> q
//   normalize_attention  acc l bits               -> o
//   online_softmax       n t[n] v[n][DV]          -> l acc[DV]
//   topk_lower_index     t[E]                     -> idx[K]
//   gate_q               t[E]                     -> idx[K] w[K]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "evh_arith.h"

using namespace evh;

typedef int64_t i64;  // the records' values (little-endian int64 files)

// The contract's constants and the width set's derived widths, passed in from Python (-D, see
// contract_cpp.py): the class K of the kernels' templates.
struct Contract {
    static constexpr int GELU_STEP_LOG2 = EVH_GELU_STEP_LOG2;
    static constexpr int GELU_LAST = EVH_GELU_LAST;
    static constexpr int RSQRT_U_BITS = EVH_RSQRT_U_BITS;
    static constexpr int RSQRT_M_FRAC = EVH_RSQRT_M_FRAC;
    static constexpr int RSQRT_M_BITS = EVH_RSQRT_M_BITS;
    static constexpr int EXP_F = EVH_F;
    static constexpr int EXP_OUT = EVH_O;
    static constexpr int GELU_F = EVH_GF;
    static constexpr int GATE_W_BITS = EVH_W;
    static constexpr int LN_FRAC = EVH_NF;
    static constexpr int ACT_BITS = EVH_ACT_BITS;
    static constexpr int LOGIT_BITS = EVH_LOGIT_BITS;
    static constexpr int MULT_BITS = EVH_MULT_BITS;
    static constexpr int SOFTMAX_SUM_BITS = EVH_SOFTMAX_SUM_BITS;
    static constexpr int SOFTMAX_ACC_BITS = EVH_SOFTMAX_ACC_BITS;
    static constexpr int GELU_IN_BITS = EVH_GELU_IN_BITS;
    static constexpr int GELU_OUT_BITS = EVH_GELU_OUT_BITS;
    static constexpr int GELU_TABLE_BITS = EVH_GELU_TABLE_BITS;
    static constexpr int GATE_SUM_BITS = EVH_GATE_SUM_BITS;
    static constexpr int LN_SUM_BITS = EVH_LN_SUM_BITS;
    static constexpr int LN_D_BITS = EVH_LN_D_BITS;
    static constexpr int LN_VAR_BITS = EVH_LN_VAR_BITS;
    static constexpr int LN_DR_BITS = EVH_LN_DR_BITS;
    static constexpr int LN_N_BITS = EVH_LN_N_BITS;
    static constexpr int LN_ACC_BITS = EVH_LN_ACC_BITS;
    static constexpr int LN_PROD_BITS = EVH_LN_PROD_BITS;
};

// The scalar ops' records span wider domains than one width set (62-bit round_shift and
// requant operands, centered values of any variance for ln_normalize): 64-bit operands and
// the RTL contract test's ln_normalize widths (d 40, product and result 60 bits).
struct Wide : Contract {
    static constexpr int LN_D_BITS = 40;
    static constexpr int LN_DR_BITS = 60;
    static constexpr int LN_N_BITS = 60;
};
typedef int_t<64> wide_t;

namespace {

std::vector<i64> read_i64(const char* path) {
    std::vector<i64> out;
    FILE* f = std::fopen(path, "rb");
    if (!f) return out;
    i64 v;
    while (std::fread(&v, sizeof v, 1, f) == 1) out.push_back(v);
    std::fclose(f);
    return out;
}

bool read_table(const char* path, int32_t* table, size_t len) {
    const std::vector<i64> vals = read_i64(path);
    if (vals.size() != len) return false;
    for (size_t i = 0; i < len; ++i) table[i] = int32_t(vals[i]);
    return true;
}

int32_t EXP2[1 << EVH_F];
int32_t GELU[EVH_GELU_LAST + 1];

// Reads records from `in` (a cursor), appends results to `out`; false on a short record.
struct Io {
    const std::vector<i64>& in;
    size_t at;
    std::vector<i64> out;
    bool has(size_t n) const { return at + n <= in.size(); }
    i64 next() { return in[at++]; }
    void put(i64 v) { out.push_back(v); }
};

typedef Contract K;

void op_layernorm(Io& io) {
    i64 x[EVH_D], g[EVH_D], b[EVH_D], y[EVH_D];
    for (i64& v : x) v = io.next();
    for (i64& v : g) v = io.next();
    for (i64& v : b) v = io.next();
    const i64 eps = io.next(), m = io.next(), s = io.next();
    io.next();  // bits: K::ACT_BITS
    layernorm_q<EVH_D, K, K::ACT_BITS, 1>(x, g, b, uint_t<K::LN_VAR_BITS>(eps),
                                          uint_t<K::MULT_BITS>(m), uint_t<6>(s), y);
    for (i64 v : y) io.put(v);
}

bool op_softmax(Io& io) {
    const i64 n = io.next();
    if (n < 1 || !io.has(size_t(n) * (1 + EVH_DV))) return false;
    std::vector<i64> t(static_cast<size_t>(n));
    for (i64& v : t) v = io.next();
    SoftmaxRow<EVH_DV, K> st;
    online_softmax_init<EVH_DV, K>(st);
    for (i64 j = 0; j < n; ++j) {
        int_t<K::ACT_BITS> v[EVH_DV];
        for (auto& e : v) e = int_t<K::ACT_BITS>(io.next());
        online_softmax_ref<EVH_DV, K>(st, int_t<K::LOGIT_BITS>(t[size_t(j)]), v, EXP2);
    }
    io.put(i64(st.l));
    for (const auto& a : st.acc) io.put(i64(a));
    return true;
}

void op_gate(Io& io, bool weights) {
    int_t<K::LOGIT_BITS> t[EVH_E];
    uint_t<K::GATE_W_BITS + 1> w[EVH_K];
    int idx[EVH_K];
    for (auto& v : t) v = int_t<K::LOGIT_BITS>(io.next());
    if (weights) {
        gate_q<EVH_E, EVH_K, K>(t, idx, w, EXP2);
    } else {
        topk_lower_index<EVH_E, EVH_K>(t, idx);
    }
    for (int i : idx) io.put(i);
    if (weights)
        for (const auto& v : w) io.put(i64(v));
}

// requant of one record to a width the test names (tests/test_contract.py REQUANT_BITS).
bool op_requant(Io& io) {
    const wide_t acc = wide_t(io.next());
    const uint_t<24> m = uint_t<24>(io.next());
    const uint_t<6> s = uint_t<6>(io.next());
    switch (io.next()) {
        case 4: io.put(i64(requant<4, 64>(acc, m, s))); return true;
        case 5: io.put(i64(requant<5, 64>(acc, m, s))); return true;
        case 8: io.put(i64(requant<8, 64>(acc, m, s))); return true;
        case 16: io.put(i64(requant<16, 64>(acc, m, s))); return true;
        case 20: io.put(i64(requant<20, 64>(acc, m, s))); return true;
        case 32: io.put(i64(requant<32, 64>(acc, m, s))); return true;
        default: return false;
    }
}

// One record of `op`; false when the record is short or the op unknown.
bool step(const std::string& op, Io& io) {
    if (op == "layernorm_q") {
        if (!io.has(3 * EVH_D + 4)) return false;
        op_layernorm(io);
    } else if (op == "online_softmax") {
        return op_softmax(io);
    } else if (op == "topk_lower_index" || op == "gate_q") {
        if (!io.has(EVH_E)) return false;
        op_gate(io, op == "gate_q");
    } else if (op == "round_shift" && io.has(2)) {
        const i64 x = io.next(), s = io.next();
        io.put(i64(round_shift(wide_t(x), int(s))));
    } else if (op == "requant" && io.has(4)) {
        return op_requant(io);
    } else if (op == "exp2_q" && io.has(1)) {
        const int_t<K::LOGIT_BITS + 2> x = int_t<K::LOGIT_BITS + 2>(io.next());
        io.put(i64(exp2_q<EVH_F, EVH_O, K::LOGIT_BITS + 2>(x, EXP2)));
    } else if (op == "gelu_q" && io.has(1)) {
        io.put(i64(gelu_q<K>(int_t<K::GELU_IN_BITS>(io.next()), GELU)));
    } else if (op == "rsqrt_q" && io.has(1)) {
        uint_t<K::RSQRT_M_BITS> m;
        int sh;
        rsqrt_q<K>(uint_t<K::LN_VAR_BITS>(io.next()), m, sh);
        io.put(i64(m));
        io.put(sh);
    } else if (op == "ln_normalize" && io.has(4)) {
        const i64 d = io.next(), r = io.next(), sh = io.next();
        io.next();  // nf: K::LN_FRAC
        const int_t<Wide::LN_D_BITS> dw = int_t<Wide::LN_D_BITS>(d);
        io.put(i64(ln_normalize<Wide>(dw, uint_t<K::RSQRT_M_BITS>(r), int(sh))));
    } else if (op == "div_round" && io.has(2)) {
        const i64 a = io.next(), b = io.next();
        io.put(i64(div_round<64>(wide_t(a), wide_t(b))));
    } else if (op == "normalize_attention" && io.has(3)) {
        const i64 acc = io.next(), l = io.next();
        io.next();  // bits: K::ACT_BITS
        io.put(i64(normalize_attention<K>(int_t<K::SOFTMAX_ACC_BITS>(acc),
                                          uint_t<K::SOFTMAX_SUM_BITS>(l))));
    } else {
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s OP IN OUT EXP2_TABLE GELU_TABLE\n", argv[0]);
        return 2;
    }
    if (!read_table(argv[4], EXP2, 1 << EVH_F) || !read_table(argv[5], GELU, EVH_GELU_LAST + 1)) {
        std::fprintf(stderr, "bad table file\n");
        return 2;
    }
    const std::string op = argv[1];
    const std::vector<i64> in = read_i64(argv[2]);
    Io io{in, 0, {}};
    while (io.at < in.size())
        if (!step(op, io)) {
            std::fprintf(stderr, "%s: bad record at value %zu\n", op.c_str(), io.at);
            return 1;
        }
    FILE* f = std::fopen(argv[3], "wb");
    if (!f || std::fwrite(io.out.data(), sizeof(i64), io.out.size(), f) != io.out.size()) return 1;
    std::fclose(f);
    return 0;
}
