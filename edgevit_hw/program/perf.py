"""The cycle model: cycles of every instruction of a program, from each unit's documented
throughput and the weight port's bytes per cycle.

Units and their formulas (``R x C`` MAC array, ``P`` attention rows, ``N`` tokens, ``D``
embed_dim, ``b`` act_bits, ``E`` experts, ``k`` top_k, ``W`` gate_weight_bits; the
throughputs are those stated in the RTL units' docstrings and measured by their benches)::

    compute unit  (rtl/compute_unit.py)  a tile of R rows x C columns over reduction K takes
                  max(K, R) cycles; a job of `rows` rows and `out` columns is
                  ceil(out/C) column slabs of ceil(rows/R) tiles each.
    weight port   one beat of port_bits per cycle once a burst runs; a column slab needs
                  K * slab_row_beats weight beats (pre-tiled, program/image.py) plus its
                  biases and requant words.
                  Slabs are double-buffered: the next slab (of this job or the next one,
                  across experts too) loads while the current one computes, so a slab costs
                  max(compute, load) and the first slab of the frame pays its load in full.
    layernorm     (rtl/layernorm.py)  2*D + 43 cycles per row, rows in sequence.
    attention     (rtl/attention.py)  per block of P query rows: P + N + P + 9 + P*(b + 2).
    router        (rtl/router.py)  E + W + 5 cycles per token.
    queues        (rtl/expert_queues.py)  (k + 1) per token, 2 per queued entry, 1 per expert.
    moe combine   the epilogue's residual path: C values per cycle, N * ceil(D/C).
    load / output one 32-bit word per lane of the weight port (LOAD_RES); one output element
                  per m_axis beat (OUTPUT).

Overlap stated: only weight loads overlap computation (double buffering); every other unit
runs in sequence with the MAC array, so the total is the sum over instructions. The frame's
pixels (one per s_axis beat) are received before the program starts. The memory floor is the
frame's DRAM bytes (program, weights and constants actually read) at one beat per cycle.

Expert jobs have data-dependent rows: pass the queue lengths measured on a frame (one list
per MoE block in program order, ``Interpreter.queue_counts``) or the model assumes a balanced
router (``ceil(N*k/E)`` tokens per expert, every expert used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import Program
from edgevit_hw.program.isa import Flag, Op

FILL = 3  # MAC array pipeline (input, product, accumulator registers) per job


@dataclass(frozen=True)
class InsnCost:
    label: str
    unit: str
    cycles: int
    mac_busy: int  # cycles the MAC array computes
    macs: int  # useful multiply-accumulates
    dram_beats: int  # beats read from DRAM


@dataclass(frozen=True)
class PerfReport:
    hw: HwParams
    costs: tuple[InsnCost, ...]
    frame_in: int  # cycles to receive the frame's pixels

    @property
    def total(self) -> int:
        return self.frame_in + sum(c.cycles for c in self.costs)

    @property
    def mac_busy_fraction(self) -> float:
        return sum(c.mac_busy for c in self.costs) / self.total

    @property
    def mac_utilization(self) -> float:
        return sum(c.macs for c in self.costs) / (self.total * self.hw.mac_rows * self.hw.mac_cols)

    @property
    def dram_beats(self) -> int:
        return sum(c.dram_beats for c in self.costs)

    @property
    def memory_floor(self) -> int:
        """Cycles the weight port needs for the frame's DRAM traffic alone."""
        return self.dram_beats

    def ms(self, cycles: int | None = None) -> float:
        return (self.total if cycles is None else cycles) / (self.hw.clock_mhz * 1e3)

    def by_layer(self) -> dict[str, int]:
        """Cycles per layer: ``embed``, ``blocks.i``, ``head`` (final norm and output)."""
        out: dict[str, int] = {"frame_in": self.frame_in}
        for c in self.costs:
            key = ".".join(c.label.split(".")[:2]) if c.label.startswith("blocks.") else c.label
            key = "embed" if key.startswith("embed") else key
            key = "head" if key in ("norm", "output") else key
            out[key] = out.get(key, 0) + c.cycles
        return out

    def by_unit(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.costs:
            out[c.unit] = out.get(c.unit, 0) + c.cycles
        return out


class _Model:
    def __init__(self, hw: HwParams, queue_counts: dict[int, list[int]] | None):
        self.hw, self.a = hw, hw.arith
        self.counts = queue_counts or {}
        per = math.ceil(self.a.tokens * self.a.top_k / self.a.experts)
        self.balanced = [per] * self.a.experts

    def beats_words(self, words: int) -> int:
        return math.ceil(words / self.hw.streams.words_per_beat)

    def rows(self, label: str, insn: isa.MatMul) -> int:
        if not insn.flags & (Flag.GATHER | Flag.SCATTER):
            return insn.rows
        block = int(label.split(".")[1])
        return self.counts.get(block, self.balanced)[insn.expert]

    def slab_load(self, insn: isa.MatMul) -> int:
        """Beats of one column slab: C rows of K weights, C biases and C requant words."""
        hw, c = self.hw, self.hw.mac_cols
        weights = insn.k * hw.streams.slab_row_beats
        bias_words = 0 if insn.b == isa.NONE else c * hw.streams.bias_word_bits // 32
        rq_words = 0 if insn.q == isa.NONE else c
        return weights + self.beats_words(bias_words + rq_words)

    def matmul(self, label: str, insn: isa.MatMul) -> InsnCost:
        hw, rows = self.hw, self.rows(label, insn)
        if rows == 0:
            return InsnCost(label, "compute", 0, 0, 0, 0)
        slabs = math.ceil(insn.out / hw.mac_cols)
        compute = math.ceil(rows / hw.mac_rows) * max(insn.k, hw.mac_rows)
        load = self.slab_load(insn)
        cycles = slabs * max(compute, load) + FILL
        macs = rows * insn.k * insn.out
        return InsnCost(label, "compute", cycles, slabs * compute, macs, slabs * load)

    def cost(self, label: str, insn: isa.Insn) -> InsnCost:
        a, hw = self.a, self.hw
        n, d = a.tokens, a.embed_dim
        if insn.OP == Op.MATMUL:
            return self.matmul(label, insn)
        simple = {
            Op.LOAD_RES: ("load", self.beats_words(n * d), self.beats_words(n * d)),
            Op.LAYERNORM: ("layernorm", n * (2 * d + 43), self.beats_words(3 * d + 3)),
            Op.ROUTE: ("router", n * (a.experts + a.gate_weight_bits + 5), 0),
            Op.QUEUES: ("queues", n * (a.top_k + 1) + 2 * n * a.top_k + a.experts, 0),
            Op.MOE_COMBINE: ("combine", n * math.ceil(d / hw.mac_cols), self.beats_words(d)),
            Op.OUTPUT: ("output", n * d, 0),
        }
        if insn.OP == Op.ATTENTION:
            p = insn.rows
            return InsnCost(label, "attention", 2 * p + n + 9 + p * (a.act_bits + 2), 0, 0, 1)
        unit, cycles, beats = simple[insn.OP]
        return InsnCost(label, unit, cycles, 0, 0, beats)


def estimate(program: Program, queue_counts: list[list[int]] | None = None) -> PerfReport:
    """Cycles of one frame of ``program`` (see the module docstring for every formula); the
    'program' row is the first weight slab's exposed load (the fetch of the instructions
    themselves overlaps it) and counts the instruction beats as DRAM traffic."""
    hw = program.hw
    moe_blocks = [int(lab.split(".")[1]) for lab in program.labels if lab.endswith(".queues")]
    model = _Model(hw, dict(zip(moe_blocks, queue_counts, strict=True)) if queue_counts else None)
    pairs = list(zip(program.labels, program.insns, strict=True))
    costs = [model.cost(lab, ins) for lab, ins in pairs]
    first = next(ins for _, ins in pairs if ins.OP == Op.MATMUL)
    fetch = InsnCost("program", "fetch", model.slab_load(first), 0, 0, program.data_base)
    frame_in = hw.arith.patches * hw.arith.patch_dim  # one pixel per s_axis beat
    return PerfReport(hw, (fetch, *costs), frame_in)
