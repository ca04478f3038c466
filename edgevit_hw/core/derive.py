"""``derive(spec)``: the one place where a width, depth, size or field layout is computed.

Two layers: :class:`ArithParams` depends only on the model, MoE and quantization sections (the
golden model uses nothing else, so the hardware section cannot change an output bit);
:class:`HwParams` adds the schedule (MAC array, attention rows, weight port), every on-chip
buffer the hardware allocates, every stream word and the binary layout of the program's
instructions. Every record is a frozen dataclass; ``HwParams.to_dict`` / :func:`hw_from_dict`
round-trip them through JSON for the emitters and the benches. Both functions are cached per
spec, so a flow derives once whatever asks.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, fields, is_dataclass
from functools import cache

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.spec import Spec

PIXEL_BITS = 9  # unsigned 8-bit pixels as signed 9-bit MAC operands
PIXEL_STORE_BITS = 8  # a pixel as stored and streamed
SHIFT_BITS = 6  # requant's contract 1 <= s <= 62: every shift amount fits 6 bits
WORD_BITS = 32  # parameter words of the DRAM image (biases, gamma, requant constants)
ADDR_BITS = 32  # DRAM addresses of the program, in beats of the weight port
ENUM_BITS = 4  # opcode, epilogue, buffer id and flag fields of an instruction
# Widest AXI4-Stream beat (s_axis pixels, m_axis tokens): 64 bits, a width the AXI DMA's stream
# side takes and Verilator keeps in one scalar; a frame's 98 k pixels at one per beat would cost
# m3vit 2.5% of its cycles.
STREAM_MAX_BITS = 64


def sbits(bound: int) -> int:
    """Signed width holding every integer in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def ubits(bound: int) -> int:
    """Unsigned width holding every integer in ``[0, bound]``."""
    return max(int(bound).bit_length(), 1)


def index_bits(n: int) -> int:
    """Unsigned width of an index in ``0 .. n-1``."""
    return max(1, (n - 1).bit_length())


def dot_bound(k: int, x_bits: int, w_bits: int) -> int:
    """Largest ``|sum_k x*w|`` for signed operands of the given widths."""
    return k * (1 << (x_bits - 1)) * (1 << (w_bits - 1))


def bias_bound(k: int, x_bits: int, w_bits: int, bias_bits: int) -> int:
    """Biases are saturated by the quantizer to ``min(2^(bias_bits-1) - 1, dot_bound)``: a bias
    larger than any product sum could reach carries no information the requantizer keeps."""
    return min((1 << (bias_bits - 1)) - 1, dot_bound(k, x_bits, w_bits))


# ------------------------------------------------------------------------------ linears ----


@dataclass(frozen=True)
class Linear:
    """One matrix-product kind: ``out`` channels, reduction ``k``, its exact accumulator."""

    name: str
    k: int
    out: int
    x_bits: int
    bias_max: int
    acc_bits: int
    prod_bits: int  # acc * M before the requantization shift


@dataclass(frozen=True)
class Linears:
    """Every matrix-product kind, by name. A kind the model never runs (the experts of a dense
    model, the MLP of an all-MoE one) is still derived; ``used`` names the kinds that run, and
    the hardware's shared widths are maxima over those only."""

    patch: Linear
    qkv: Linear
    proj: Linear
    fc1: Linear
    fc2: Linear
    gate: Linear
    expert_fc1: Linear
    expert_fc2: Linear
    used: tuple[str, ...]

    def __getitem__(self, name: str) -> Linear:
        return getattr(self, name)

    def all(self) -> tuple[Linear, ...]:
        return tuple(self[f.name] for f in fields(self) if f.name != "used")

    def running(self) -> tuple[Linear, ...]:
        return tuple(self[n] for n in self.used)


def _linear(name: str, k: int, out: int, x_bits: int, q) -> Linear:
    bmax = bias_bound(k, x_bits, q.weight_bits, q.bias_bits)
    acc = sbits(dot_bound(k, x_bits, q.weight_bits) + bmax)
    return Linear(name, k, out, x_bits, bmax, acc, acc + q.mult_bits)


