"""The accelerator's control registers (AXI4-Lite slave ``s_axil_*``), defined once.

Exported with the hardware as JSON, a C header and a Python module (:func:`emit_regmap`), so no
driver, test bench or board script retypes an offset. Offsets 0x00..0x0c follow the Vitis HLS
control block a user expects (ap_start/ap_done/ap_idle/ap_ready/auto_restart, GIE, IER, ISR);
the rest are laid out in order below, 4 bytes apart, a 64-bit value as a ``_LO``/``_HI`` pair
(read LO first: it latches HI). It lives beside the program because both are the contract
between the hardware and the host: the RTL top decodes this table, the driver reads it (or its
exports on a board), and nothing below the backends imports upward to reach it.

Access kinds: ``rw`` read/write, ``ro`` read-only, ``w1c`` sticky bits cleared by writing 1,
``cor`` read-only counter cleared when the frame counters are reset (CTRL.clear).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.spec import generated_line

WORD = 4  # bytes per register


@dataclass(frozen=True)
class Field:
    name: str
    bit: int
    width: int
    doc: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.bit


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()


CTRL_FIELDS = (
    Field("ap_start", 0, 1, "write 1 to start a run of FRAMES frames (ignored while busy)"),
    Field("ap_done", 1, 1, "the last started run finished (cleared on read)"),
    Field("ap_idle", 2, 1, "no run in progress"),
    Field("ap_ready", 3, 1, "ready to accept ap_start"),
    Field("clear", 4, 1, "write 1: reset FRAMES_OK, FRAMES_DROPPED, STATUS and the counters"),
    Field("auto_restart", 7, 1, "start again when a run finishes"),
)
IRQ_FIELDS = (
    Field("done", 0, 1, "ap_done interrupt"),
    Field("ready", 1, 1, "ap_ready interrupt"),
)
STATUS_FIELDS = (
    Field("short_frame", 0, 1, "a frame ended (tlast) before its last pixel; dropped"),
    Field("long_frame", 1, 1, "a frame's last pixel came without tlast; dropped"),
    Field("bad_task", 2, 1, "TASK was not below the number of tasks; the frame was dropped"),
    Field("axi_read_error", 3, 1, "a DRAM read answered RRESP != OKAY; the frame was dropped"),
    Field("bad_program", 4, 1, "the program header is not this hardware's; the run stopped"),
)
# Units whose busy and stall cycles are counted (the cycle model's units, plus the weight port).
COUNTED_UNITS = ("compute", "attention", "layernorm", "router", "queues", "weight_port")


def _plan(hw: HwParams) -> list[tuple[str, str, str, tuple[Field, ...], int]]:
    """(name, access, doc, fields, words) in address order after the Vitis block."""
    rows = [
        ("DRAM_BASE", "rw", "byte address of the DRAM image (program, weights, constants)", (), 2),
        ("TASK", "rw", f"task id 0..{hw.arith.tasks - 1}: selects the router", (), 1),
        ("FRAMES", "rw", "frames per run (0: run until stopped)", (), 1),
        ("STATUS", "w1c", "sticky error bits", STATUS_FIELDS, 1),
        ("FRAMES_OK", "cor", "frames whose tokens were sent", (), 1),
        ("FRAMES_DROPPED", "cor", "frames dropped (a STATUS bit says why)", (), 1),
        ("SPEC_ID", "ro", f"first 32 bits of the spec hash (0x{hw.hash32:08x} here)", (), 1),
        ("CYCLES", "cor", "cycles since the last clear", (), 2),
        ("FRAME_CYCLES", "ro", "cycles of the last finished frame (first pixel to last token)",
         (), 2),
    ]  # fmt: skip
    for unit in COUNTED_UNITS:
        rows.append((f"{unit.upper()}_BUSY", "cor", f"cycles the {unit} unit worked", (), 2))
        rows.append((f"{unit.upper()}_STALL", "cor", f"cycles the {unit} unit waited", (), 2))
    return rows


def registers(hw: HwParams) -> tuple[Register, ...]:
    """Every register with its byte offset: the Vitis block, then :func:`_plan` in order."""
    regs = [
        Register("CTRL", 0x00, "rw", "control (Vitis HLS ap_ctrl_hs)", CTRL_FIELDS),
        Register("GIE", 0x04, "rw", "global interrupt enable", (Field("enable", 0, 1, ""),)),
        Register("IER", 0x08, "rw", "interrupt enable", IRQ_FIELDS),
        Register("ISR", 0x0C, "w1c", "interrupt status (write 1 to clear)", IRQ_FIELDS),
    ]
    offset = 0x10
    for name, access, doc, fields, words in _plan(hw):
        names = [name] if words == 1 else [f"{name}_LO", f"{name}_HI"]
        for part in names:
            regs.append(Register(part, offset, access, doc, fields))
            offset += WORD
    return tuple(regs)


def to_json(hw: HwParams) -> str:
    doc = {
        "_generated": generated_line(hw.spec_name, hw.spec_hash, "")[1:],
        "spec_id": hw.hash32,
        "word_bytes": WORD,
        "registers": [asdict(r) for r in registers(hw)],
    }
    return json.dumps(doc, indent=2) + "\n"


def to_c_header(hw: HwParams) -> str:
    lines = [generated_line(hw.spec_name, hw.spec_hash, "//"), "#pragma once", "",
             f"#define EVH_SPEC_ID_VALUE 0x{hw.hash32:08x}u"]  # fmt: skip
    for r in registers(hw):
        lines.append(f"#define EVH_REG_{r.name} 0x{r.offset:02x}u  /* {r.access}: {r.doc} */")
        for f in r.fields:
            base = f"EVH_{r.name}_{f.name.upper()}"
            lines.append(f"#define {base}_SHIFT {f.bit}u")
            lines.append(f"#define {base}_MASK 0x{f.mask:x}u")
    return "\n".join(lines) + "\n"


def to_python(hw: HwParams) -> str:
    lines = [generated_line(hw.spec_name, hw.spec_hash, "#"),
             '"""Register offsets and fields (edgevit_hw.program.regmap)."""', "",
             f"SPEC_ID_VALUE = 0x{hw.hash32:08x}  # what the SPEC_ID register reads"]  # fmt: skip
    for r in registers(hw):
        lines.append(f"{r.name} = 0x{r.offset:02x}  # {r.access}: {r.doc}")
        lines += [f"{r.name}_{f.name.upper()} = 0x{f.mask:x}" for f in r.fields]
    return "\n".join(lines) + "\n"


def emit_regmap(hw: HwParams) -> dict[str, str]:
    """``DIR/rtl`` files of the register map: ``{relative path: text}``."""
    return {"regmap.json": to_json(hw), "regmap.h": to_c_header(hw), "regmap.py": to_python(hw)}
