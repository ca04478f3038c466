"""Host driver figures: frames streamed back to back on the rtl backend against a lone frame
(cycles), the simulation's frames per minute on this machine, and the driver's overhead per
frame on the golden backend (medians of several runs).

.venv/bin/python benchmarks/bench_driver.py --config m3vit --frames 3 --runs 5

Targets (issue 10): streamed cycles per frame <= 1.05x a lone frame's FRAME_CYCLES (its
pixels included): input overlaps compute; driver overhead <= 5% of the golden model's time.
An m3vit Verilator build takes minutes (once, cached) and a frame about a minute.
"""

from __future__ import annotations

import os

# One BLAS thread: steadier on a shared 2-core machine, and what the figures in notes quote.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edgevit_hw.core.golden import golden_forward  # noqa: E402
from edgevit_hw.core.spec import load_spec  # noqa: E402
from edgevit_hw.driver import Accelerator  # noqa: E402
from edgevit_hw.driver.backends import check_frame  # noqa: E402
from edgevit_hw.driver.frames import frames as frames_of  # noqa: E402
from edgevit_hw.flow import prepare  # noqa: E402
from edgevit_hw.ml.images import random_pixels  # noqa: E402


def rtl_figures(prep, frames: int) -> dict[str, float]:
    """A lone frame, then ``frames`` streamed back to back, on one opened device."""
    px = [random_pixels(prep.spec, i) for i in range(frames)]
    with Accelerator.open(prep, backend="rtl") as acc:
        (alone,) = acc.run(px[0])
        t0 = time.perf_counter()
        res = acc.run(px)
        wall = time.perf_counter() - t0
    if not all(r.ok for r in [alone, *res]):
        raise SystemExit(f"a frame was dropped: {[str(r.error) for r in [alone, *res]]}")
    streamed = (res[-1].tokens_out - res[0].tokens_out) / (frames - 1)
    return {"lone": alone.cycles, "streamed": streamed, "ratio": streamed / alone.cycles,
            "first": res[0].cycles, "wall": wall, "per_min": 60 * frames / wall}  # fmt: skip


def golden_overhead(prep, frames: int, runs: int) -> dict[str, float]:
    """Median seconds per frame over ``runs`` interleaved runs: the golden model called
    directly, the same frames through the driver, and the driver's own work alone (frame
    source and the frame check, what the golden backend adds to the model)."""
    px = [random_pixels(prep.spec, i) for i in range(frames)]
    times: dict[str, list[float]] = {"direct": [], "driver": [], "own": []}
    acc = Accelerator.open(prep, backend="golden")
    acc.run(px[:1])  # warm-up
    work = {
        "direct": lambda: [golden_forward(prep.qmodel, p, 0) for p in px],
        "driver": lambda: acc.run(px),
        "own": lambda: [check_frame(f, prep.hw) for f in frames_of(px, prep.spec)],
    }
    for _ in range(runs):
        for name, job in work.items():
            t0 = time.perf_counter()
            job()
            times[name].append((time.perf_counter() - t0) / frames)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--frames", type=int, default=3, help="frames streamed on rtl (>= 2)")
    ap.add_argument("--runs", type=int, default=7, help="golden runs (median)")
    ap.add_argument("--no-rtl", action="store_true", help="only the golden overhead")
    args = ap.parse_args()
    prep = prepare(load_spec(args.config))
    con = Console(width=120)
    con.print(f"{os.cpu_count()} cores, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    g = golden_overhead(prep, 3, args.runs)
    table = Table(title=f"host driver, {prep.spec.name}")
    for col in ("figure", "value", "target"):
        table.add_column(col)
    direct, driver, own = g["direct"], g["driver"], g["own"]
    table.add_row("golden s/frame (direct, through the driver)", f"{direct:.4f}, {driver:.4f}", "")
    over = 100 * (driver - direct) / direct
    table.add_row("driver overhead per frame (difference of medians)", f"{over:+.2f}%", "<= 5%")
    own_pc = f"{1e3 * own:.2f} ms = {100 * own / direct:.2f}%"
    table.add_row("driver's own work per frame (frame source + frame check)", own_pc, "<= 5%")
    if not args.no_rtl:
        r = rtl_figures(prep, max(2, args.frames))
        table.add_row("rtl lone frame (FRAME_CYCLES)", f"{r['lone']:,}", "")
        table.add_row("rtl streamed cycles per frame", f"{r['streamed']:,.0f}", "")
        table.add_row("streamed / lone", f"{r['ratio']:.4f}", "<= 1.05")
        table.add_row("rtl frames per minute (simulation)", f"{r['per_min']:.2f}", "")
    con.print(table)


if __name__ == "__main__":
    main()
