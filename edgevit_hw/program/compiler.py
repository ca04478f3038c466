"""The compiler: ``(quantized model, HwParams) -> Program``, the one walk over the layers.

The DRAM image it builds is ``header | instructions | data``: the header and each instruction
fill ``isa.insn_beats`` beats; the data section (:class:`DataImage`) starts at ``data_base``
and holds every weight, bias and constant, laid out in instruction order as the walk meets
them. Every address in an instruction is a beat from the DRAM base, resolved here once.

The program does not depend on the task: a router matrix job carries the TASK flag and a
``stride``, and the hardware adds ``task * stride`` to its weight and constant addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.program import isa
from edgevit_hw.program.image import DataImage
from edgevit_hw.program.isa import NONE, Buf, Epi, Flag, Insn


@dataclass(frozen=True)
class Program:
    """The instructions of one frame (absolute addresses), a label per instruction (a symbol
    table for reports and the HLS offsets, not encoded) and the whole DRAM image."""

    hw: HwParams
    insns: tuple[Insn, ...]
    labels: tuple[str, ...]
    image: bytes
    data_base: int

    @property
    def image_beats(self) -> int:
        return len(self.image) // self.hw.streams.beat_bytes

    def by_label(self, label: str) -> Insn:
        return self.insns[self.labels.index(label)]

    def encoded(self) -> bytes:
        """The header and instruction section of the image (what the sequencer fetches)."""
        return self.image[: self.data_base * self.hw.streams.beat_bytes]


@dataclass
class _Walk:
    qm: QuantModel
    hw: HwParams
    data: DataImage = field(init=False)
    insns: list[Insn] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.data = DataImage(self.hw)
        self.a = self.hw.arith

    def emit(self, label: str, insn: Insn) -> None:
        self.labels.append(label)
        self.insns.append(insn)

    def t(self, name: str) -> np.ndarray:
        return self.qm[name]

    def rq(self, prefix: str) -> int:
        return self.data.requant(self.t(f"{prefix}.m"), self.t(f"{prefix}.s"))

    def segs(self, w, b, m, s) -> dict[str, int]:
        """Weights, biases (None: none) and requant constants (None: none) of one job."""
        return {
            "w": self.data.weights(w),
            "b": NONE if b is None else self.data.bias(b),
            "q": NONE if m is None else self.data.requant(m, s),
        }

    def named(self, prefix: str) -> dict[str, int]:
        return self.segs(*(self.t(f"{prefix}.{k}") for k in "wbms"))

    # -------------------------------------------------------------------- stages ----

    def embed(self) -> None:
        a, spec = self.a, self.qm.spec
        init = self.t("pos").astype(np.int64)
        if spec.model.class_token:
            init[0] = A.clamp(init[0] + self.t("cls"), a.res_bits)
        self.emit("embed.init", isa.LoadResidual(self.data.words32(init)))
        row0 = int(spec.model.class_token)
        self.emit("embed.patch", isa.MatMul(Epi.RESIDUAL, Buf.PIXELS, Buf.RESIDUAL,
                  a.patch_dim, a.embed_dim, a.patches, row0, **self.named("patch")))  # fmt: skip

    def layernorm(self, prefix: str, dst: Buf = Buf.LN_OUT) -> None:
        g = self.data.words32(self.t(f"{prefix}.g"))
        b = self.data.words64(self.t(f"{prefix}.b"))
        eps = self.data.words64(self.t(f"{prefix}.eps"))
        self.emit(prefix, isa.LayerNorm(Buf.RESIDUAL, dst, g, b, self.rq(prefix), eps))

    def attention(self, i: int) -> None:
        a, p, n, rows = self.a, f"blocks.{i}", self.a.tokens, self.hw.attn_rows
        self.emit(f"{p}.qkv", isa.MatMul(Epi.REQUANT_ACT, Buf.LN_OUT, Buf.QKV, a.embed_dim,
                  3 * a.embed_dim, n, **self.named(f"{p}.qkv")))  # fmt: skip
        logit = self.rq(f"{p}.logit")
        for h in range(a.heads):
            for r0 in range(0, n, rows):
                att = isa.Attention(h, r0, min(rows, n - r0), logit)
                self.emit(f"{p}.attn.h{h}.r{r0}", att)
        self.emit(f"{p}.proj", isa.MatMul(Epi.RESIDUAL, Buf.ATTN_OUT, Buf.RESIDUAL,
                  a.embed_dim, a.embed_dim, n, **self.named(f"{p}.proj")))  # fmt: skip

    def mlp(self, i: int) -> None:
        a, p, n = self.a, f"blocks.{i}", self.a.tokens
        gelu = self.rq(f"{p}.gelu")
        self.emit(f"{p}.fc1", isa.MatMul(Epi.GELU, Buf.LN_OUT, Buf.HIDDEN, a.embed_dim,
                  a.mlp_hidden, n, q2=gelu, **self.named(f"{p}.fc1")))  # fmt: skip
        self.emit(f"{p}.fc2", isa.MatMul(Epi.RESIDUAL, Buf.HIDDEN, Buf.RESIDUAL, a.mlp_hidden,
                  a.embed_dim, n, **self.named(f"{p}.fc2")))  # fmt: skip

    def router(self, i: int) -> None:
        """One [weights | requant] pair per task, equally spaced: the TASK stride."""
        a, p = self.a, f"blocks.{i}"
        firsts = [self.segs(self.t(f"{p}.gate.{t}.w"), None, self.t(f"{p}.gate.{t}.m"),
                            self.t(f"{p}.gate.{t}.s")) for t in range(a.tasks)]  # fmt: skip
        stride = firsts[1]["w"] - firsts[0]["w"] if a.tasks > 1 else 0
        assert all(f["w"] == firsts[0]["w"] + t * stride for t, f in enumerate(firsts))
        self.emit(f"{p}.gate", isa.MatMul(Epi.REQUANT_LOGIT, Buf.LN_OUT, Buf.GATE_LOGITS,
                  a.embed_dim, a.experts, a.tokens, flags=Flag.TASK, stride=stride,
                  **firsts[0]))  # fmt: skip
        self.emit(f"{p}.route", isa.Route())
        self.emit(f"{p}.queues", isa.Queues())

    def moe(self, i: int) -> None:
        a, p, n = self.a, f"blocks.{i}", self.a.tokens
        self.router(i)
        gelu = self.rq(f"{p}.gelu")
        for e in range(a.experts):
            fc1 = self.segs(*(self.t(f"{p}.efc1.{k}")[e] for k in "wbms"))
            self.emit(f"{p}.efc1.{e}", isa.MatMul(Epi.GELU, Buf.LN_OUT, Buf.HIDDEN, a.embed_dim,
                      a.expert_hidden, n, expert=e, flags=Flag.GATHER, q2=gelu, **fc1))  # fmt: skip
            fc2 = self.segs(self.t(f"{p}.efc2.w")[e], self.t(f"{p}.efc2.b")[e], None, None)
            self.emit(f"{p}.efc2.{e}", isa.MatMul(Epi.MOE, Buf.HIDDEN, Buf.MOE_ACC,
                      a.expert_hidden, a.embed_dim, n, expert=e, flags=Flag.SCATTER,
                      **fc2))  # fmt: skip
        self.emit(f"{p}.moe", isa.MoeCombine(self.rq(f"{p}.moe")))

    def model(self) -> None:
        spec = self.qm.spec
        self.embed()
        for i in range(spec.model.depth):
            self.layernorm(f"blocks.{i}.ln1")
            self.attention(i)
            self.layernorm(f"blocks.{i}.ln2")
            (self.moe if spec.is_moe(i) else self.mlp)(i)
        if spec.model.final_norm:
            self.layernorm("norm")
        self.emit("output", isa.Output(Buf.LN_OUT if spec.model.final_norm else Buf.RESIDUAL))


def _slot(word: int, hw: HwParams) -> bytes:
    return word.to_bytes(hw.isa.insn_bytes, "little")


def compile_program(qm: QuantModel, hw: HwParams) -> Program:
    """Walk the model once: instructions, labels and the DRAM image."""
    if qm.spec.spec_hash() != hw.spec_hash:
        raise ValueError("the quantized model and the derived parameters are of different specs")
    walk = _Walk(qm, hw)
    walk.model()
    data_base = (1 + len(walk.insns)) * hw.isa.insn_beats
    insns = tuple(isa.rebase(i, data_base) for i in walk.insns)
    header = {"magic": isa.MAGIC, "version": isa.VERSION, "count": len(insns),
              "hash32": hw.hash32, "data_base": data_base,
              "image_beats": data_base + walk.data.beats}  # fmt: skip
    body = b"".join(_slot(isa.encode(i, hw), hw) for i in insns)
    image = _slot(isa.encode_header(header, hw), hw) + body + walk.data.blob()
    return Program(hw, insns, tuple(walk.labels), image, data_base)


def read_program(image: bytes, hw: HwParams) -> tuple[Insn, ...]:
    """Decode the instructions of a DRAM image as the sequencer does; a wrong magic, version
    or spec hash, or a program that does not fit the image, raises ``ValueError``."""
    slot = hw.isa.insn_bytes
    head = isa.decode_header(int.from_bytes(image[:slot], "little"))
    expect = {"magic": isa.MAGIC, "version": isa.VERSION, "hash32": hw.hash32}
    for key, want in expect.items():
        if head[key] != want:
            raise ValueError(f"bad program: header {key} is {head[key]:#x}, expected {want:#x}")
    beat = hw.streams.beat_bytes
    if (1 + head["count"]) * slot > len(image) or head["image_beats"] * beat > len(image):
        raise ValueError(f"bad program: {head['count']} instructions do not fit the image")
    words = (image[(1 + j) * slot : (2 + j) * slot] for j in range(head["count"]))
    return tuple(isa.decode(int.from_bytes(w, "little"), hw) for w in words)
