// evh_debug.h: C-simulation debug dumps of intermediate tensors (named like the golden trace).
// Compiled only with -DEVH_DUMP and never under synthesis; otherwise the macro is empty.
#pragma once
#if defined(EVH_DUMP) && !defined(__SYNTHESIS__)
#include <stdint.h>

#include <cstdio>
#include <cstdlib>

namespace evh {

// Writes rows x cols of a[][] as little-endian int64 to $EVH_DUMP_DIR/<name>.bin, name made
// from fmt with the block index.
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

}  // namespace evh
#define EVH_DUMP2(fmt, blk, a, rows, cols) evh::dump2d(fmt, blk, a, rows, cols)
#else
#define EVH_DUMP2(fmt, blk, a, rows, cols) ((void)0)
#endif
