"""``make sim MODEL=<preset>`` or ``python -m edgevit_hw.sim --config <preset> [--weights W]
[--calib DIR|NPZ] [--image IMG]``: run the model on a real photograph, print a short report.

Sections: model and weights (synthetic weights are labelled), the derived accelerator budget,
the golden model per task (time, output checksum) and its fidelity against the float
reference (cosine similarity, SQNR per block), the HLS C-simulation compared bit for bit
with the golden model, and the RTL top simulated by Verilator (a C++ bench, no Python per
cycle) frame by frame: bit-exactness, cycles per frame, per layer and per unit, simulation
speed (``WAVES=1`` also dumps an FST waveform into ``OUT/rtl_sim``). Each section is one
function in ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
        ctx.setdefault("queue_counts", {})[t] = list(interp.queue_counts)
        rep = estimate(prep.program, interp.queue_counts)
        table.add_row(task, "BIT-EXACT" if same else "MISMATCH", f"{rep.total:,}",
                      f"{rep.ms():.2f}", f"{rep.mac_busy_fraction:.1%}",
                      f"{rep.memory_floor:,} cycles")  # fmt: skip
    con.print(table)


def section_rtl(ctx: dict, con: Console) -> None:
    """The RTL top under Verilator (the C++ bench of :mod:`edgevit_hw.sim.fullframe`, no
    Python per cycle): the report's image on every task, one single-frame run per task (run in
    parallel, one per core), bit for bit against the golden model; cycles per frame, per layer
    and per kind of instruction next to the cycle model (with the routing the interpreter
    measured), the per-unit counters, milliseconds at the preset clock and the simulation
    speed. A mismatch names the first differing token and the instruction where the RTL
    leaves the interpreter."""
    from edgevit_hw.sim import fullframe as ff
    from edgevit_hw.sim.fullframe_trace import check_frames

    prep, img = ctx["prep"], ctx["image"]
    tasks = list(range(len(prep.spec.tasks)))
    variant = "waves" if ff.waves_requested() else "fast"
    background = ctx.get("rtl_build")  # started by _report, built while the sections ran
    cached = background is None and ff.is_built(prep.hw, variant)
    if background is not None:
        with step(f"waiting for the background build of the {prep.spec.name} RTL bench"):
            background.wait()
    ff.build(prep.hw, variant)
    if variant == "waves" and not any(os.environ.get(f"EVH_WAVES_{e}") for e in ("FROM", "TO")):
        con.print("  WAVES=1: every cycle of every run goes to an FST (1 KB per cycle and a 10x "
                  "slower simulation on micro_moe, more on larger models); EVH_WAVES_FROM / "
                  "EVH_WAVES_TO (cycles) choose a window")  # fmt: skip
    t0 = time.perf_counter()
    runs = ff.run_parallel(prep, [([img], [t]) for t in tasks], out=ctx["out"] / "rtl_sim")
    wall = time.perf_counter() - t0
    frames = [r.frames[0] for r in runs]
    gold = [_golden(ctx, t) for t in tasks]
    models = [_perf(ctx, t) for t in tasks]
    con.print(_rtl_frames_table(prep, frames, gold, models))
    con.print(_rtl_layer_table(prep, frames, models, ff.layer_key, "per layer"))
    con.print(_rtl_layer_table(prep, frames, models, ff.kind_key, "per kind of instruction"))
    con.print(_rtl_units_table(prep, runs))
    _rtl_notes(ctx, con, runs, cached, wall, variant)
    for t, run in enumerate(runs):
        for e in check_frames(prep, run, [gold[t]], [img]):
            con.print(f"  [red]MISMATCH[/] {e}")


def _rtl_notes(ctx: dict, con: Console, runs, cached: bool, wall: float, variant: str) -> None:
    from edgevit_hw.sim import fullframe as ff

    prep = ctx["prep"]
    secs = ff.build_seconds(prep.hw, variant)
    how = (f"built in {secs[0]:.0f} s ({secs[1]:.0f} s verilating)"
           if secs and not cached else "cached build")  # fmt: skip
    cycles = sum(r.cycles for r in runs)
    speeds = ", ".join(f"{r.cycles_per_s:,.0f}" for r in runs)
    cpu = ", ".join(f"{r.cycles_per_cpu_s:,.0f}" for r in runs)
    con.print(f"  simulation speed: {speeds} cycles/s per run ({cpu} per processor second); "
              f"{cycles:,} cycles in {wall:.1f} s "
              f"wall for the {len(runs)} parallel runs (Verilator {' '.join(ff.VL_FLAGS)}, "
              f"g++ {ff.CXX_OPT}, {how}); DRAM read latency {ff.LATENCY} cycles, one "
              f"{prep.hw.streams.port_bits}-bit beat per cycle after it; runs in "
              f"{ctx['out'] / 'rtl_sim'}")  # fmt: skip
    for r in runs:
        if r.waves:
            con.print(f"  waveform (FST): {r.waves}")
        for w in r.warnings:
            con.print(f"  [red]warning:[/] {w}")


def _golden(ctx: dict, t: int) -> np.ndarray:
    gold = ctx.get("golden", {}).get(t)
    return golden_forward(ctx["prep"].qmodel, ctx["image"], t).tokens if gold is None else gold


def _perf(ctx: dict, t: int):
    """The cycle model of task ``t`` with the expert queue lengths the interpreter measured."""
    from edgevit_hw.core.golden import patchify
    from edgevit_hw.program.interpreter import Interpreter
    from edgevit_hw.program.perf import estimate

    prep = ctx["prep"]
    counts = ctx.get("queue_counts", {}).get(t)
    if counts is None:
        interp = Interpreter(prep.program.image, prep.hw)
        interp.run(patchify(ctx["image"], prep.spec.model.patch), t)
        counts = interp.queue_counts
    return estimate(prep.program, counts)


def _rtl_frames_table(prep, frames, gold, models) -> Table:
    mhz = prep.hw.clock_mhz
    table = Table(title="RTL simulation of the top (Verilator, C++ bench) vs golden model")
    for col in ("task", "result", "cycles/frame (FRAME_CYCLES)", f"ms @ {mhz:g} MHz",
                "model cycles", "RTL/model", "pixels in", "program"):  # fmt: skip
        table.add_column(col)
    for f, want, rep in zip(frames, gold, models, strict=True):
        same = np.array_equal(f.tokens, want)
        table.add_row(
            prep.spec.tasks[f.task], "BIT-EXACT" if same else "[red]MISMATCH[/]",
            f"{f.frame_cycles:,}", f"{f.frame_cycles / (mhz * 1e3):.2f}", f"{rep.total:,}",
            f"{f.frame_cycles / rep.total:.2f}", f"{f.frame_in:,}", f"{f.program_cycles:,}",
        )  # fmt: skip
    return table


def _rtl_layer_table(prep, frames, models, key, what: str) -> Table:
    from edgevit_hw.sim.fullframe import group_cycles

    table = Table(title=f"RTL cycles {what} (from dbg_pc) vs the cycle model")
    table.add_column("group")
    rows: dict[str, list[str]] = {}
    for f, rep in zip(frames, models, strict=True):
        task = prep.spec.tasks[f.task]
        for col in (f"model {task}", f"RTL {task}", "RTL/model"):
            table.add_column(col, justify="right")
        got = {"frame_in": f.wait, **group_cycles(prep.program.labels, f.insn_cycles, key),
               "end": f.tail}  # fmt: skip
        labels, cycles = [c.label for c in rep.costs], [c.cycles for c in rep.costs]
        want = {"frame_in": rep.frame_in, **group_cycles(labels, cycles, key)}
        for name in dict.fromkeys([*got, *want]):
            g, w = got.get(name), want.get(name)
            cells = ["" if w is None else f"{w:,}", "" if g is None else f"{g:,}",
                     f"{g / w:.2f}" if g is not None and w else ""]  # fmt: skip
            rows.setdefault(name, []).extend(cells)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table


def _rtl_units_table(prep, runs) -> Table:
    from edgevit_hw.program.regmap import COUNTED_UNITS

    table = Table(title="RTL counters per frame (busy / stall cycles, share of the run's CYCLES)")
    table.add_column("unit")
    for r in runs:
        c, task = r.counters, prep.spec.tasks[r.frames[0].task]
        ok = c["FRAMES_OK"] == 1 and c["STATUS"] == 0
        note = "" if ok else f" [red](FRAMES_OK {c['FRAMES_OK']}, STATUS 0x{c['STATUS']:x})[/]"
        table.add_column(f"busy {task}{note}", justify="right")
        table.add_column(f"stall {task}", justify="right")
    for u in COUNTED_UNITS:
        cells = []
        for r in runs:
            c = r.counters
            for kind in ("BUSY", "STALL"):
                v = c[f"{u.upper()}_{kind}"]
                cells.append(f"{v:,} ({v / c['CYCLES']:.0%})")
        table.add_row(u, *cells)
    return table


SECTIONS = [section_model, section_golden, section_program, section_csim, section_rtl]


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
    if section_rtl in SECTIONS:  # compile the RTL bench while the other sections run
        from edgevit_hw.sim.fullframe import start_build, waves_requested

        ctx["rtl_build"] = start_build(prep.hw, "waves" if waves_requested() else "fast")
    try:
        for section in SECTIONS:
            section(ctx, con)
    finally:
        background = ctx.get("rtl_build")
        if background is not None and background.poll() is None:
            background.terminate()  # an earlier section failed: stop compiling
    return 0


if __name__ == "__main__":
    sys.exit(main())
