"""C-simulation speed and the memory figures of the generated HLS design.

``python benchmarks/bench_csim.py --config m3vit [--runs 5]``

Prints: compile time (a fresh compile into a temporary cache, so it is always measured),
the wall time of one frame (median of --runs runs of the compiled binary, each a separate
process: weight image load included), whether each run is bit-exact against the golden model,
the on-chip buffers (derive's complete list) and the DRAM bytes read per frame (the cycle
model's traffic on the evaluation image's routing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from edgevit_hw.hls import csim

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import prepare
from edgevit_hw.ml.images import EVAL_IMAGE, load_image
from edgevit_hw.program.interpreter import Interpreter
from edgevit_hw.program.perf import estimate


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


def _time_frames(prep, binary, runs: int) -> None:
    px = load_image(EVAL_IMAGE, prep.spec)
    times = []
    for task in range(len(prep.spec.tasks)):
        gold = golden_forward(prep.qmodel, px, task)
        for _ in range(runs):
            res = csim.run_frame(binary, prep.qmodel, px, task)
            same = np.array_equal(res.frames[0], gold.tokens)
            times.append(res.run_s)
            print(f"  task {task}: {res.run_s:.2f} s, {res.cycles} modeled cycles,"
                  f" {'bit-exact' if same else 'MISMATCH'}")  # fmt: skip
    print(f"C-simulation per frame ({EVAL_IMAGE}): median {statistics.median(times):.2f} s"
          f" over {len(times)} runs (min {min(times):.2f}, max {max(times):.2f})")  # fmt: skip


def _buffers(hw) -> None:
    print("on-chip buffers (derive's Buffers; the HLS struct and the RTL allocate these):")
    for b in hw.buffers.all():
        shape = "x".join(map(str, b.shape))
        print(f"  {b.name:16s} {shape:>12s} x {b.bits:2d} bit = {b.bytes:9d} B")
    print(f"  {'total':16s} {hw.onchip_bytes:30d} B")


def _dram(prep, counts: list[list[list[int]]]) -> None:
    """DRAM traffic per frame from the cycle model (program, weights and constants read)."""
    beat = prep.hw.streams.beat_bytes
    print(f"DRAM image: {len(prep.program.image)} B (program, every expert, every router)")
    for task, per_block in enumerate(counts):
        rep = estimate(prep.program, per_block)
        print(f"  task {task}: {rep.dram_beats * beat} B read per frame"
              f" ({sum(c > 0 for blk in per_block for c in blk)} expert loads)")  # fmt: skip


def _queue_counts(prep) -> list[list[list[int]]]:
    """Per task, the queue lengths of every MoE block on the evaluation image."""
    from edgevit_hw.core.golden import patchify

    interp = Interpreter(prep.program.image, prep.hw)
    patches = patchify(load_image(EVAL_IMAGE, prep.spec), prep.spec.model.patch)
    out = []
    for task in range(len(prep.spec.tasks)):
        interp.run(patches, task)
        out.append(interp.queue_counts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    prep = prepare(load_spec(args.config))
    print(f"{prep.spec.name}: MAC {prep.hw.mac_rows}x{prep.hw.mac_cols},"
          f" P = {prep.hw.attn_rows}, weight port {prep.hw.weight_port_bits} bit")  # fmt: skip
    binary = _compile_fresh(prep)
    _time_frames(prep, binary, args.runs)
    _buffers(prep.hw)
    _dram(prep, _queue_counts(prep))


if __name__ == "__main__":
    main()
