"""HLS emitter: the Vitis HLS C++ project of the accelerator, as ``{relative path: content}``.

Hand-written kernels live in ``hls/include`` (shipped as package data and copied into the
project); this module builds the context of the logic-free Jinja2 templates in
``hls/templates`` from :class:`HwParams` and the compiled :class:`Program`. The DRAM image
(``dram.bin``: program, weights and constants) is the program's image, byte for byte: the
frame controller fetches and decodes the instructions at run time with the field layout of
``HwParams.isa`` (emitted into ``evh_params.h``), so no layer offset is compiled in;
``evh_offsets.h`` holds the image's size and the debug dumps' names (from the labels).
Nothing here walks the layers, derives a datapath width or lays out memory (the one width
measured here, ``GELU_TABLE_BITS``, is the storage width of an emitted contract table): only
the flow writes files.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import SHIFT_BITS, HwParams
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import Program
from edgevit_hw.program.perf import hls_schedule
from edgevit_hw.program.streams import frame_beats

HLS_DATA = resources.files("edgevit_hw.hls")  # the kernels (include/) and templates ship here
IMAGE = "dram.bin"
TEMPLATES = {
    "evh_params.h": "evh_params.h.j2",
    "evh_offsets.h": "evh_offsets.h.j2",
    "evh_top.h": "evh_top.h.j2",
    "evh_top.cpp": "evh_top.cpp.j2",
    "evh_tb.cpp": "evh_tb.cpp.j2",
    "run_hls.tcl": "run_hls.tcl.j2",
}
# C++ element type of each on-chip buffer (derive's ``Buffers``; the test of the allocation
# checks each type's width against the buffer's bits)
BUFFER_TYPES = {
    "pixels": "pix_t", "residual": "res_t", "ln_out": "act_t", "qkv": "act_t",
    "attn_out": "act_t", "hidden": "act_t", "moe_acc": "moe_t", "gate_logits": "logit_t",
    "gate_idx": "eidx_t", "gate_weights": "gw_t", "queue_tokens": "tok_idx_t",
    "queue_slots": "slot_t", "queue_counts": "cnt_t", "weight_tiles_x2": "w_t",
}  # fmt: skip
# Buffers a single process of the compute unit's dataflow region owns and declares (the MAC
# array's weight double buffer, evh_mac.h mac): the struct holds their type, not the memory,
# so no region argument is read and written in the middle of the region.
PROCESS_BUFFERS = ("weight_tiles_x2",)
# Derived widths (ArithParams fields) the kernels type intermediates with, as NAME_BITS.
KERNEL_WIDTHS = (
    "mult_bits", "bias_bits", "acc_bits", "score_bits", "softmax_sum_bits", "softmax_acc_bits",
    "gelu_out_bits", "gate_sum_bits", "moe_acc_bits", "moe_prod_bits", "ln_sum_bits",
    "ln_d_bits", "ln_var_bits", "ln_dr_bits", "ln_n_bits", "ln_gamma_bits", "ln_acc_bits",
    "ln_prod_bits",
)  # fmt: skip


# Buffer dumped after an instruction (C-simulation debug builds), by label kind: the golden
# trace name (``{p}`` = the label's block prefix) and the buffer; ``before`` kinds dump after
# the instruction preceding the labelled one.
DUMP_GATE_IDX, DUMP_GATE_WEIGHTS = 100, 101
_DUMPS_AFTER = {
    "embed.patch": [("embed", isa.Buf.RESIDUAL)],
    "ln1": [("{p}.ln1", isa.Buf.LN_OUT)],
    "qkv": [("{p}.qkv", isa.Buf.QKV)],
    "proj": [("{p}.res1", isa.Buf.RESIDUAL)],
    "ln2": [("{p}.ln2", isa.Buf.LN_OUT)],
    "fc1": [("{p}.hidden", isa.Buf.HIDDEN)],
    "fc2": [("{p}.res2", isa.Buf.RESIDUAL)],
    "gate": [("{p}.gate_logits", isa.Buf.GATE_LOGITS)],
    "route": [("{p}.gate_idx", DUMP_GATE_IDX), ("{p}.gate_w", DUMP_GATE_WEIGHTS)],
    "moe": [("{p}.res2", isa.Buf.RESIDUAL)],
    "norm": [("norm", isa.Buf.LN_OUT)],
}
_DUMPS_BEFORE = {
    "proj": [("{p}.attn", isa.Buf.ATTN_OUT)],
    "moe": [("{p}.moe_acc", isa.Buf.MOE_ACC)],
}


def program_dumps(program: Program) -> list[tuple[int, int, str]]:
    """(instruction index, buffer, golden trace name) of every debug dump, from the labels."""
    out = []
    for j, label in enumerate(program.labels):
        parts = label.split(".")
        kind, prefix = (
            (parts[2], ".".join(parts[:2])) if label.startswith("blocks.") else (label, "")
        )
        for at, table in ((j - 1, _DUMPS_BEFORE), (j, _DUMPS_AFTER)):
            out += [(at, int(buf), name.format(p=prefix)) for name, buf in table.get(kind, [])]
    return sorted(out, key=lambda d: d[0])


def type_widths(hw: HwParams) -> dict[str, tuple[int, bool]]:
    """Every element type of the kernels as (bits, signed), each a field of derive."""
    a = hw.arith
    return {
        "mult_t": (a.mult_bits, False),
        "shift_t": (SHIFT_BITS, False),
        "bias_t": (a.bias_bits, True),
        "gamma_t": (a.ln_gamma_bits, True),
        "pix_t": (hw.buffers.pixels.bits, False),
        "xin_t": (a.x_bits, True),
        "act_t": (a.act_bits, True),
        "res_t": (a.res_bits, True),
        "w_t": (a.weight_bits, True),
        "acc_t": (a.acc_bits, True),
        "score_t": (a.score_bits, True),
        "logit_t": (a.logit_bits, True),
        "moe_t": (a.moe_acc_bits, True),
        "gw_t": (a.gate_weight_word_bits, False),
        "tok_idx_t": (a.token_index_bits, False),
        "eidx_t": (a.expert_index_bits, False),
        "slot_t": (a.slot_bits, False),
        "cnt_t": (a.count_bits, False),
    }


def _typedefs(hw: HwParams) -> str:
    """``evh::int_t<N>`` / ``uint_t<N>`` (evh_types.h: ap_int of exactly N bits in synthesis)."""
    return "\n".join(f"    typedef evh::{'' if signed else 'u'}int_t<{bits}> {name};"
                     for name, (bits, signed) in type_widths(hw).items())  # fmt: skip


def _widths(hw: HwParams) -> str:
    """The derived widths the kernels type their intermediates with, as ``NAME_BITS``."""
    a = hw.arith
    rows = [(f.upper(), getattr(a, f)) for f in KERNEL_WIDTHS]
    rows += [("SHIFT_BITS", SHIFT_BITS),
             ("GELU_TABLE_BITS", table_bits(A.gelu_table(a.gelu_frac_bits)))]  # fmt: skip
    return "\n".join(f"    static constexpr int {n} = {v};" for n, v in rows)


def table_bits(table) -> int:
    """Signed width of every entry of a table and every difference of consecutive entries
    (the GELU interpolation reads both)."""
    vals = [int(v) for v in table]
    diffs = [b - c for b, c in zip(vals[1:], vals, strict=False)]
    return max(abs(v) for v in vals + diffs).bit_length() + 1


def act_members(hw: HwParams) -> str:
    """The on-chip buffer struct, one entry per buffer of derive, in its order: a member, or
    for a buffer that one dataflow process owns (PROCESS_BUFFERS) the type it declares."""
    rows = []
    for b in hw.buffers.all():
        dims = "".join(f"[{n}]" for n in b.shape)
        if b.name in PROCESS_BUFFERS:
            rows.append(f"        typedef {BUFFER_TYPES[b.name]} {b.name}_t{dims};")
        else:
            rows.append(f"        {BUFFER_TYPES[b.name]} {b.name}{dims};")
    return "\n".join(rows)


def _enum(values) -> str:
    return "\n".join(f"    static constexpr int {e.__class__.__name__.upper()}_{e.name} = {int(e)};"
                     for e in values)  # fmt: skip


def _isa_fields(hw: HwParams) -> str:
    return "\n".join(f"    static constexpr int ISA_{f.name.upper()}_LO = {f.offset}, "
                     f"ISA_{f.name.upper()}_BITS = {f.bits};" for f in hw.isa.fields)  # fmt: skip


def params_context(program: Program) -> dict:
    hw = program.hw
    a, s = hw.arith, hw.streams
    b = "true", "false"
    used = program.labels
    return {
        "hash32": hw.hash32,
        "tokens": a.tokens,
        "patches": a.patches,
        "patch_dim": a.patch_dim,
        "embed_dim": a.embed_dim,
        "heads": a.heads,
        "head_dim": a.head_dim,
        "mlp_hidden": a.mlp_hidden,
        "expert_hidden": a.expert_hidden,
        "hid": a.hidden,
        "experts": a.experts,
        "top_k": a.top_k,
        "moe_n": a.moe_rows,
        "tasks": a.tasks,
        "depth": a.depth,
        "max_k": a.max_k,
        "class_token": b[program.by_label("embed.patch").row0 == 0],
        "final_norm": b["norm" not in used],
        "is_moe": ", ".join(b[f"blocks.{i}.moe" not in used] for i in range(a.depth)),
        "mac_rows": hw.mac_rows,
        "mac_cols": hw.mac_cols,
        "attn_rows": hw.attn_rows,
        "port_bits": s.port_bits,
        "weight_bits": a.weight_bits,
        "weights_per_beat": s.weights_per_beat,
        "slab_row_beats": s.slab_row_beats,
        "bias64": b[s.bias_word_bits != 64],
        "act_bits": a.act_bits,
        "res_bits": a.res_bits,
        "logit_bits": a.logit_bits,
        "gelu_in_bits": a.gelu_in_bits,
        "gelu_frac_bits": a.gelu_frac_bits,
        "exp_frac_bits": a.exp_frac_bits,
        "exp_out_bits": a.exp_out_bits,
        "gate_weight_bits": a.gate_weight_bits,
        "ln_norm_frac_bits": a.ln_norm_frac_bits,
        "tok_bits": s.token_bits,
        "pixels_per_beat": s.pixels_per_beat,
        "tokens_per_beat": s.tokens_per_beat,
        "types": _typedefs(hw),
        "widths": _widths(hw),
        "act_members": act_members(hw),
        "epi_enum": "\n".join(_enum(e) for e in (isa.Op, isa.Epi, isa.Buf, isa.Flag)),
        "insn_beats": hw.isa.insn_beats,
        "insn_bits": hw.isa.insn_bits,
        "head_count_lo": 32 * isa.HEADER.index("count"),
        "isa_fields": _isa_fields(hw),
        **hls_schedule(hw),
        "exp2_len": 1 << a.exp_frac_bits,
        "exp2_table": ", ".join(str(int(x)) for x in A.exp2_table(a.exp_frac_bits, a.exp_out_bits)),
        "gelu_len": len(A.gelu_table(a.gelu_frac_bits)),
        "gelu_table": ", ".join(str(int(x)) for x in A.gelu_table(a.gelu_frac_bits)),
        "gelu_step_log2": A.GELU_STEP_LOG2,
        "gelu_table_last": A.GELU_TABLE_LEN,
        "rsqrt_u_bits": A.RSQRT_U_BITS,
        "rsqrt_m_frac": A.RSQRT_M_FRAC,
        "rsqrt_m_bits": A.RSQRT_M_BITS,
    }


def offsets_context(program: Program) -> dict:
    dumps = program_dumps(program)
    return {
        "total_beats": program.image_beats,
        "total_bytes": len(program.image),
        "data_base": program.data_base,
        "count": len(program.insns),
        "port_bits": program.hw.streams.port_bits,
        "dump_gate_idx": DUMP_GATE_IDX,
        "dump_gate_weights": DUMP_GATE_WEIGHTS,
        "ndumps": len(dumps),
        "dumps": ",\n".join(f'        {{{j}, {b}, "{n}"}}' for j, b, n in dumps),
    }


def kernel_sources() -> dict[str, bytes]:
    """The hand-written kernels (``hls/include/*.h``) by file name, read from the package."""
    folder = HLS_DATA / "include"
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".h")}  # fmt: skip


def render(name: str, ctx: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("edgevit_hw.hls", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(TEMPLATES[name]).render(**ctx)


COSIM_MAX_CYCLES = 1_000_000  # the longest frame worth co-simulating in XSim (a policy)


def _cosim_line(program: Program) -> str:
    """RTL co-simulation of one frame when the cycle model puts it under
    ``COSIM_MAX_CYCLES`` (XSim is orders of magnitude slower than C-simulation); a larger spec
    (m3vit: ~5.6 M cycles) is checked bit for bit in C-simulation, and a small preset's
    project (micro_moe) is the one to co-simulate."""
    from edgevit_hw.program.perf import estimate

    cycles = estimate(program).total
    if cycles <= COSIM_MAX_CYCLES:
        return f'cosim_design -argv "{IMAGE} tb_input.bin tb_output.bin 0 1 tb_golden.bin"'
    return (
        f"# No co-simulation: a frame is ~{cycles:,} cycles (cycle model), too long for\n"
        "# XSim. This spec is checked bit for bit in C-simulation; co-simulate a small\n"
        "# preset's project instead (python -m edgevit_hw.gen --config micro_moe)."
    )


def render_sources(program: Program) -> dict[str, str]:
    """Text of every generated source file of the project, by file name."""
    from edgevit_hw.core.spec import generated_line

    hw = program.hw
    line = generated_line(hw.spec_name, hw.spec_hash, "//")[3:]
    common = {"header": line, "port_bits": hw.streams.port_bits, "image": IMAGE}
    ctx = {
        "evh_params.h": {**common, **params_context(program)},
        "evh_offsets.h": {**common, **offsets_context(program)},
        "evh_top.h": common,
        "evh_top.cpp": {**common, "total_beats": program.image_beats},
        "evh_tb.cpp": common,
        "run_hls.tcl": {
            **common,
            "cosim": _cosim_line(program),
            "header": generated_line(hw.spec_name, hw.spec_hash, "#")[2:],
            "spec_name": hw.spec_name,
            "part": hw.part,
            "clock_period_ns": f"{1000.0 / hw.clock_mhz:.3f}",
        },
    }
    return {name: render(name, c) for name, c in ctx.items()}


def emit_hls(program: Program, qm: QuantModel, pixels: np.ndarray | None = None,
             golden: np.ndarray | None = None) -> dict[str, str | bytes]:  # fmt: skip
    """The project as ``{path relative to DIR/hls: content}``: sources, kernels, the DRAM
    image, and when given a testbench input frame and its golden tokens (task 0)."""
    files: dict[str, str | bytes] = dict(render_sources(program))
    files.update({f"include/{name}": data for name, data in kernel_sources().items()})
    files[IMAGE] = program.image
    if pixels is not None:
        files["tb_input.bin"] = frame_beats(pixels, program.hw).tobytes()
    if golden is not None:
        files["tb_golden.bin"] = np.asarray(golden, "<i8").tobytes()
    return files
