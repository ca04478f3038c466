"""HLS emitter: the Vitis HLS C++ project of the accelerator, written to ``DIR/hls/``.

Hand-written kernels live in ``hls/include`` (copied into the project); this module builds the
context of the logic-free Jinja2 templates in ``hls/templates`` from :class:`HwParams` and the
quantized model, and lays out the weight image (``weights.bin``) exactly as the top function
reads it through its m_axi port.

Weight image layout: a sequence of segments, each starting on a beat boundary
(``weight_port_bits`` per beat, little-endian). Weight segments hold an [O, K] matrix row-major,
``weights_per_beat`` two's-complement lanes of ``weight_bits`` per beat. Word segments hold
32-bit lanes; 64-bit values take two words (low, high); a requantization constant is one word
``m | s << 24``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams, derive_arith, ubits
from edgevit_hw.core.qmodel import QuantModel

HLS_DATA = resources.files("edgevit_hw.hls")  # the kernels (include/) and templates ship here
NONE = 0xFFFFFFFF
TEMPLATES = {
    "evh_params.h": "evh_params.h.j2",
    "evh_offsets.h": "evh_offsets.h.j2",
    "evh_top.h": "evh_top.h.j2",
    "evh_top.cpp": "evh_top.cpp.j2",
    "evh_tb.cpp": "evh_tb.cpp.j2",
    "run_hls.tcl": "run_hls.tcl.j2",
}


@dataclass
class WeightImage:
    """The weight blob and the beat offset of every segment, by name."""

    port_bits: int
    weight_bits: int
    chunks: list[bytes] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    beats: int = 0

    @property
    def beat_bytes(self) -> int:
        return self.port_bits // 8

    def _add(self, name: str, data: bytes) -> int:
        pad = -len(data) % self.beat_bytes
        self.offsets[name] = self.beats
        self.sizes[name] = len(data) + pad
        self.chunks.append(data + bytes(pad))
        self.beats += (len(data) + pad) // self.beat_bytes
        return self.offsets[name]

    def weights(self, name: str, w: np.ndarray) -> int:
        """[O, K] signed weights, packed ``port_bits // weight_bits`` lanes per beat."""
        wb = self.weight_bits
        per = self.port_bits // wb
        flat = np.asarray(w, np.int64).reshape(-1)
        flat = np.concatenate([flat, np.zeros(-len(flat) % per, np.int64)])
        lanes = (flat & ((1 << wb) - 1)).astype(np.uint64).reshape(-1, per)
        bits = (lanes[..., None] >> np.arange(wb, dtype=np.uint64)) & np.uint64(1)
        bits = bits.reshape(len(lanes), per * wb).astype(np.uint8)
        bits = np.pad(bits, ((0, 0), (0, self.port_bits - per * wb)))
        return self._add(name, np.packbits(bits, axis=1, bitorder="little").tobytes())

    def words32(self, name: str, v) -> int:
        arr = np.asarray(v, np.int64).reshape(-1)
        assert np.all(arr >= -(1 << 31)) and np.all(arr < (1 << 32)), name
        return self._add(name, (arr & 0xFFFFFFFF).astype("<u4").tobytes())

    def words64(self, name: str, v) -> int:
        return self._add(name, np.asarray(v, np.int64).reshape(-1).astype("<i8").tobytes())

    def requant(self, name: str, m, s) -> int:
        m, s = np.asarray(m, np.int64).reshape(-1), np.asarray(s, np.int64).reshape(-1)
        assert np.all(m < (1 << 24)) and np.all((s >= 0) & (s < 256)), name
        return self.words32(name, m | (s << 24))

    def blob(self) -> bytes:
        return b"".join(self.chunks)


def _lin(img: WeightImage, name: str, w, b, m, s, bias64: bool) -> tuple[int, int, int]:
    wo = img.weights(f"{name}.w", w)
    bo = NONE if b is None else (img.words64 if bias64 else img.words32)(f"{name}.b", b)
    qo = NONE if m is None else img.requant(f"{name}.q", m, s)
    return wo, bo, qo


def _norm(img: WeightImage, qm: QuantModel, p: str) -> tuple[int, int, int, int]:
    return (
        img.words32(f"{p}.g", qm[f"{p}.g"]),
        img.words64(f"{p}.b", qm[f"{p}.b"]),
        img.words64(f"{p}.eps", qm[f"{p}.eps"]),
        img.requant(f"{p}.q", qm[f"{p}.m"], qm[f"{p}.s"]),
    )


