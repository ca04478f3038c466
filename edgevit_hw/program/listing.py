"""Text views of a program: the instruction listing and the cycle model's tables, and the
``DIR/program`` emitter of the flow."""

from __future__ import annotations

from dataclasses import fields

from edgevit_hw.core.spec import generated_line
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import Program
from edgevit_hw.program.perf import PerfReport, estimate


def _field_text(insn: isa.Insn) -> str:
    parts = []
    for f in fields(insn):
        v = getattr(insn, f.name)
        if f.name in insn.ADDRS:
            parts.append(f"{f.name}=-" if v == isa.NONE else f"{f.name}@{v}")
        elif hasattr(v, "name") and v.name is not None:
            parts.append(f"{f.name}={v.name}")
        else:
            parts.append(f"{f.name}={int(v)}")
    return " ".join(parts)


def listing(program: Program) -> str:
    """One line per instruction: index, label, opcode and fields (addresses in beats)."""
    hw = program.hw
    head = [
        f"program of {hw.spec_name}: {len(program.insns)} instructions of {hw.isa.insn_bits}"
        f" bits, data from beat {program.data_base}, image {program.image_beats} beats of"
        f" {hw.streams.port_bits} bits ({len(program.image)} bytes)",
    ]
    rows = [
        f"{j:5d}  {lab:28s} {ins.OP.name:12s} {_field_text(ins)}"
        for j, (lab, ins) in enumerate(zip(program.labels, program.insns, strict=True))
    ]
    return "\n".join(head + rows) + "\n"


def perf_text(report: PerfReport) -> str:
    """Per-layer and per-unit cycles, totals, MAC-array busy fraction and memory floor."""
    hw = report.hw
    lines = [f"cycle model of {hw.spec_name} ({hw.mac_rows}x{hw.mac_cols} MAC array, P ="
             f" {hw.attn_rows}, {hw.streams.port_bits}-bit weight port, {hw.clock_mhz:g} MHz)",
             "", f"{'layer':14s} {'cycles':>12s}"]  # fmt: skip
    lines += [f"{k:14s} {v:12,d}" for k, v in report.by_layer().items()]
    lines += ["", f"{'unit':14s} {'cycles':>12s}"]
    lines += [f"{k:14s} {v:12,d}" for k, v in report.by_unit().items()]
    lines += [
        "",
        f"total          {report.total:12,d} cycles = {report.ms():.2f} ms at {hw.clock_mhz:g} MHz",
        f"MAC array busy {report.mac_busy_fraction:12.1%} of the frame"
        f" (useful MACs {report.mac_utilization:.1%} of R*C*cycles)",
        f"memory floor   {report.memory_floor:12,d} cycles (DRAM beats read per frame)",
    ]
    return "\n".join(lines) + "\n"


def emit_program(program: Program) -> dict[str, str | bytes]:
    """``DIR/program``: the DRAM image, the listing and the cycle model (balanced routing)."""
    hw = program.hw
    line = generated_line(hw.spec_name, hw.spec_hash, "#") + "\n"
    return {
        "dram.bin": program.image,
        "program.txt": line + listing(program),
        "perf.txt": line + perf_text(estimate(program)),
    }
