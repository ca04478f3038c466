"""``derive(spec)``: the one place where a width, depth, tile count or buffer size is computed.

Two layers: :class:`ArithParams` depends only on the model, MoE and quantization sections (the
golden model uses nothing else, so the hardware section cannot change an output bit);
:class:`HwParams` adds the schedule (MAC array, attention rows, weight port) and sizes every
buffer. Both serialize to JSON for the emitters and the benches.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.spec import Spec

PIXEL_BITS = 9  # unsigned 8-bit pixels as signed 9-bit integers


def sbits(bound: int) -> int:
    """Signed width holding every integer in ``[-bound, bound]``."""
    return int(bound).bit_length() + 1


def ubits(bound: int) -> int:
    """Unsigned width holding every integer in ``[0, bound]``."""
    return max(int(bound).bit_length(), 1)


def dot_bound(k: int, x_bits: int, w_bits: int) -> int:
    """Largest ``|sum_k x*w|`` for signed operands of the given widths."""
    return k * (1 << (x_bits - 1)) * (1 << (w_bits - 1))


def bias_bound(k: int, x_bits: int, w_bits: int, bias_bits: int) -> int:
    """Biases are saturated by the quantizer to ``min(2^(bias_bits-1) - 1, dot_bound)``: a bias
    larger than any product sum could reach carries no information the requantizer keeps."""
    return min((1 << (bias_bits - 1)) - 1, dot_bound(k, x_bits, w_bits))


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
    patch_dim: int
    act_bits: int
    weight_bits: int
    res_bits: int
    bias_bits: int
    mult_bits: int
    pixel_bits: int
    out_bits: int
    linears: dict
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
    ln_sum_bits: int
    ln_d_bits: int
    ln_var_bits: int
    ln_dr_bits: int
    ln_norm_frac_bits: int
    ln_n_bits: int
    ln_gamma_bits: int
    ln_acc_bits: int
    ln_prod_bits: int


def _linear(name: str, k: int, out: int, x_bits: int, q) -> Linear:
    bmax = bias_bound(k, x_bits, q.weight_bits, q.bias_bits)
    acc = sbits(dot_bound(k, x_bits, q.weight_bits) + bmax)
    return Linear(name, k, out, x_bits, bmax, acc, acc + q.mult_bits)


def _linears(spec: Spec) -> dict[str, Linear]:
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
    return {name: _linear(name, k, o, xb, q) for name, k, o, xb in rows}


def derive_arith(spec: Spec) -> ArithParams:
    """Widths of the integer datapath; raises if any exceeds what int64 golden math holds."""
    m, q, e = spec.model, spec.quant, spec.moe
    n, dim = m.tokens, m.embed_dim
    one = 1 << q.exp_out_bits
    act = 1 << (q.act_bits - 1)
    lin = _linears(spec)
    ln_d = 2 * dim * (1 << (q.residual_bits - 1))
    ln_n = (1 << q.ln_norm_frac_bits) + 1
    ln_acc = sbits(ln_n * (1 << (q.ln_gamma_bits - 1)) + (1 << (q.bias_bits - 1)))
    acc2 = lin["expert_fc2"].acc_bits
    moe_acc = sbits(e.top_k * (1 << q.gate_weight_bits) * (1 << (acc2 - 1)))
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
        patch_dim=m.patch_dim,
        act_bits=q.act_bits,
        weight_bits=q.weight_bits,
        res_bits=q.residual_bits,
        bias_bits=q.bias_bits,
        mult_bits=q.mult_bits,
        pixel_bits=PIXEL_BITS,
        out_bits=q.act_bits if m.final_norm else q.residual_bits,
        linears={k: asdict(v) for k, v in lin.items()},
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
        [v["prod_bits"] for v in p.linears.values()]
        + [p.moe_prod_bits, p.ln_prod_bits, p.ln_dr_bits]
    )
    if widest > 63 or p.ln_var_bits > 63:
        raise ValueError(
            f"quant widths need {max(widest, p.ln_var_bits)}-bit intermediates; at most 63 are"
            " supported (lower quant.bias_bits, mult_bits or residual_bits)"
        )


@dataclass(frozen=True)
class Buffer:
    name: str
    words: int
    bits: int

    @property
    def bytes(self) -> int:
        return self.words * math.ceil(self.bits / 8)


@dataclass(frozen=True)
class HwParams:
    """Arithmetic widths plus the schedule and every on-chip buffer of the accelerator."""

    spec_name: str
    spec_hash: str
    hash32: int
    arith: ArithParams
    mac_rows: int
    mac_cols: int
    attn_rows: int
    weight_port_bits: int
    weights_per_beat: int
    clock_mhz: float
    part: str
    token_tiles: int
    attn_row_blocks: int
    out_tiles: dict
    weight_bytes: dict
    buffers: tuple
    dram_bytes_dense: int
    dram_bytes_per_expert: int
    dram_bytes_worst: int

    @property
    def onchip_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["onchip_bytes"] = self.onchip_bytes
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _layer_weight_bytes(a: ArithParams, q) -> dict[str, int]:
    """Bytes of one layer of each kind as streamed: weights, int32 biases, and requant
    constants (M and s as one 32-bit word per channel)."""
    wb = q.weight_bits / 8
    out = {}
    for name, lin in a.linears.items():
        out[name] = math.ceil(lin["k"] * lin["out"] * wb) + 4 * lin["out"] + 4 * lin["out"]
    return out


def _buffers(spec: Spec, a: ArithParams) -> tuple[Buffer, ...]:
    n, d = a.tokens, a.embed_dim
    hidden = max(a.mlp_hidden, a.expert_hidden if spec.moe.blocks else 0)
    lin = a.linears
    wmax = max(lin[k]["k"] * spec.hardware.mac_cols for k in lin)
    return (
        Buffer("residual", n * d, a.res_bits),
        Buffer("ln_out", n * d, a.act_bits),
        Buffer("qkv", n * 3 * d, a.act_bits),
        Buffer("attn_out", n * d, a.act_bits),
        Buffer("hidden", n * hidden, a.act_bits),
        Buffer("moe_acc", n * d if spec.moe.blocks else 0, a.moe_acc_bits),
        Buffer("expert_queues", a.experts * n if spec.moe.blocks else 0, ubits(n)),
        Buffer("gate_weights", n * a.top_k if spec.moe.blocks else 0, a.gate_weight_word_bits),
        Buffer("weight_tiles_x2", 2 * wmax, a.weight_bits),
    )


def derive(spec: Spec) -> HwParams:
    """Every derived number of the accelerator for ``spec``."""
    a = derive_arith(spec)
    hw, q = spec.hardware, spec.quant
    lw = _layer_weight_bytes(a, q)
    dense_blocks = spec.model.depth - len(spec.moe.blocks)
    moe_blocks = len(spec.moe.blocks)
    dense = (
        lw["patch"]
        + spec.model.depth * (lw["qkv"] + lw["proj"])
        + dense_blocks * (lw["fc1"] + lw["fc2"])
        + moe_blocks * lw["gate"] * a.tasks
    )
    per_expert = lw["expert_fc1"] + lw["expert_fc2"]
    return HwParams(
        spec_name=spec.name,
        spec_hash=spec.spec_hash(),
        hash32=spec.hash32,
        arith=a,
        mac_rows=hw.mac_rows,
        mac_cols=hw.mac_cols,
        attn_rows=hw.attn_rows,
        weight_port_bits=hw.weight_port_bits,
        weights_per_beat=hw.weight_port_bits // q.weight_bits,
        clock_mhz=hw.clock_mhz,
        part=hw.part,
        token_tiles=math.ceil(a.tokens / hw.mac_rows),
        attn_row_blocks=math.ceil(a.tokens / hw.attn_rows),
        out_tiles={k: math.ceil(v["out"] / hw.mac_cols) for k, v in a.linears.items()},
        weight_bytes=lw,
        buffers=_buffers(spec, a),
        dram_bytes_dense=dense,
        dram_bytes_per_expert=per_expert,
        dram_bytes_worst=dense + moe_blocks * min(a.experts, a.tokens * a.top_k) * per_expert,
    )