def _block_lin(img: WeightImage, qm: QuantModel, prefix: str, b64: bool) -> tuple:
    return _lin(img, prefix, *(qm[f"{prefix}.{k}"] for k in "wbms"), b64)


def _moe_segments(img: WeightImage, qm: QuantModel, p: str, b64: bool) -> dict:
    """Routers (one per task, no bias), experts' fc1 and fc2 (fc2 without requant: all experts
    share the gate-weighted sum's scale), and the sum's requant constants."""
    a = derive_arith(qm.spec)
    gates = [
        _lin(img, f"{p}.gate.{t}", qm[f"{p}.gate.{t}.w"], None, qm[f"{p}.gate.{t}.m"],
             qm[f"{p}.gate.{t}.s"], b64)
        for t in range(a.tasks)
    ]  # fmt: skip
    efc1 = [
        _lin(img, f"{p}.efc1.{e}", *(qm[f"{p}.efc1.{k}"][e] for k in "wbms"), b64)
        for e in range(a.experts)
    ]
    efc2 = [
        _lin(img, f"{p}.efc2.{e}", qm[f"{p}.efc2.w"][e], qm[f"{p}.efc2.b"][e], None, None, b64)
        for e in range(a.experts)
    ]
    moe_q = img.requant(f"{p}.moe", qm[f"{p}.moe.m"], qm[f"{p}.moe.s"])
    return {"gate": gates, "efc1": efc1, "efc2": efc2, "moe_q": moe_q}


def build_image(qm: QuantModel, hw: HwParams) -> tuple[WeightImage, dict]:
    """Lay out every parameter; returns the image and the offsets context of the header."""
    spec, a = qm.spec, hw.arith
    img = WeightImage(hw.weight_port_bits, a.weight_bits)
    b64 = a.bias_bits > 32
    none3, none4 = (NONE,) * 3, (NONE,) * 4
    off: dict = {"patch": _block_lin(img, qm, "patch", b64)}
    off["cls"] = img.words32("cls", qm["cls"]) if spec.model.class_token else NONE
    off["pos"] = img.words32("pos", qm["pos"])
    keys = ("ln1", "qkv", "logit_q", "proj", "ln2", "fc1", "gelu_q", "fc2")
    per: dict[str, list] = {k: [] for k in keys + ("gate", "efc1", "efc2", "moe_q")}
    dense_moe = {"gate": [none3] * a.tasks, "efc1": [none3] * a.experts,
                 "efc2": [none3] * a.experts, "moe_q": NONE}  # fmt: skip
    for i in range(spec.model.depth):
        p, moe = f"blocks.{i}", spec.is_moe(i)
        per["ln1"].append(_norm(img, qm, f"{p}.ln1"))
        per["qkv"].append(_block_lin(img, qm, f"{p}.qkv", b64))
        per["logit_q"].append(img.requant(f"{p}.logit", qm[f"{p}.logit.m"], qm[f"{p}.logit.s"]))
        per["proj"].append(_block_lin(img, qm, f"{p}.proj", b64))
        per["ln2"].append(_norm(img, qm, f"{p}.ln2"))
        per["gelu_q"].append(img.requant(f"{p}.gelu", qm[f"{p}.gelu.m"], qm[f"{p}.gelu.s"]))
        for k, v in (_moe_segments(img, qm, p, b64) if moe else dense_moe).items():
            per[k].append(v)
        per["fc1"].append(none3 if moe else _block_lin(img, qm, f"{p}.fc1", b64))
        per["fc2"].append(none3 if moe else _block_lin(img, qm, f"{p}.fc2", b64))
    off.update(per)
    off["norm"] = _norm(img, qm, "norm") if spec.model.final_norm else none4
    return img, off


def _c(v) -> str:
    """C initializer text of an offset, a tuple (struct) or a list (array)."""
    if isinstance(v, list):
        return ", ".join("{" + _c(x) + "}" if isinstance(x, list) else _c(x) for x in v)
    if isinstance(v, tuple):
        return "{" + ", ".join(f"{int(x)}u" for x in v) + "}"
    return f"{int(v)}u"