def _linears(spec: Spec) -> Linears:
    m, q, e = spec.model, spec.quant, spec.moe
    a = q.act_bits
    rows = [
        ("patch", m.patch_dim, m.embed_dim, PIXEL_BITS),
        ("qkv", m.embed_dim, 3 * m.embed_dim, a),
        ("proj", m.embed_dim, m.embed_dim, a),
        ("fc1", m.embed_dim, m.mlp_hidden, a),
        ("fc2", m.mlp_hidden, m.embed_dim, a),
        ("gate", m.embed_dim, e.experts, a),
        ("expert_fc1", m.embed_dim, e.expert_hidden, a),
        ("expert_fc2", e.expert_hidden, m.embed_dim, a),
    ]
    used = ["patch", "qkv", "proj"]
    used += ["fc1", "fc2"] if len(e.blocks) < m.depth else []
    used += ["gate", "expert_fc1", "expert_fc2"] if e.blocks else []
    kinds = {name: _linear(name, k, o, xb, q) for name, k, o, xb in rows}
    return Linears(**kinds, used=tuple(used))


# ------------------------------------------------------------------------- arithmetic ----


@dataclass(frozen=True)
class ArithParams:
    """Every datapath width, from the model and quantization sections only."""

    tokens: int
    patches: int
    embed_dim: int
    heads: int
    head_dim: int
    mlp_hidden: int
    expert_hidden: int
    experts: int
    top_k: int
    tasks: int
    depth: int
    patch: int  # patch side (pixels)
    patch_dim: int
    hidden: int  # columns of the hidden buffer: widest hidden layer that runs
    moe_rows: int  # rows of the MoE buffers: tokens, or 1 for a dense model (no empty arrays)
    max_k: int  # widest reduction of a matrix product that runs
    act_bits: int
    weight_bits: int
    res_bits: int
    bias_bits: int
    mult_bits: int
    pixel_bits: int
    out_bits: int
    linears: Linears
    acc_bits: int  # the MAC array's accumulator: widest of the products that run
    x_bits: int  # the MAC array's activation operand: widest of the products that run
    score_bits: int
    logit_bits: int
    exp_frac_bits: int
    exp_out_bits: int
    softmax_sum_bits: int
    softmax_acc_bits: int
    gelu_frac_bits: int
    gelu_in_bits: int
    gelu_out_bits: int
    gate_weight_bits: int
    gate_weight_word_bits: int  # unsigned word holding 0..2^W (2^W means 1.0)
    gate_sum_bits: int
    moe_acc_bits: int
    moe_prod_bits: int
    epi_out_bits: int  # widest value leaving an epilogue (accumulators, MoE sums, logits, ...)
    token_index_bits: int  # a token index 0..tokens-1
    expert_index_bits: int  # an expert index 0..experts-1
    slot_bits: int  # a rank 0..top_k-1 in a token's top-k
    count_bits: int  # a queue length 0..tokens
    ln_sum_bits: int
    ln_d_bits: int
    ln_var_bits: int
    ln_dr_bits: int
    ln_norm_frac_bits: int
    ln_n_bits: int
    ln_gamma_bits: int
    ln_acc_bits: int
    ln_prod_bits: int


