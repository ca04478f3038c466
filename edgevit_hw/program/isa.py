"""The instruction set of the accelerator: typed instructions and their binary encoding.

A program is the ordered list of instructions one frame executes. Every backend reads it: the
Python interpreter, the HLS offsets, the RTL sequencer, the perf model and the driver. Field
widths and offsets come from ``HwParams.isa`` (:func:`edgevit_hw.core.derive._isa`); one
instruction is one little-endian integer of ``isa.insn_bits`` bits filling ``isa.insn_beats``
beats of the weight port. Addresses (``a0`` .. ``a3``) are beat indices from the DRAM base
register; :data:`NONE` marks an absent segment.

Fields by opcode (unlisted fields are zero)::

    LOAD_RES     a0 = initial residual tokens [N][D] (32-bit words: position embedding with
                      the class token added to row 0)
    MATMUL       epi, src, dst, k, out, rows (rows of the job; with GATHER/SCATTER the queue
                 length of expert ``index`` replaces it at run time), row0 (first destination
                 row), index (expert), flags, a0 = weights [out][k], a1 = biases [out] (NONE:
                 no bias), a2 = requant words [out], a3 = second requant word (GELU output),
                 stride (beats added to a0 and a2 per task id when flags has TASK)
    LAYERNORM    src, dst, a0 = gamma [D] (32-bit), a1 = beta [D] (64-bit), a2 = requant word,
                 a3 = eps_q (64-bit)
    ATTENTION    index = head, row0, rows (query rows of the block, at most P),
                 a2 = the logit requant word; q, k, v from the QKV buffer, out to ATTN_OUT
    ROUTE        gate logits -> each token's top-k experts and gate weights
    QUEUES       per-expert token queues from the router's choices; clears the MoE sums
    MOE_COMBINE  a2 = requant words [D]; residual += requant(MoE sums)
    OUTPUT       src: the tokens streamed out (m_axis), row-major
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import ClassVar

from edgevit_hw.core.derive import HwParams

NONE = 0xFFFFFFFF
MAGIC = 0x50485645  # "EVHP", little-endian
VERSION = 1
HEADER = ("magic", "version", "count", "hash32", "data_base", "image_beats")


class Op(enum.IntEnum):
    LOAD_RES = 1
    MATMUL = 2
    LAYERNORM = 3
    ATTENTION = 4
    ROUTE = 5
    QUEUES = 6
    MOE_COMBINE = 7
    OUTPUT = 8


class Epi(enum.IntEnum):
    """Epilogue of a matrix job, the one enumeration of HLS and RTL (``acc`` = x.W + b)."""

    REQUANT_ACT = 0  # dst = requant(acc, m, s, act_bits)
    REQUANT_LOGIT = 1  # dst = requant(acc, m, s, logit_bits)
    GELU = 2  # dst = requant(gelu_q(requant(acc, m, s, gelu_in_bits)), m2, s2, act_bits)
    RESIDUAL = 3  # dst = residual_add(dst, acc, m, s, res_bits)
    MOE = 4  # dst[token] += gate_weight[token, slot] * acc   (exact, scattered)


class Buf(enum.IntEnum):
    """Activation buffers an instruction names (the fields of ``HwParams.buffers``)."""

    PIXELS = 0
    RESIDUAL = 1
    LN_OUT = 2
    QKV = 3
    ATTN_OUT = 4
    HIDDEN = 5
    MOE_ACC = 6
    GATE_LOGITS = 7

    @property
    def buffer_name(self) -> str:
        return self.name.lower()


class Flag(enum.IntFlag):
    GATHER = 1  # source rows are expert `index`'s queued tokens
    SCATTER = 2  # destination rows are expert `index`'s queued (token, slot) pairs
    TASK = 4  # a0 and a2 advance by `stride` beats per task id


@dataclass(frozen=True)
class Insn:
    """Base of the typed instructions; ``FIELDS`` maps attributes to encoded fields and
    ``ADDRS`` lists the attributes that are DRAM addresses."""

    OP: ClassVar[Op]
    FIELDS: ClassVar[dict[str, str]] = {}
    ADDRS: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class LoadResidual(Insn):
    init: int
    OP = Op.LOAD_RES
    FIELDS = {"init": "a0"}
    ADDRS = ("init",)


@dataclass(frozen=True)
class MatMul(Insn):
    epi: Epi
    src: Buf
    dst: Buf
    k: int
    out: int
    rows: int
    row0: int = 0
    expert: int = 0
    flags: Flag = Flag(0)
    w: int = NONE
    b: int = NONE
    q: int = NONE
    q2: int = NONE
    stride: int = 0
    OP = Op.MATMUL
    FIELDS = {
        "epi": "epi", "src": "src", "dst": "dst", "k": "k", "out": "out", "rows": "rows",
        "row0": "row0", "expert": "index", "flags": "flags", "w": "a0", "b": "a1", "q": "a2",
        "q2": "a3", "stride": "stride",
    }  # fmt: skip
    ADDRS = ("w", "b", "q", "q2")


@dataclass(frozen=True)
class LayerNorm(Insn):
    src: Buf
    dst: Buf
    g: int
    b: int
    q: int
    eps: int
    OP = Op.LAYERNORM
    FIELDS = {"src": "src", "dst": "dst", "g": "a0", "b": "a1", "q": "a2", "eps": "a3"}
    ADDRS = ("g", "b", "q", "eps")


@dataclass(frozen=True)
class Attention(Insn):
    head: int
    row0: int
    rows: int
    q: int
    OP = Op.ATTENTION
    FIELDS = {"head": "index", "row0": "row0", "rows": "rows", "q": "a2"}
    ADDRS = ("q",)


@dataclass(frozen=True)
class Route(Insn):
    OP = Op.ROUTE
    FIELDS = {}


@dataclass(frozen=True)
class Queues(Insn):
    OP = Op.QUEUES
    FIELDS = {}


@dataclass(frozen=True)
class MoeCombine(Insn):
    q: int
    OP = Op.MOE_COMBINE
    FIELDS = {"q": "a2"}
    ADDRS = ("q",)


@dataclass(frozen=True)
class Output(Insn):
    src: Buf
    OP = Op.OUTPUT
    FIELDS = {"src": "src"}


KINDS = {cls.OP: cls for cls in (LoadResidual, MatMul, LayerNorm, Attention, Route, Queues,
                                 MoeCombine, Output)}  # fmt: skip
ENUMS = {"epi": Epi, "src": Buf, "dst": Buf, "flags": Flag}


def written(insn: Insn) -> tuple[Buf, ...]:
    """The activation buffers an instruction writes (what a trace compares after it)."""
    if insn.OP in (Op.MATMUL, Op.LAYERNORM):
        return (insn.dst,)
    return {
        Op.LOAD_RES: (Buf.RESIDUAL,),
        Op.ATTENTION: (Buf.ATTN_OUT,),
        Op.MOE_COMBINE: (Buf.RESIDUAL,),
        Op.QUEUES: (Buf.MOE_ACC,),
    }.get(insn.OP, ())


def rebase(insn: Insn, base: int) -> Insn:
    """``insn`` with every present address moved by ``base`` beats."""
    moved = {a: getattr(insn, a) + base for a in insn.ADDRS if getattr(insn, a) != NONE}
    return type(insn)(**{**_values(insn), **moved})


def _values(insn: Insn) -> dict:
    return {f.name: getattr(insn, f.name) for f in fields(insn)}


def _put(word: int, hw: HwParams, name: str, value: int) -> int:
    f = hw.isa.field(name)
    if not 0 <= int(value) < (1 << f.bits):
        raise ValueError(f"instruction field {name} must fit {f.bits} bits, not {value}")
    return word | (int(value) << f.offset)


def _get(word: int, hw: HwParams, name: str) -> int:
    f = hw.isa.field(name)
    return (word >> f.offset) & ((1 << f.bits) - 1)


def encode(insn: Insn, hw: HwParams) -> int:
    """The instruction word of ``insn`` (raises if a value does not fit its field)."""
    word = _put(0, hw, "op", insn.OP)
    for attr, name in insn.FIELDS.items():
        word = _put(word, hw, name, getattr(insn, attr))
    return word


def decode(word: int, hw: HwParams) -> Insn:
    """Inverse of :func:`encode`; an unknown opcode raises ``ValueError``."""
    op = _get(word, hw, "op")
    if op not in KINDS:
        raise ValueError(f"unknown opcode {op}")
    cls = KINDS[Op(op)]
    kw = {}
    for attr, name in cls.FIELDS.items():
        value = _get(word, hw, name)
        kw[attr] = ENUMS[name](value) if name in ENUMS else value
    return cls(**kw)


def encode_header(values: dict[str, int], hw: HwParams) -> int:
    """The program header: 32-bit fields ``HEADER`` in order, in the first instruction slot."""
    assert 32 * len(HEADER) <= hw.isa.insn_bits
    return sum((int(values[k]) & 0xFFFFFFFF) << (32 * i) for i, k in enumerate(HEADER))


def decode_header(word: int) -> dict[str, int]:
    return {k: (word >> (32 * i)) & 0xFFFFFFFF for i, k in enumerate(HEADER)}
