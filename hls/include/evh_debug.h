// evh_debug.h: C-simulation debug dumps of intermediate tensors (named like the golden trace).
// Compiled only with -DEVH_DUMP and never under synthesis; otherwise the macro is empty.
#pragma once
#if defined(EVH_DUMP) && !defined(__SYNTHESIS__)
#include <stdint.h>

#include <cstdio>
#include <cstdlib>

namespace evh {

// Writes rows x cols of a[][] as little-endian int64 to $EVH_DUMP_DIR/<name>.bin, name made
// from fmt with the block index (fmt is a plain name when it has no %d).
template <typename T, int CC>
void dump2d(const char* fmt, int blk, const T a[][CC], int rows, int cols) {
    const char* dir = std::getenv("EVH_DUMP_DIR");
    if (!dir) return;
    char name[256], path[1024];
    std::snprintf(name, sizeof name, fmt, blk);
    std::snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    std::FILE* f = std::fopen(path, "wb");
    if (!f) return;
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const int64_t v = int64_t(a[r][c]);
            std::fwrite(&v, sizeof v, 1, f);
        }
    std::fclose(f);
}

// After instruction j: every dump the table Off::DUMPS (emitted from the program's labels)
// lists for j, each a buffer of the accelerator under its golden trace name.
template <class Cfg, class Off>
void dump_after(int j, const typename Cfg::Act& a) {
    for (int i = 0; i < Off::NDUMPS; ++i) {
        if (Off::DUMPS[i].insn != j) continue;
        const char* name = Off::DUMPS[i].name;
        switch (Off::DUMPS[i].buf) {
            case Cfg::BUF_RESIDUAL: dump2d(name, 0, a.residual, Cfg::N, Cfg::D); break;
            case Cfg::BUF_LN_OUT: dump2d(name, 0, a.ln_out, Cfg::N, Cfg::D); break;
            case Cfg::BUF_QKV: dump2d(name, 0, a.qkv, Cfg::N, 3 * Cfg::D); break;
            case Cfg::BUF_ATTN_OUT: dump2d(name, 0, a.attn_out, Cfg::N, Cfg::D); break;
            case Cfg::BUF_HIDDEN: dump2d(name, 0, a.hidden, Cfg::N, Cfg::HID); break;
            case Cfg::BUF_MOE_ACC: dump2d(name, 0, a.moe_acc, Cfg::N, Cfg::D); break;
            case Cfg::BUF_GATE_LOGITS: dump2d(name, 0, a.gate_logits, Cfg::N, Cfg::E); break;
            case Off::DUMP_GATE_IDX: dump2d(name, 0, a.gate_idx, Cfg::N, Cfg::TOPK); break;
            default: dump2d(name, 0, a.gate_weights, Cfg::N, Cfg::TOPK); break;
        }
    }
}

}  // namespace evh
#define EVH_DUMP_AFTER(Off, j, a) evh::dump_after<Cfg, Off>(j, a)
#else
#define EVH_DUMP_AFTER(Off, j, a) ((void)0)
#endif
