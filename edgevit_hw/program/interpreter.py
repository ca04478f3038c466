"""The program interpreter: executes a DRAM image's program on NumPy buffers.

It decodes the instructions from the image (as the sequencer fetches them), reads every weight
and constant from the image's data section, and computes with the operations of
:mod:`edgevit_hw.core.arithmetic`. It must equal the golden model bit for bit; the golden
model is the independent definition and never calls this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import read_program
from edgevit_hw.program.image import ImageReader
from edgevit_hw.program.isa import Buf, Epi, Flag

I64 = np.int64


@dataclass
class Machine:
    """Buffers of the accelerator (``HwParams.buffers``, as [rows, columns] arrays) and the
    state the MoE instructions pass along: router choices and per-expert queues."""

    hw: HwParams
    task: int
    bufs: dict[Buf, np.ndarray] = field(default_factory=dict)
    gate_idx: np.ndarray | None = None
    gate_w: np.ndarray | None = None
    queues: list[np.ndarray] = field(default_factory=list)  # [count, 2] (token, slot)
    tokens: np.ndarray | None = None

    def __post_init__(self):
        a = self.hw.arith
        n, r = a.tokens, a.moe_rows
        shapes = {Buf.RESIDUAL: (n, a.embed_dim), Buf.LN_OUT: (n, a.embed_dim),
                  Buf.QKV: (n, 3 * a.embed_dim), Buf.ATTN_OUT: (n, a.embed_dim),
                  Buf.HIDDEN: (n, a.hidden), Buf.MOE_ACC: (r, a.embed_dim),
                  Buf.GATE_LOGITS: (r, a.experts)}  # fmt: skip
        self.bufs = {b: np.zeros(s, I64) for b, s in shapes.items()}


class Interpreter:
    """``run(pixels, task)`` executes the whole program of ``image`` on one frame."""

    def __init__(self, image: bytes, hw: HwParams):
        self.hw, self.a = hw, hw.arith
        self.insns = read_program(image, hw)
        self.mem = ImageReader(image, hw)
        self.queue_counts: list[list[int]] = []  # of the last frame, per QUEUES instruction

    def run(self, patches: np.ndarray, task: int) -> np.ndarray:
        """``patches`` [patches, patch_dim] pixels in patch order; returns the output tokens."""
        *_, m = self.steps(patches, task)
        return m.tokens

    def steps(self, patches: np.ndarray, task: int):
        """The machine after each instruction, in program order (the trace a hardware run is
        compared with, instruction by instruction, to find where the two part ways)."""
        m = Machine(self.hw, task)
        self.queue_counts = []
        m.bufs[Buf.PIXELS] = np.asarray(patches, I64)
        for insn in self.insns:
            getattr(self, f"op_{insn.OP.name.lower()}")(m, insn)
            yield m

    # ------------------------------------------------------------------- opcodes ----

    def op_load_res(self, m: Machine, insn: isa.LoadResidual) -> None:
        a = self.a
        m.bufs[Buf.RESIDUAL] = self.mem.words32(insn.init, a.tokens * a.embed_dim).reshape(
            a.tokens, a.embed_dim
        )

    def op_layernorm(self, m: Machine, insn: isa.LayerNorm) -> None:
        a, d = self.a, self.a.embed_dim
        rm, rs = self.mem.requant(insn.q, 1)
        eps = int(self.mem.words64(insn.eps, 1)[0])
        g, b = self.mem.words32(insn.g, d), self.mem.words64(insn.b, d)
        x = m.bufs[insn.src]
        m.bufs[insn.dst] = A.layernorm_q(x, g, b, eps, a.ln_norm_frac_bits, rm, rs, a.act_bits)

    def _rows(self, m: Machine, insn: isa.MatMul) -> tuple[np.ndarray, np.ndarray]:
        """Source and destination row indices of a matrix job."""
        queue = m.queues[insn.expert] if insn.flags & (Flag.GATHER | Flag.SCATTER) else None
        count = insn.rows if queue is None else len(queue)
        compact = np.arange(count)
        src = queue[:, 0] if insn.flags & Flag.GATHER else compact
        dst = queue[:, 0] if insn.flags & Flag.SCATTER else compact + insn.row0
        return src, dst

    def op_matmul(self, m: Machine, insn: isa.MatMul) -> None:
        a = self.a
        step = m.task * insn.stride if insn.flags & Flag.TASK else 0
        src, dst = self._rows(m, insn)
        if not len(src):
            return  # an expert no token chose: its weights are never read
        w = self.mem.weights(insn.w + step, insn.out, insn.k)
        b = 0 if insn.b == isa.NONE else self.mem.bias(insn.b, insn.out)
        x = m.bufs[insn.src][src, : insn.k]
        x_bits = a.pixel_bits if insn.src == Buf.PIXELS else a.act_bits
        acc = A.linear(x, w, b, x_bits, a.weight_bits)
        q = None if insn.q == isa.NONE else self.mem.requant(insn.q + step, insn.out)
        self.epilogue(m, insn, acc, q, dst)

    def epilogue(self, m: Machine, insn: isa.MatMul, acc, q, dst: np.ndarray) -> None:
        a, out = self.a, m.bufs[insn.dst]
        cols = slice(0, insn.out)
        if insn.epi == Epi.REQUANT_ACT:
            out[dst, cols] = A.requant(acc, *q, a.act_bits)
        elif insn.epi == Epi.REQUANT_LOGIT:
            out[dst, cols] = A.requant(acc, *q, a.logit_bits)
        elif insn.epi == Epi.GELU:
            u = A.requant(acc, *q, a.gelu_in_bits)
            m2, s2 = self.mem.requant(insn.q2, 1)
            out[dst, cols] = A.requant(A.gelu_q(u, a.gelu_frac_bits), m2, s2, a.act_bits)
        elif insn.epi == Epi.RESIDUAL:
            out[dst, cols] = A.residual_add(out[dst, cols], acc, *q, a.res_bits)
        else:  # Epi.MOE: gate-weighted scatter-accumulate of the expert's rows
            queue = m.queues[insn.expert]
            gw = m.gate_w[queue[:, 0], queue[:, 1]]
            out[dst, cols] += A.moe_combine(acc[:, None, :], gw[:, None])

    def op_attention(self, m: Machine, insn: isa.Attention) -> None:
        a, qkv = self.a, m.bufs[Buf.QKV]
        d, dh = a.embed_dim, a.head_dim
        rows = slice(insn.row0, insn.row0 + insn.rows)
        c = [slice(j * d + insn.head * dh, j * d + (insn.head + 1) * dh) for j in range(3)]
        lm, ls = self.mem.requant(insn.q, 1)
        score = A.matmul_exact(qkv[rows, c[0]], qkv[:, c[1]], a.act_bits, a.act_bits)
        t = A.requant(score, lm, ls, a.logit_bits)
        acc, l = A.online_softmax(t, qkv[:, c[2]], a.exp_frac_bits, a.exp_out_bits)
        m.bufs[Buf.ATTN_OUT][rows, c[0]] = A.normalize_attention(acc, l, a.act_bits)

    def op_route(self, m: Machine, insn: isa.Route) -> None:
        a = self.a
        m.gate_idx, m.gate_w = A.gate_q(m.bufs[Buf.GATE_LOGITS], a.top_k, a.exp_frac_bits,
                                        a.exp_out_bits, a.gate_weight_bits)  # fmt: skip

    def op_queues(self, m: Machine, insn: isa.Queues) -> None:
        """Tokens in order; each token appends (token, slot) to the queue of its slot's
        expert, as the queue unit does."""
        lists: list[list[tuple[int, int]]] = [[] for _ in range(self.a.experts)]
        for tok, chosen in enumerate(m.gate_idx):
            for slot, e in enumerate(chosen):
                lists[int(e)].append((tok, slot))
        m.queues = [np.array(q, I64).reshape(-1, 2) for q in lists]
        self.queue_counts.append([len(q) for q in lists])
        m.bufs[Buf.MOE_ACC][:] = 0

    def op_moe_combine(self, m: Machine, insn: isa.MoeCombine) -> None:
        a = self.a
        q = self.mem.requant(insn.q, a.embed_dim)
        res = m.bufs[Buf.RESIDUAL]
        m.bufs[Buf.RESIDUAL] = A.residual_add(res, m.bufs[Buf.MOE_ACC], *q, a.res_bits)

    def op_output(self, m: Machine, insn: isa.Output) -> None:
        m.tokens = m.bufs[insn.src].copy()


def run_program(image: bytes, hw: HwParams, patches: np.ndarray, task: int) -> np.ndarray:
    """One frame through the program of ``image``: the output tokens [N, D]."""
    return Interpreter(image, hw).run(patches, task)
