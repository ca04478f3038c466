"""``make sim MODEL=<preset>``: run the model on a real photograph and print a short report.

Sections: model and weights (synthetic weights are labelled), the derived accelerator budget,
the golden model per task (time, output checksum) and its fidelity against the float
reference (cosine similarity, SQNR per block), and the HLS C-simulation compared bit for bit
with the golden model. Each section is one function in ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from edgevit_hw.hls.csim import section_csim
from rich.console import Console
from rich.table import Table

from edgevit_hw.core.errors import EdgeVitError
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.ml.fidelity import measure
from edgevit_hw.ml.images import EVAL_IMAGE, load_image
from edgevit_hw.ml.weights import build_reference


def digest(tokens: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tokens, np.int64).tobytes()).hexdigest()[:12]


def section_model(ctx: dict, con: Console) -> None:
    prep = ctx["prep"]
    spec, qm, hw = prep.spec, prep.qmodel, prep.hw
    m = spec.model
    label = "SYNTHETIC (seeded, not trained)" if qm.synthetic else qm.source
    con.print(f"[bold]{spec.name}[/]  spec {spec.spec_hash()[:16]}  weights: {label}")
    con.print(
        f"  input {m.image.channels}x{m.image.height}x{m.image.width}, patch {m.patch}, "
        f"{m.tokens} tokens, embed {m.embed_dim}, depth {m.depth}, heads {m.heads}, "
        f"MoE blocks {list(spec.moe.blocks)} ({spec.moe.experts} experts, top-{spec.moe.top_k}), "
        f"tasks {list(spec.tasks)}"
    )
    con.print(
        f"  on-chip buffers {hw.onchip_bytes / 1024:.1f} KiB; DRAM weights per frame: "
        f"{hw.dram_bytes_dense / 2**20:.2f} MiB dense + {hw.dram_bytes_per_expert / 1024:.1f} "
        f"KiB per used expert per MoE block (worst {hw.dram_bytes_worst / 2**20:.2f} MiB)"
    )
    con.print(f"  image: scikit-image '{EVAL_IMAGE}' (not in the calibration set)")


def section_golden(ctx: dict, con: Console) -> None:
    prep, img = ctx["prep"], ctx["image"]
    model = build_reference(prep.spec, prep.weights)
    table = Table(title="golden model (bit-exact integer) vs float reference")
    for col in ("task", "time/frame", "tokens sha256", "cosine", "SQNR dB", "block SQNR dB"):
        table.add_column(col)
    blocks_table = Table(title="SQNR per block output (dB)")
    blocks_table.add_column("block")
    per_task = []
    for t, task in enumerate(prep.spec.tasks):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            gold = golden_forward(prep.qmodel, img, t)
            times.append(time.perf_counter() - t0)
        ctx.setdefault("golden", {})[t] = gold.tokens
        fid = measure(prep.qmodel, model, img, t)
        per_task.append(fid.block_sqnr)
        blocks_table.add_column(task)
        table.add_row(
            task, f"{statistics.median(times) * 1e3:.0f} ms", digest(gold.tokens),
            f"{fid.cosine:.5f}", f"{fid.sqnr:.1f}",
            f"{min(fid.block_sqnr):.1f} .. {max(fid.block_sqnr):.1f}",
        )  # fmt: skip
    for i, row in enumerate(zip(*per_task, strict=True)):
        kind = "MoE" if prep.spec.is_moe(i) else "dense"
        blocks_table.add_row(f"{i} ({kind})", *(f"{v:.1f}" for v in row))
    con.print(table)
    con.print(blocks_table)


SECTIONS = [section_model, section_golden, section_csim]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgevit_hw.sim", description=__doc__)
    ap.add_argument("--config", required=True, help="preset name or YAML spec path")
    ap.add_argument("--weights", help="float checkpoint (.safetensors or .npz)")
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    args = ap.parse_args(argv)
    con = Console(width=max(Console().width, 110))
    try:
        from edgevit_hw.core.spec import load_spec
        from edgevit_hw.flow import prepare

        spec = load_spec(args.config)
        prep = prepare(spec, args.weights)
        ctx = {"prep": prep, "image": load_image(EVAL_IMAGE, spec), "args": args,
               "out": Path(args.out or f"build/{spec.name}")}  # fmt: skip
        for section in SECTIONS:
            section(ctx, con)
    except EdgeVitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
