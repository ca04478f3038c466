"""The README that ``gen`` writes into its output folder: what each file and folder is.

A pure function of the prepared model and the written paths; :mod:`edgevit_hw.flow` writes it.
One table row per written file (files two folders deep are grouped by their folder, e.g.
``hls/include/``), described by the first matching pattern of ``ENTRIES``; a file no pattern
knows is still listed, so the README never omits one.
"""

from __future__ import annotations

from fnmatch import fnmatch

ENTRIES = (  # (pattern, description), first match wins
    ("README.md", "this file"),
    ("spec.yaml", "the resolved spec: every field of the YAML, defaults filled in"),
    ("derived.json", "every width, depth, buffer size and tile count computed by "
     "`derive(spec)`: what the program, the HLS project and the RTL are built from"),
    ("model.safetensors", "the quantized model: integer weights, biases, requantization "
     "constants and float scales; its metadata names the spec, the weights' source and the "
     "calibration set (no pickle)"),
    ("vectors/input.npy", "the frame of the golden vectors (uint8 [C, H, W])"),
    ("vectors/golden_*.npy", "the golden model's output tokens for that frame and the task "
     "in the file name (int64 [N, D]): what every backend must equal bit for bit"),
    ("program/dram.bin", "the DRAM image: header, instructions, weights, biases, constants"),
    ("program/program.txt", "the instruction listing of one frame"),
    ("program/perf.txt", "the cycle model: cycles per instruction and per layer, totals"),
    ("program/*", "the compiled program of one frame"),
    ("hls/include/", "the hand-written HLS kernels (reviewed C++, copied from the package)"),
    ("hls/evh_params.h", "HLS parameters: types, sizes and contract constants from derive"),
    ("hls/evh_offsets.h", "HLS offsets into the DRAM image"),
    ("hls/evh_top.*", "the HLS top function (the synthesis top)"),
    ("hls/evh_tb.cpp", "the C-simulation testbench (reads the DRAM image and a frame)"),
    ("hls/run_hls.tcl", "Vitis HLS script: C-simulation, synthesis, co-simulation, IP export"),
    ("hls/tb_input.bin", "the testbench frame as AXI4-Stream beats (pixels, tlast)"),
    ("hls/tb_golden.bin", "the golden tokens of the testbench frame, task 0 (int64)"),
    ("hls/*.bin", "the DRAM image the testbench loads (program, weights, constants)"),
    ("hls/*", "part of the Vitis HLS project"),
    ("rtl/evh_top.v", "Verilog of the accelerator top (module `evh_top`: `aclk`, `aresetn`, "
     "`s_axis_*` pixels, `m_axis_*` tokens, `m_axi_*` DRAM reads, `s_axil_*` registers, "
     "`interrupt`), exported from `edgevit_hw.rtl.top`"),
    ("rtl/evh_*.v", "Verilog of one RTL unit (top module of the same name; ports `clk`, `rst`, "
     "`<stream>__{payload,valid,ready}`), exported from `edgevit_hw.rtl`"),
    ("rtl/regmap.json", "the control registers (AXI4-Lite): offsets, access, fields"),
    ("rtl/regmap.h", "the control registers as C #defines (EVH_REG_*, field masks)"),
    ("rtl/regmap.py", "the control registers as Python constants"),
    ("rtl/lint.txt", "Verilator `--lint-only -Wall` report of `evh_top.v`: command, version, "
     "result, and every waiver with its justification"),
    ("rtl/lint.vlt", "the Verilator lint waivers the report used, each justified"),
    ("rtl/*_bd.tcl", "Vivado script (never run here: no Vivado) building the board's block "
     "design around `evh_top.v`: PS, AXI DMA on the streams, the DRAM master on an HP port, "
     "the PL clock, interrupts; then the bitstream and the PYNQ `.hwh`"),
)  # fmt: skip
UNKNOWN = "generated (see the edgevit_hw README)"


def describe(path: str) -> str:
    """The description of a written path (or grouped folder) from ``ENTRIES``."""
    return next((d for p, d in ENTRIES if fnmatch(path, p)), UNKNOWN)


def _rows(paths: list[str]) -> dict[str, int]:
    """Row name -> files in it: a file, or ``a/b/`` for everything under a second folder."""
    rows: dict[str, int] = {}
    for p in ["README.md", *paths]:
        parts = p.split("/")
        key = "/".join(parts[:2]) + "/" if len(parts) > 2 else p
        rows[key] = rows.get(key, 0) + 1
    return rows


def readme_text(prep, paths: list[str]) -> str:
    """Markdown: where the model came from, then one table row per file or grouped folder."""
    spec, qm = prep.spec, prep.qmodel
    weights = "SYNTHETIC (seeded, not trained)" if qm.synthetic else qm.source
    lines = [
        f"<!-- generated from spec {spec.spec_hash()[:16]} ({spec.name}), do not edit -->",
        f"# {spec.name}: generated accelerator",
        "",
        f"Written by `python -m edgevit_hw.gen` from spec `{spec.name}` "
        f"(hash `{spec.spec_hash()[:16]}`).",
        "",
        f"- weights: {weights}",
        f"- calibration set: {qm.calibration or 'not recorded'}",
        f"- golden-vector frame: {prep.frame_name}",
        "",
        "| path | what it is |",
        "|---|---|",
    ]
    for row, count in _rows(paths).items():
        many = f" ({count} files)" if row.endswith("/") else ""
        lines.append(f"| `{row}` | {describe(row)}{many} |")
    return "\n".join(lines) + "\n"