@cache
def derive_arith(spec: Spec) -> ArithParams:
    """Widths of the integer datapath; raises if any exceeds what int64 golden math holds."""
    m, q, e = spec.model, spec.quant, spec.moe
    n, dim = m.tokens, m.embed_dim
    one = 1 << q.exp_out_bits
    act = 1 << (q.act_bits - 1)
    lin = _linears(spec)
    run = lin.running()
    ln_d = 2 * dim * (1 << (q.residual_bits - 1))
    ln_n = (1 << q.ln_norm_frac_bits) + 1
    ln_acc = sbits(ln_n * (1 << (q.ln_gamma_bits - 1)) + (1 << (q.bias_bits - 1)))
    moe_acc = sbits(e.top_k * (1 << q.gate_weight_bits) * (1 << (lin.expert_fc2.acc_bits - 1)))
    acc = max(v.acc_bits for v in run)
    hidden = [lin[k].out for k in ("fc1", "expert_fc1") if k in lin.used]
    p = ArithParams(
        tokens=n,
        patches=m.patches,
        embed_dim=dim,
        heads=m.heads,
        head_dim=m.head_dim,
        mlp_hidden=m.mlp_hidden,
        expert_hidden=e.expert_hidden,
        experts=e.experts,
        top_k=e.top_k,
        tasks=len(spec.tasks),
        depth=m.depth,
        patch=m.patch,
        patch_dim=m.patch_dim,
        hidden=max(hidden),
        moe_rows=n if e.blocks else 1,
        max_k=max(v.k for v in run),
        act_bits=q.act_bits,
        weight_bits=q.weight_bits,
        res_bits=q.residual_bits,
        bias_bits=q.bias_bits,
        mult_bits=q.mult_bits,
        pixel_bits=PIXEL_BITS,
        out_bits=q.act_bits if m.final_norm else q.residual_bits,
        linears=lin,
        acc_bits=acc,
        x_bits=max(v.x_bits for v in run),
        score_bits=sbits(m.head_dim * act * act),
        logit_bits=q.logit_bits,
        exp_frac_bits=q.exp_frac_bits,
        exp_out_bits=q.exp_out_bits,
        softmax_sum_bits=ubits(n * one),
        softmax_acc_bits=sbits(n * one * act),
        gelu_frac_bits=q.gelu_frac_bits,
        gelu_in_bits=q.gelu_in_bits,
        gelu_out_bits=q.gelu_in_bits,
        gate_weight_bits=q.gate_weight_bits,
        gate_weight_word_bits=ubits(1 << q.gate_weight_bits),
        gate_sum_bits=ubits(e.experts * one),
        moe_acc_bits=moe_acc,
        moe_prod_bits=moe_acc + q.mult_bits,
        epi_out_bits=max(acc, moe_acc, q.gelu_in_bits, q.logit_bits, q.residual_bits),
        token_index_bits=index_bits(n),
        expert_index_bits=index_bits(e.experts),
        slot_bits=index_bits(e.top_k),
        count_bits=ubits(n),
        ln_sum_bits=sbits(dim * (1 << (q.residual_bits - 1))),
        ln_d_bits=sbits(ln_d),
        ln_var_bits=ubits(2 * dim * ln_d * ln_d),  # sum of d^2 plus eps_q <= that sum's bound
        ln_dr_bits=sbits(ln_d) + A.RSQRT_M_BITS,
        ln_norm_frac_bits=q.ln_norm_frac_bits,
        ln_n_bits=sbits(ln_n),
        ln_gamma_bits=q.ln_gamma_bits,
        ln_acc_bits=ln_acc,
        ln_prod_bits=ln_acc + q.mult_bits,
    )
    _check_int64(p)
    return p


def _check_int64(p: ArithParams) -> None:
    """The golden model computes in int64: every product before a shift must fit."""
    widest = max(
        [v.prod_bits for v in p.linears.all()] + [p.moe_prod_bits, p.ln_prod_bits, p.ln_dr_bits]
    )
    if widest > 63 or p.ln_var_bits > 63:
        raise ValueError(
            f"quant widths need {max(widest, p.ln_var_bits)}-bit intermediates; at most 63 are"
            " supported (lower quant.bias_bits, mult_bits or residual_bits)"
        )


# ---------------------------------------------------------------------------- buffers ----


@dataclass(frozen=True)
class Buffer:
    """One on-chip memory: an array of ``shape`` entries of ``bits`` (stored in whole bytes)."""

    name: str
    shape: tuple[int, ...]
    bits: int
    signed: bool

    @property
    def words(self) -> int:
        return math.prod(self.shape)

    @property
    def bytes(self) -> int:
        return self.words * math.ceil(self.bits / 8)