def _native(bits: int, signed: bool = True) -> str:
    for n in (8, 16, 32, 64):
        if bits <= n:
            return f"{'' if signed else 'u'}int{n}_t"
    raise ValueError(f"no native integer type holds {bits} bits")


def type_widths(hw: HwParams) -> dict[str, tuple[int, bool]]:
    """Every buffer/accumulator type of the kernels: (bits, signed), from derive's widths."""
    a = hw.arith
    return {
        "pix_t": (8, False),
        "xin_t": (max(a.pixel_bits, a.act_bits), True),
        "act_t": (a.act_bits, True),
        "res_t": (a.res_bits, True),
        "w_t": (a.weight_bits, True),
        "acc_t": (max(v["acc_bits"] for v in a.linears.values()), True),
        "score_t": (a.score_bits, True),
        "logit_t": (a.logit_bits, True),
        "moe_t": (a.moe_acc_bits, True),
        "gw_t": (a.gate_weight_bits + 2, True),  # w <= 2^W
        "idx_t": (ubits(max(a.tokens, a.experts)), False),
    }


def _typedefs(hw: HwParams, ap: bool) -> str:
    lines = []
    for name, (bits, signed) in type_widths(hw).items():
        t = f"ap_{'' if signed else 'u'}int<{bits}>" if ap else _native(bits, signed)
        lines.append(f"    typedef {t} {name};")
    return "\n".join(lines)


def params_context(qm: QuantModel, hw: HwParams) -> dict:
    spec, a = qm.spec, hw.arith
    lin = a.linears
    moe = bool(spec.moe.blocks)
    b = "true", "false"
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
        "hid": max(a.mlp_hidden, a.expert_hidden if moe else 0),
        "experts": a.experts,
        "top_k": a.top_k,
        "moe_n": a.tokens if moe else 1,
        "tasks": a.tasks,
        "depth": spec.model.depth,
        "max_k": max(v["k"] for v in lin.values()),
        "class_token": b[not spec.model.class_token],
        "final_norm": b[not spec.model.final_norm],
        "is_moe": ", ".join(b[not spec.is_moe(i)] for i in range(spec.model.depth)),
        "mac_rows": hw.mac_rows,
        "mac_cols": hw.mac_cols,
        "attn_rows": hw.attn_rows,
        "port_bits": hw.weight_port_bits,
        "weight_bits": a.weight_bits,
        "weights_per_beat": hw.weights_per_beat,
        "bias64": b[a.bias_bits <= 32],
        "act_bits": a.act_bits,
        "res_bits": a.res_bits,
        "logit_bits": a.logit_bits,
        "gelu_in_bits": a.gelu_in_bits,
        "gelu_frac_bits": a.gelu_frac_bits,
        "exp_frac_bits": a.exp_frac_bits,
        "exp_out_bits": a.exp_out_bits,
        "gate_weight_bits": a.gate_weight_bits,
        "ln_norm_frac_bits": a.ln_norm_frac_bits,
        "tok_bits": 8 * -(-a.out_bits // 8),
        "ap_types": _typedefs(hw, True),
        "native_types": _typedefs(hw, False),
        "exp2_table": ", ".join(str(int(x)) for x in A.exp2_table(a.exp_frac_bits, a.exp_out_bits)),
        "gelu_table": ", ".join(str(int(x)) for x in A.gelu_table(a.gelu_frac_bits)),
    }


def offsets_context(img: WeightImage, off: dict, hw: HwParams, depth: int) -> dict:
    ctx = {k: _c(v) for k, v in off.items()}
    ctx.update(
        total_beats=img.beats,
        total_bytes=img.beats * img.beat_bytes,
        port_bits=hw.weight_port_bits,
        depth=depth,
        tasks=hw.arith.tasks,
        experts=hw.arith.experts,
    )
    return ctx


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


def frame_beats(pixels: np.ndarray, patch: int) -> np.ndarray:
    """AXI4-Stream input of one frame: patch-major pixels (golden.patchify order), as uint8
    [beats, 2] (pixel, tlast) with tlast on the last beat."""
    from edgevit_hw.core.golden import patchify

    flat = patchify(np.asarray(pixels), patch).reshape(-1).astype(np.uint8)
    last = np.zeros_like(flat)
    last[-1] = 1
    return np.stack([flat, last], axis=1)


