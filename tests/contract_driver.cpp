// contract_driver.cpp: runs ONE operation of hls/include/evh_arith.h (the HLS kernels' arithmetic)
// on records read from a file, for the three-way contract test (tests/test_contract.py).
//
// Usage: contract_driver OP IN OUT EXP2_TABLE GELU_TABLE
//   IN, OUT      little-endian int64 values, records back to back (layouts below)
//   EXP2_TABLE   int64 arithmetic.exp2_table(EVH_F, EVH_O), 2^EVH_F entries
//   GELU_TABLE   int64 arithmetic.gelu_table(EVH_GF), EVH_GELU_LAST + 1 entries
// Compile-time parameters (-D): EVH_F, EVH_O (exp2), EVH_GF (GELU), EVH_E, EVH_K, EVH_W (gate),
// EVH_DV (softmax value width), EVH_D, EVH_NF (LayerNorm row length, normalization bits).
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

// The contract's constants, passed in from edgevit_hw.core.arithmetic (-D, see contract_cpp.py).
struct Contract {
    static constexpr int GELU_STEP_LOG2 = EVH_GELU_STEP_LOG2;
    static constexpr int GELU_LAST = EVH_GELU_LAST;
    static constexpr int RSQRT_U_BITS = EVH_RSQRT_U_BITS;
    static constexpr int RSQRT_M_FRAC = EVH_RSQRT_M_FRAC;
    static constexpr int RSQRT_M_BITS = EVH_RSQRT_M_BITS;
};

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

void op_layernorm(Io& io) {
    i64 x[EVH_D], g[EVH_D], b[EVH_D], y[EVH_D];
    for (i64& v : x) v = io.next();
    for (i64& v : g) v = io.next();
    for (i64& v : b) v = io.next();
    const i64 eps = io.next(), m = io.next(), s = io.next(), bits = io.next();
    layernorm_q<EVH_D, EVH_NF, Contract>(x, g, b, eps, m, int(s), int(bits), y);
    for (i64 v : y) io.put(v);
}

bool op_softmax(Io& io) {
    const i64 n = io.next();
    if (n < 1 || !io.has(size_t(n) * (1 + EVH_DV))) return false;
    std::vector<i64> t(static_cast<size_t>(n));
    for (i64& v : t) v = io.next();
    SoftmaxRow<EVH_DV> st;
    online_softmax_init<EVH_DV>(st);
    for (i64 j = 0; j < n; ++j) {
        i64 v[EVH_DV];
        for (i64& e : v) e = io.next();
        online_softmax_ref<EVH_DV, EVH_F, EVH_O>(st, t[size_t(j)], v, EXP2);
    }
    io.put(st.l);
    for (i64 a : st.acc) io.put(a);
    return true;
}

void op_gate(Io& io, bool weights) {
    i64 t[EVH_E], w[EVH_K];
    int idx[EVH_K];
    for (i64& v : t) v = io.next();
    if (weights) {
        gate_q<EVH_E, EVH_K, EVH_F, EVH_O, EVH_W>(t, idx, w, EXP2);
    } else {
        topk_lower_index<EVH_E, EVH_K>(t, idx);
    }
    for (int i : idx) io.put(i);
    if (weights)
        for (i64 v : w) io.put(v);
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
        io.put(round_shift(x, int(s)));
    } else if (op == "requant" && io.has(4)) {
        const i64 acc = io.next(), m = io.next(), s = io.next(), bits = io.next();
        io.put(requant(acc, m, int(s), int(bits)));
    } else if (op == "exp2_q" && io.has(1)) {
        io.put(exp2_q<EVH_F, EVH_O>(io.next(), EXP2));
    } else if (op == "gelu_q" && io.has(1)) {
        io.put(gelu_q<EVH_GF, Contract>(io.next(), GELU));
    } else if (op == "rsqrt_q" && io.has(1)) {
        i64 m;
        int sh;
        rsqrt_q<Contract>(io.next(), m, sh);
        io.put(m);
        io.put(sh);
    } else if (op == "ln_normalize" && io.has(4)) {
        const i64 d = io.next(), r = io.next(), sh = io.next(), nf = io.next();
        io.put(ln_normalize(d, r, int(sh), int(nf)));
    } else if (op == "div_round" && io.has(2)) {
        const i64 a = io.next(), b = io.next();
        io.put(div_round(a, b));
    } else if (op == "normalize_attention" && io.has(3)) {
        const i64 acc = io.next(), l = io.next(), bits = io.next();
        io.put(normalize_attention(acc, l, int(bits)));
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