@dataclass(frozen=True)
class Buffers:
    """The complete list of on-chip memories of the accelerator, in both backends. Activation
    buffers are [rows][columns] row-major; the expert queues are [experts][moe_rows]."""

    pixels: Buffer  # one frame of pixels, patch-major ([patches][patch_dim])
    residual: Buffer
    ln_out: Buffer
    qkv: Buffer
    attn_out: Buffer
    hidden: Buffer
    moe_acc: Buffer
    gate_logits: Buffer
    gate_idx: Buffer
    gate_weights: Buffer
    queue_tokens: Buffer
    queue_slots: Buffer
    queue_counts: Buffer
    weight_tiles_x2: Buffer  # two [max_k][C] weight tiles (double buffer)

    def all(self) -> tuple[Buffer, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def total_bytes(self) -> int:
        return sum(b.bytes for b in self.all())


def _buffers(a: ArithParams, cols: int) -> Buffers:
    n, d, e, k, r = a.tokens, a.embed_dim, a.experts, a.top_k, a.moe_rows
    rows = {  # name: (shape, bits, signed)
        "pixels": ((a.patches, a.patch_dim), PIXEL_STORE_BITS, False),
        "residual": ((n, d), a.res_bits, True),
        "ln_out": ((n, d), a.act_bits, True),
        "qkv": ((n, 3 * d), a.act_bits, True),
        "attn_out": ((n, d), a.act_bits, True),
        "hidden": ((n, a.hidden), a.act_bits, True),
        "moe_acc": ((r, d), a.moe_acc_bits, True),
        "gate_logits": ((r, e), a.logit_bits, True),
        "gate_idx": ((r, k), a.expert_index_bits, False),
        "gate_weights": ((r, k), a.gate_weight_word_bits, False),
        "queue_tokens": ((e, r), a.token_index_bits, False),
        "queue_slots": ((e, r), a.slot_bits, False),
        "queue_counts": ((e,), a.count_bits, False),
        "weight_tiles_x2": ((2, a.max_k, cols), a.weight_bits, True),
    }
    return Buffers(**{name: Buffer(name, *row) for name, row in rows.items()})


# ---------------------------------------------------------------------------- streams ----


@dataclass(frozen=True)
class Streams:
    """Data widths of the accelerator's ports (AXI4-Stream in/out, AXI4 read master)."""

    pixel_bits: int  # one unsigned pixel on s_axis
    pixels_per_beat: int  # pixels per s_axis beat, lane j at bits 8j (the frame's byte order)
    s_axis_bits: int  # s_axis tdata: pixels_per_beat pixels
    token_bits: int  # one output element on m_axis: out_bits rounded up to bytes
    tokens_per_beat: int  # output elements per m_axis beat, lane j at bits token_bits * j
    m_axis_bits: int  # m_axis tdata: tokens_per_beat elements
    port_bits: int  # m_axi: program, weights and constants
    beat_bytes: int  # bytes of one m_axi beat (DRAM addresses count beats)
    weights_per_beat: int  # weight lanes per m_axi beat
    words_per_beat: int  # 32-bit parameter words per m_axi beat
    slab_row_beats: int  # beats of one k-row of a C-column weight slab (C lanes, padded)
    bias_word_bits: int  # a bias in the DRAM image: one 32-bit word, or two when wider
    act_lanes: int  # elements per word of an on-chip activation row in the RTL: a multiple of
    # mac_rows, mac_cols and head_dim (so a tile row, an operand segment and a head's q/k/v
    # vector never straddle words) and at least `experts` (a token's gate logits in one word)


# ------------------------------------------------------------------ instruction format ----


@dataclass(frozen=True)
class IsaField:
    """One field of an instruction word: ``bits`` wide at bit ``offset`` (LSB first)."""

    name: str
    bits: int
    offset: int


@dataclass(frozen=True)
class IsaFormat:
    """Binary layout of one program instruction (see :mod:`edgevit_hw.program.isa` for the
    meaning of each field per opcode). An instruction fills ``insn_beats`` whole beats."""

    fields: tuple[IsaField, ...]
    insn_bits: int
    insn_beats: int
    insn_bytes: int
    addr_bits: int

    def field(self, name: str) -> IsaField:
        return next(f for f in self.fields if f.name == name)


ISA_FIELD_NAMES = (
    "op", "epi", "src", "dst", "flags", "k", "out", "rows", "row0", "index", "a0", "a1",
    "a2", "a3", "stride",
)  # fmt: skip


def _isa(a: ArithParams, port_bits: int) -> IsaFormat:
    lin = a.linears.all()
    dim = ubits(max([3 * a.embed_dim] + [v.k for v in lin] + [v.out for v in lin]))
    rows = ubits(max(a.tokens, a.patches))
    index = ubits(max(a.experts, a.heads, a.tasks))
    widths = dict.fromkeys(("op", "epi", "src", "dst", "flags"), ENUM_BITS)
    widths.update(k=dim, out=dim, rows=rows, row0=rows, index=index)
    widths.update(dict.fromkeys(("a0", "a1", "a2", "a3", "stride"), ADDR_BITS))
    out, offset = [], 0
    for name in ISA_FIELD_NAMES:
        out.append(IsaField(name, widths[name], offset))
        offset += widths[name]
    beats = math.ceil(offset / port_bits)
    return IsaFormat(tuple(out), beats * port_bits, beats, beats * port_bits // 8, ADDR_BITS)


# ------------------------------------------------------------------------- hardware ----


@dataclass(frozen=True)
class HwParams:
    """Arithmetic widths plus the schedule, buffers, ports and program format."""

    spec_name: str
    spec_hash: str
    hash32: int
    arith: ArithParams
    mac_rows: int
    mac_cols: int
    attn_rows: int
    clock_mhz: float
    part: str
    board: str
    token_tiles: int
    attn_row_blocks: int
    streams: Streams
    buffers: Buffers
    isa: IsaFormat

    @property
    def weight_port_bits(self) -> int:
        return self.streams.port_bits

    @property
    def weights_per_beat(self) -> int:
        return self.streams.weights_per_beat

    @property
    def onchip_bytes(self) -> int:
        return self.buffers.total_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["onchip_bytes"] = self.onchip_bytes
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _record(cls, data: dict):
    """A frozen record (nested records and tuples of them included) from its ``asdict``."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in fields(cls):
        hint, value = hints[f.name], data[f.name]
        if is_dataclass(hint):
            value = _record(hint, value)
        elif typing.get_origin(hint) is tuple:
            elem = typing.get_args(hint)[0]
            value = tuple(_record(elem, v) if is_dataclass(elem) else v for v in value)
        kw[f.name] = value
    return cls(**kw)


def hw_from_dict(data: dict) -> HwParams:
    """Inverse of :meth:`HwParams.to_dict` (extra keys such as ``onchip_bytes`` are ignored)."""
    return _record(HwParams, data)


def hw_from_json(text: str) -> HwParams:
    return hw_from_dict(json.loads(text))


def _act_lanes(a: ArithParams, rows: int, cols: int) -> int:
    base = math.lcm(rows, cols, a.head_dim)
    return base * math.ceil(a.experts / base)


@cache
def derive(spec: Spec) -> HwParams:
    """Every derived number of the accelerator for ``spec``."""
    a = derive_arith(spec)
    hw, q = spec.hardware, spec.quant
    port = hw.weight_port_bits
    lanes = _act_lanes(a, hw.mac_rows, hw.mac_cols)
    token_bits = 8 * math.ceil(a.out_bits / 8)
    # Elements per stream beat: as many as fit STREAM_MAX_BITS, dividing a patch (a token) and
    # an activation word, so a beat never straddles a buffer row or word.
    per_pixel = math.gcd(STREAM_MAX_BITS // PIXEL_STORE_BITS, a.patch_dim, lanes)
    per_token = math.gcd(STREAM_MAX_BITS // token_bits, a.embed_dim, lanes)
    streams = Streams(
        pixel_bits=PIXEL_STORE_BITS,
        pixels_per_beat=per_pixel,
        s_axis_bits=PIXEL_STORE_BITS * per_pixel,
        token_bits=token_bits,
        tokens_per_beat=per_token,
        m_axis_bits=token_bits * per_token,
        port_bits=port,
        beat_bytes=port // 8,
        weights_per_beat=port // q.weight_bits,
        words_per_beat=port // WORD_BITS,
        slab_row_beats=math.ceil(hw.mac_cols / (port // q.weight_bits)),
        bias_word_bits=WORD_BITS if q.bias_bits <= WORD_BITS else 2 * WORD_BITS,
        act_lanes=lanes,
    )
    return HwParams(
        spec_name=spec.name,
        spec_hash=spec.spec_hash(),
        hash32=spec.hash32,
        arith=a,
        mac_rows=hw.mac_rows,
        mac_cols=hw.mac_cols,
        attn_rows=hw.attn_rows,
        clock_mhz=hw.clock_mhz,
        part=hw.part,
        board=hw.board,
        token_tiles=math.ceil(a.tokens / hw.mac_rows),
        attn_row_blocks=math.ceil(a.tokens / hw.attn_rows),
        streams=streams,
        buffers=_buffers(a, hw.mac_cols),
        isa=_isa(a, port),
    )
