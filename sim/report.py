"""``make sim MODEL=<preset>`` or ``python -m edgevit_hw.sim --config <preset> [--weights W]
[--calib DIR|NPZ] [--image IMG]``: run the model on a real photograph, print a short report.

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

from edgevit_hw.cli import add_model_args
from edgevit_hw.core.errors import CliParser, run_cli
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.ml.fidelity import measure
from edgevit_hw.ml.images import EVAL_IMAGE
from edgevit_hw.ml.weights import build_reference
from edgevit_hw.progress import step


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
    prog = prep.program
    con.print(
        f"  on-chip buffers {hw.onchip_bytes / 1024:.1f} KiB; program {len(prog.insns)}"
        f" instructions; DRAM image {len(prog.image) / 2**20:.2f} MiB (every expert, every"
        " task's router)"
    )
    con.print(f"  calibration: {qm.calibration}")
    unseen = " (never in a calibration set)" if prep.frame_name == EVAL_IMAGE else ""
    con.print(f"  image: {prep.frame_name}{unseen}")


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
        with step(f"golden model (3 runs) and float reference of {prep.spec.name}, task {task}"):
            for _ in range(3):
                t0 = time.perf_counter()
                gold = golden_forward(prep.qmodel, img, t)
                times.append(time.perf_counter() - t0)
            fid = measure(prep.qmodel, model, img, t)
        ctx.setdefault("golden", {})[t] = gold.tokens
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


def section_program(ctx: dict, con: Console) -> None:
    """The program interpreter against the golden model, and the cycle model on the routing
    the image actually takes (queue lengths measured by the interpreter)."""
    from edgevit_hw.core.golden import patchify
    from edgevit_hw.program.interpreter import Interpreter
    from edgevit_hw.program.perf import estimate

    prep, img = ctx["prep"], ctx["image"]
    interp = Interpreter(prep.program.image, prep.hw)
    table = Table(title="program: interpreter vs golden, cycle model (measured routing)")
    for col in ("task", "interpreter", "cycles", "ms", "MAC busy", "memory floor"):
        table.add_column(col)
    for t, task in enumerate(prep.spec.tasks):
        with step(f"program interpreter of {prep.spec.name}, task {task}"):
            got = interp.run(patchify(img, prep.spec.model.patch), t)
        same = np.array_equal(got, golden_forward(prep.qmodel, img, t).tokens)
        rep = estimate(prep.program, interp.queue_counts)
        table.add_row(task, "BIT-EXACT" if same else "MISMATCH", f"{rep.total:,}",
                      f"{rep.ms():.2f}", f"{rep.mac_busy_fraction:.1%}",
                      f"{rep.memory_floor:,} cycles")  # fmt: skip
    con.print(table)


SECTIONS = [section_model, section_golden, section_program, section_csim]


def main(argv: list[str] | None = None) -> int:
    """A bad input is one line and exit status 2; a failed C-simulation prints its message
    and exits 1."""
    ap = CliParser(prog="python -m edgevit_hw.sim", description=__doc__.split("\n\n")[0])
    add_model_args(ap)
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    return run_cli(_report, ap, argv, tool_failures=True)


def _report(args: argparse.Namespace) -> int:
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import check_out, prepare

    out = check_out(Path(args.out)) if args.out else None
    spec = load_spec(args.config)
    out = out or check_out(Path(f"build/{spec.name}"))
    prep = prepare(spec, args.weights, args.calib, args.image)
    con = Console(width=max(Console().width, 110))
    ctx = {"prep": prep, "image": prep.pixels(), "args": args, "out": out}
    for section in SECTIONS:
        section(ctx, con)
    return 0


if __name__ == "__main__":
    sys.exit(main())
