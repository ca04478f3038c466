"""Golden-model speed per frame (median of several runs) and fidelity, one preset.

.venv/bin/python benchmarks/bench_golden.py --config m3vit --runs 7
"""

from __future__ import annotations

import os

# One BLAS thread: steadier on a shared 2-core machine, and what the figures in notes quote.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edgevit_hw.core.golden import golden_forward  # noqa: E402
from edgevit_hw.core.spec import load_spec  # noqa: E402
from edgevit_hw.flow import prepare  # noqa: E402
from edgevit_hw.ml.fidelity import measure  # noqa: E402
from edgevit_hw.ml.images import EVAL_IMAGE, load_image  # noqa: E402
from edgevit_hw.ml.weights import build_reference  # noqa: E402


def time_frames(qm, img, task: int, runs: int) -> list[float]:
    golden_forward(qm, img, task)  # warm-up (table caches, BLAS threads)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        golden_forward(qm, img, task)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    spec = load_spec(args.config)
    prep = prepare(spec)
    img = load_image(EVAL_IMAGE, spec)
    model = build_reference(spec, prep.weights)
    con = Console(width=120)
    threads = os.environ["OPENBLAS_NUM_THREADS"]
    cpu = platform.processor() or platform.machine()
    con.print(f"{cpu}, {os.cpu_count()} cores, OPENBLAS_NUM_THREADS={threads}")
    con.print(f"weights: {prep.qmodel.source}")
    table = Table(title=f"golden model, {spec.name}, {args.runs} runs per task")
    for col in ("task", "median s/frame", "min", "max", "cosine", "block SQNR dB (min..max)"):
        table.add_column(col)
    for t, task in enumerate(spec.tasks):
        ts = time_frames(prep.qmodel, img, t, args.runs)
        fid = measure(prep.qmodel, model, img, t)
        table.add_row(task, f"{statistics.median(ts):.3f}", f"{min(ts):.3f}", f"{max(ts):.3f}",
                      f"{fid.cosine:.5f}",
                      f"{min(fid.block_sqnr):.1f}..{max(fid.block_sqnr):.1f}")  # fmt: skip
    con.print(table)


if __name__ == "__main__":
    main()
