"""C-simulation speed and the memory figures of the generated HLS design.

``python benchmarks/bench_csim.py --config m3vit [--runs 5]``

Prints: compile time (a fresh compile into a temporary cache, so it is always measured),
the wall time of one frame (median of --runs runs of the compiled binary, each a separate
process: weight image load included), whether each run is bit-exact against the golden model,
the on-chip buffers (HwParams.buffers from derive, plus the HLS-only arrays) and the DRAM bytes
read per frame (weights only) from derive and from the actual weight image.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from edgevit_hw.hls import csim
from edgevit_hw.hls.emit import build_image, hls_buffers

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import prepare
from edgevit_hw.ml.images import EVAL_IMAGE, load_image


def _compile_fresh(prep) -> csim.Binary:
    old = csim.CACHE
    with tempfile.TemporaryDirectory() as tmp:
        csim.CACHE = Path(tmp)
        try:
            fresh = csim.build(prep.qmodel, prep.hw)
        finally:
            csim.CACHE = old
    print(f"compile (g++ {' '.join(csim.CXXFLAGS)}): {fresh.compile_s:.1f} s")
    return csim.build(prep.qmodel, prep.hw)  # the cached binary used by the runs


def _time_frames(prep, binary, runs: int) -> list[int]:
    px = load_image(EVAL_IMAGE, prep.spec)
    times, used = [], []
    for task in range(len(prep.spec.tasks)):
        gold = golden_forward(prep.qmodel, px, task, trace=True)
        for _ in range(runs):
            res = csim.run_frame(binary, prep.qmodel, px, task)
            same = np.array_equal(res.frames[0], gold.tokens)
            times.append(res.run_s)
            print(f"  task {task}: {res.run_s:.2f} s, {res.cycles} modeled cycles,"
                  f" {'bit-exact' if same else 'MISMATCH'}")  # fmt: skip
        used.append(sum(len(np.unique(v)) for k, v in gold.trace.items() if k.endswith("gate_idx")))
    print(f"C-simulation per frame ({EVAL_IMAGE}): median {statistics.median(times):.2f} s"
          f" over {len(times)} runs (min {min(times):.2f}, max {max(times):.2f})")  # fmt: skip
    return used


def _buffers(hw) -> None:
    print("on-chip buffers from derive (HwParams.buffers):")
    for b in hw.buffers:
        print(f"  {b.name:24s} {b.words:8d} x {b.bits:2d} bit = {b.bytes:9d} B")
    print(f"  {'total (derive)':24s} {hw.onchip_bytes:31d} B")
    print("arrays of the generated design (evh::Act, exact derived widths):")
    total = 0
    for name, words, bits in hls_buffers(hw):
        nbytes = words * -(-bits // 8)
        total += nbytes
        print(f"  {name:24s} {words:8d} x {bits:2d} bit = {nbytes:9d} B")
    print(f"  {'total (HLS design)':24s} {total:31d} B")


def _dram(prep, used_per_block: list[int]) -> None:
    hw = prep.hw
    img, _ = build_image(prep.qmodel, hw)
    print(f"DRAM weights per frame (derive): dense {hw.dram_bytes_dense} B"
          f" + {hw.dram_bytes_per_expert} B per used expert per MoE block;"
          f" worst case {hw.dram_bytes_worst} B")  # fmt: skip
    for task, used in enumerate(used_per_block):
        print(f"  task {task}: {used} expert loads in the MoE blocks ->"
              f" {hw.dram_bytes_dense + used * hw.dram_bytes_per_expert} B")  # fmt: skip
    expert = sum(v for k, v in img.sizes.items() if ".efc" in k)
    gates = sum(v for k, v in img.sizes.items() if ".gate." in k)
    tasks = len(prep.spec.tasks)
    dense = img.beats * img.beat_bytes - expert - gates + gates // max(tasks, 1)
    print(f"weight image: {img.beats * img.beat_bytes} B in total; read per frame without"
          f" experts (one router; norms, pos, cls, padding included): {dense} B")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    prep = prepare(load_spec(args.config))
    print(f"{prep.spec.name}: MAC {prep.hw.mac_rows}x{prep.hw.mac_cols},"
          f" P = {prep.hw.attn_rows}, weight port {prep.hw.weight_port_bits} bit")  # fmt: skip
    binary = _compile_fresh(prep)
    used = _time_frames(prep, binary, args.runs)
    _buffers(prep.hw)
    _dram(prep, used)


if __name__ == "__main__":
    main()