def render_project(qm: QuantModel, hw: HwParams) -> tuple[dict[str, str], WeightImage]:
    """Text of every generated source file (by file name) and the weight image."""
    from edgevit_hw.flow import header

    img, off = build_image(qm, hw)
    spec = qm.spec
    common = {"header": header(spec, "//")[3:], "port_bits": hw.weight_port_bits}
    ctx = {
        "evh_params.h": {**common, **params_context(qm, hw)},
        "evh_offsets.h": {**common, **offsets_context(img, off, hw, spec.model.depth)},
        "evh_top.h": common,
        "evh_top.cpp": {**common, "total_beats": img.beats},
        "evh_tb.cpp": common,
        "run_hls.tcl": {
            "header": header(spec, "#")[2:],
            "spec_name": spec.name,
            "part": hw.part,
            "clock_period_ns": f"{1000.0 / hw.clock_mhz:.3f}",
        },
    }
    return {name: render(name, c) for name, c in ctx.items()}, img


def emit_hls(qm: QuantModel, hw: HwParams, out: Path, pixels: np.ndarray | None = None,
             golden: np.ndarray | None = None) -> list[Path]:  # fmt: skip
    """Write the project into ``out`` (normally ``DIR/hls``): sources, kernels, weight image,
    and, when given, a testbench input frame and its golden tokens (task 0)."""
    out.mkdir(parents=True, exist_ok=True)
    sources, img = render_project(qm, hw)
    files = []
    for name, text in sources.items():
        (out / name).write_text(text)
        files.append(out / name)
    inc = out / "include"
    inc.mkdir(exist_ok=True)
    for name, data in kernel_sources().items():
        (inc / name).write_bytes(data)
        files.append(inc / name)
    (out / "weights.bin").write_bytes(img.blob())
    files.append(out / "weights.bin")
    if pixels is not None:
        (out / "tb_input.bin").write_bytes(frame_beats(pixels, qm.spec.model.patch).tobytes())
        files.append(out / "tb_input.bin")
    if golden is not None:
        (out / "tb_golden.bin").write_bytes(np.asarray(golden, "<i8").tobytes())
        files.append(out / "tb_golden.bin")
    return files


def write_project(prep, out: Path) -> list[Path]:
    """``DIR/hls`` for ``gen``: the project plus the evaluation image and its golden tokens
    (task 0) for the testbench of ``run_hls.tcl``."""
    from edgevit_hw.core.golden import golden_forward
    from edgevit_hw.ml.images import EVAL_IMAGE, load_image

    img = load_image(EVAL_IMAGE, prep.spec)
    gold = golden_forward(prep.qmodel, img, 0).tokens
    return emit_hls(prep.qmodel, prep.hw, Path(out) / "hls", img, gold)


def hls_buffers(hw: HwParams) -> list[tuple[str, int, int]]:
    """Every on-chip array of the generated design (``evh::Act`` in evh_frame.h) as
    ``(name, words, bits)``, bits being the exact derived width (what synthesis allocates with
    ``EVH_AP_TYPES``); the first group mirrors ``HwParams.buffers``, the rest are HLS-only."""
    a, t = hw.arith, type_widths(hw)
    n, d, e, k = a.tokens, a.embed_dim, a.experts, a.top_k
    moe = any(b.name == "moe_acc" and b.words for b in hw.buffers)
    rows = n if moe else 1
    hid = max(a.mlp_hidden, a.expert_hidden if moe else 0)
    lin = a.linears
    max_k = max(v["k"] for v in lin.values())
    return [
        ("residual", n * d, t["res_t"][0]),
        ("ln_out", n * d, t["act_t"][0]),
        ("qkv", n * 3 * d, t["act_t"][0]),
        ("attn_out", n * d, t["act_t"][0]),
        ("hidden", n * hid, t["act_t"][0]),
        ("moe_acc", rows * d, t["moe_t"][0]),
        ("expert_queues (token)", e * rows, t["idx_t"][0]),
        ("expert_queues (slot)", e * rows, ubits(max(k - 1, 1))),
        ("gate_weights", rows * k, a.gate_weight_word_bits),
        ("weight_tiles_x2", 2 * max_k * hw.mac_cols, a.weight_bits),
        ("pixels (HLS only)", a.patches * a.patch_dim, 8),
        ("gate_logits (HLS only)", rows * e, a.logit_bits),
        ("gate_idx (HLS only)", rows * k, ubits(max(e - 1, 1))),
    ]
