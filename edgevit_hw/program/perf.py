"""The cycle model: cycles of every instruction of a program, from each unit's documented
throughput and the weight port's bytes per cycle.

Units and their formulas (``R x C`` MAC array, ``P`` attention rows, ``N`` tokens, ``D``
embed_dim, ``b`` act_bits, ``E`` experts, ``k`` top_k, ``W`` gate_weight_bits; the
throughputs are those stated in the RTL units' docstrings and measured by their benches)::

    compute unit  (rtl/compute_unit.py)  a tile of R rows x C columns over reduction K takes
                  max(max(K, R) + STREAM_GAP, ROW_CYCLES * R + ROW_BLOCK) cycles: K beats into
                  the array (at least R) and the operand stream's gap between blocks, or the
                  matrix engine's row producer (rtl/matmul_engine.py, one block ahead) if it
                  is slower; a job of `rows` rows and `out` columns is
                  ceil(out/C) column slabs of ceil(rows/R) tiles each, then its drain
                  (MAC_STAGES + EPI_STAGES + 2 + R cycles to its last row).
    weight port   one beat of port_bits per cycle once a burst runs; a column slab needs
                  K * slab_row_beats weight beats (pre-tiled, program/image.py) plus its
                  biases and requant words.
                  Slabs are double-buffered: the next slab loads while the current one
                  computes, so a slab costs max(compute, load). The loader looks one
                  instruction ahead (rtl/matmul_engine.py): a matrix job that follows one
                  with rows (or MOE_COMBINE) has its first slab loaded already, across
                  experts too; a job after any other instruction pays its first slab's load
                  in full, after the read's first data (DRAM_LATENCY + READ_PATH).
    layernorm     (rtl/engines.py LayerNormEngine, rtl/layernorm.py)  the read's first data,
                  gamma (32-bit) and beta (64-bit), a beat of c elements per cycle when c divides L
                  (L = act_lanes; c = words_per_beat / words per element), else a 32-bit word
                  per cycle, then eps and the requantization word (3 words); then the unit
                  takes one L-lane word per cycle, rows overlapped:
                  N*W + W + ceil(log2 L) + LN_FILL cycles, W = ceil(D/L) words per row.
    attention     (rtl/attention.py)  per block of P query rows (a frame's last block takes
                  as long with fewer rows):
                  2P + N + logit_stages(DH) + 7 + P*(b + 4), logit_stages = products, the q.k
                  adder tree (a register every ATTN_TREE_STEP levels), score * m, two
                  requantization halves.
    router        (rtl/router.py)  E + W + ROUTER_TOKEN cycles per token.
    queues        (rtl/expert_queues.py)  (k + 1) per token, 2 per queued entry, 1 per expert.
    moe combine   a matrix job of N rows, reduction 1 and D columns that loads no weights
                  (the epilogue adds the residual and the experts' sum): the row producer
                  paces it, ceil(D/C) * ceil(N/R) * (ROW_CYCLES * R + ROW_BLOCK) + drain.
    load / output the read's first data, then one 32-bit word per lane of the weight port
                  (LOAD_RES); one m_axis beat
                  (tokens_per_beat output elements) per cycle (OUTPUT).

Overlap stated: only weight loads overlap computation (double buffering); every other unit
runs in sequence with the MAC array, so the total is the sum over instructions. The frame's
pixels (pixels_per_beat per s_axis beat) are received before the program starts. The memory
floor is the frame's DRAM bytes (program, weights and constants actually read) at one beat per
cycle.

Expert jobs have data-dependent rows: pass the queue lengths measured on a frame (one list
per MoE block in program order, ``Interpreter.queue_counts``) or the model assumes a balanced
router (``ceil(N*k/E)`` tokens per expert, every expert used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import HwParams
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import Program
from edgevit_hw.program.isa import Flag, Op
from edgevit_hw.program.streams import out_beats, pixel_beats

# A matrix job ends when its last row is written: from its last operand beat, the MAC array's
# stages (input, product, accumulator), the shadow load, the epilogue's stages and the skid
# register (rtl/compute_unit.py), then its R rows one per cycle: MAC_STAGES + EPI_STAGES + 2 + R.
MAC_STAGES = 3  # rtl/mac_array.py
EPI_STAGES = 11  # rtl/epilogue.py STAGES
# A read's first data: DRAM_LATENCY cycles from the address handshake to the first beat (the
# latency the full-frame bench's memory models, sim/fullframe.py), plus the read master's path
# (rtl/axi_read.py: ARVALID 3 cycles after a request, a beat offered 2 cycles after it arrives).
# Exposed once per LayerNorm (its parameters), LOAD_RES and matrix job not loaded ahead.
DRAM_LATENCY = 40
READ_PATH = 5
# the matrix engine's row producer: a row's queue read, then its entry (2 cycles); per block a
# cycle to find the table free and one to mark it full
ROW_CYCLES, ROW_BLOCK = 2, 2
# the operand stream between two blocks: the cycle after a block's last beat, the stream's WAIT
# state and the shift tile's reload
STREAM_GAP = 3
LN_FILL = 58  # the LayerNorm unit's fixed pipeline cycles (rtl/layernorm.py FILL)
ROUTER_TOKEN = 14  # the router's fixed cycles per token (rtl/router.py TOKEN_CYCLES)
ATTN_TREE_STEP = 2  # adder-tree levels between registers (rtl/attention.py TREE_STEP)


def attn_logit_stages(head_dim: int) -> int:
    """The attention row pipeline from a key to its logit (rtl/attention.py logit_stages)."""
    return 1 + -(-(head_dim - 1).bit_length() // ATTN_TREE_STEP) + 1 + 2


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
        self.drain = MAC_STAGES + EPI_STAGES + 2 + hw.mac_rows  # a matrix job's last rows out
        self.first_data = DRAM_LATENCY + READ_PATH

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

    def matmul(self, label: str, insn: isa.MatMul, ahead: bool) -> InsnCost:
        """``ahead``: its first slab was loaded during the job before it."""
        rows = self.rows(label, insn)
        if rows == 0:
            return InsnCost(label, "compute", 0, 0, 0, 0)
        load = self.slab_load(insn)
        cycles, busy = self.job(rows, insn.k, insn.out, load, ahead)
        slabs = math.ceil(insn.out / self.hw.mac_cols)
        return InsnCost(label, "compute", cycles, busy, rows * insn.k * insn.out, slabs * load)

    def job(self, rows: int, k: int, out: int, load: int, ahead: bool) -> tuple[int, int]:
        """``(cycles, MAC busy cycles)`` of a matrix job whose column slabs each load ``load``
        beats (``ahead``: the first slab's were loaded during the job before it)."""
        hw = self.hw
        slabs, tiles = math.ceil(out / hw.mac_cols), math.ceil(rows / hw.mac_rows)
        first = 0 if ahead else load + self.first_data
        cycles = slabs * max(tiles * self.tile(k), load) + self.drain + first
        return cycles, slabs * tiles * max(k, hw.mac_rows)

    def tile(self, k: int) -> int:
        """Cycles of one tile (block of R rows) over reduction ``k``."""
        r = self.hw.mac_rows
        return max(max(k, r) + STREAM_GAP, ROW_CYCLES * r + ROW_BLOCK)

    def combine(self, ahead: bool) -> int:
        """MOE_COMBINE: a matrix job of N rows, reduction 1 and D columns whose slabs load only
        their C requantization words (``ahead``: the first one's were loaded during the job
        before it)."""
        a, load = self.a, self.beats_words(self.hw.mac_cols)
        return self.job(a.tokens, 1, a.embed_dim, load, ahead)[0]

    def layernorm(self) -> int:
        """Parameters, then the unit's rows (see the module docstring)."""
        a, lanes = self.a, self.hw.streams.act_lanes

        def load(words: int) -> int:  # D elements of `words` 32-bit words each
            c = self.hw.streams.words_per_beat // words
            return math.ceil(a.embed_dim / c) if c and lanes % c == 0 else words * a.embed_dim

        w = math.ceil(a.embed_dim / lanes)
        rows = a.tokens * w + w + (lanes - 1).bit_length() + LN_FILL
        return self.first_data + load(1) + load(2) + 3 + rows

    def cost(self, label: str, insn: isa.Insn, ahead: bool = False) -> InsnCost:
        a, hw = self.a, self.hw
        n, d = a.tokens, a.embed_dim
        res = self.beats_words(n * d)  # LOAD_RES: the residual's beats
        if insn.OP == Op.MATMUL:
            return self.matmul(label, insn, ahead)
        simple = {
            Op.LOAD_RES: ("load", self.first_data + res, res),
            Op.LAYERNORM: ("layernorm", self.layernorm(), self.beats_words(3 * d + 3)),
            Op.ROUTE: ("router", n * (a.experts + a.gate_weight_bits + ROUTER_TOKEN), 0),
            Op.QUEUES: ("queues", n * (a.top_k + 1) + 2 * n * a.top_k + a.experts, 0),
            Op.MOE_COMBINE: ("combine", self.combine(ahead), self.beats_words(d)),
            Op.OUTPUT: ("output", out_beats(hw), 0),
        }
        if insn.OP == Op.ATTENTION:
            p = hw.attn_rows
            fixed = attn_logit_stages(a.head_dim) + 7
            return InsnCost(label, "attention", 2 * p + n + fixed + p * (a.act_bits + 4), 0, 0, 1)
        unit, cycles, beats = simple[insn.OP]
        return InsnCost(label, unit, cycles, 0, 0, beats)


def estimate(program: Program, queue_counts: list[list[int]] | None = None) -> PerfReport:
    """Cycles of one frame of ``program`` (see the module docstring for every formula); the
    'program' row counts the instruction beats as DRAM traffic (their fetch overlaps the
    first job's)."""
    hw = program.hw
    moe_blocks = [int(lab.split(".")[1]) for lab in program.labels if lab.endswith(".queues")]
    model = _Model(hw, dict(zip(moe_blocks, queue_counts, strict=True)) if queue_counts else None)
    pairs = list(zip(program.labels, program.insns, strict=True))
    costs: list[InsnCost] = []
    for lab, ins in pairs:
        prev = costs[-1] if costs else None
        # the matrix engine's loader works a job ahead after a matrix job with rows (or a combine)
        ahead = prev is not None and prev.unit in ("compute", "combine") and prev.cycles > 0
        costs.append(model.cost(lab, ins, ahead))
    fetch = InsnCost("program", "fetch", 0, 0, 0, program.data_base)
    return PerfReport(hw, (fetch, *costs), pixel_beats(hw))


# ------------------------------------------------------------ HLS per-loop model ----
# The HLS C++ (hls/include) as Vitis schedules it by the UG1399 rules: every loop is
# PIPELINE II=1 or UNROLLed inside one; a loop's II is the largest, over the arrays it
# touches, of ceil(accesses per iteration per bank / ports per bank) (a BRAM bank has two
# ports, a register or a ROM copy per lane counts as its own bank); each pipelined loop run
# adds HLS_PIPE_DEPTH cycles of fill. The C++ model_cycles (hls/include/evh_model.h) uses the
# same per-instruction formulas as hls_insn_cycles; a test checks both on a frame.

HLS_PIPE_DEPTH = 8  # fill of one pipelined loop run (an estimate of its iteration latency)
BRAM_PORTS = 2


def hls_schedule(hw: HwParams) -> dict[str, int]:
    """Partition factors and constants the HLS kernels are emitted with: qkv's cyclic banks
    (>= C for the epilogue's C lanes, >= DH for one K row and one V row per attention step)
    and the pipeline fill."""
    return {"qkv_banks": max(hw.mac_cols, hw.arith.head_dim), "pipe_depth": HLS_PIPE_DEPTH}


@dataclass(frozen=True)
class HlsLoop:
    """One pipelined loop: per array, (accesses per iteration per bank, ports per bank)."""

    unit: str
    loop: str
    arrays: tuple[tuple[str, int, int], ...]

    @property
    def ii(self) -> int:
        return max([1] + [math.ceil(acc / ports) for _, acc, ports in self.arrays])


def hls_loops(hw: HwParams) -> tuple[HlsLoop, ...]:
    """Every pipelined loop of the HLS kernels with its array accesses per bank, read from the
    partitioning in evh_frame.h (activations cyclic C in dim 2, qkv cyclic qkv_banks) and the
    local arrays (complete partitions are registers or per-lane ROM copies)."""
    r, c, dh = hw.mac_rows, hw.mac_cols, hw.arith.head_dim
    lanes, banks = min(r, c), hls_schedule(hw)["qkv_banks"]
    per = lambda n, b: math.ceil(n / b)  # noqa: E731  accesses per bank, n consecutive
    p = BRAM_PORTS
    rows = [
        ("frame", "read_beats", [("pixels", per(hw.streams.pixels_per_beat, c), p)]),
        ("frame", "fetch_beats", [("m_axi", 1, 1)]),
        ("compute", "gather_steps", [("src", per(lanes, c), p), ("xt[cur]", 1, p),
                                     ("xt[nxt]", 1, p), ("queue_tokens", 2, p),
                                     ("gate_weights", 1, p), ("dst (old values)", per(c, c), p)]),
        ("compute", "load_beats", [("m_axi", 1, 1)]),
        ("compute", "read_word_beats", [("m_axi", 1, 1)]),
        ("compute", "mac_steps", [("wbuf[p]", 1, p), ("wbuf[1-p]", 1, p)]),
        ("compute", "epi_*_rows", [("dst", per(c, c), p), ("gelu_tab[c]", 2, p)]),
        ("attention", "load_q", [("qkv", per(dh, banks), p)]),
        ("attention", "skew_steps", [("qkv", 2 * per(dh, banks), p), ("exp2_tab[p]", 1, p)]),
        ("attention", "normalize", [("attn_out", per(c, c), p)]),
        ("layernorm", "ln_sum/ln_var/ln_norm", [("residual", 1, p), ("gamma", 1, p),
                                                ("beta", 1, p), ("ln_out", 1, p)]),
        ("layernorm", "rsqrt_bits", []),
        ("router", "router_tokens", [("exp2_tab[e]", 1, p)]),
        ("queues", "queue_entries", [("queue_tokens", 1, p), ("queue_slots", 1, p)]),
        ("combine", "combine_steps", [("residual", 2, p), ("moe_acc", 1, p)]),
        ("output", "out_beats", [("src", per(hw.streams.tokens_per_beat, c), p)]),
        ("load", "load_res_cols", [("residual", 1, p)]),
    ]  # fmt: skip
    return tuple(HlsLoop(u, lp, tuple(a)) for u, lp, a in rows)


def _words(hw: HwParams, n: int) -> int:
    return math.ceil(n / hw.streams.words_per_beat) + HLS_PIPE_DEPTH


def hls_matmul_cycles(hw: HwParams, insn: isa.MatMul, rows: int) -> int:
    """The first slab's load (or the gather's first fill), then per slab the larger of its
    tiles' steps (max(K, R, R*ceil(K/min(R, C))) each) and the next slab's load, then the
    last tile's R-row drain (evh_mac.h linear)."""
    if rows == 0:
        return 0
    r, c, k, pd = hw.mac_rows, hw.mac_cols, insn.k, HLS_PIPE_DEPTH
    bw = hw.streams.bias_word_bits // 32
    head = (_words(hw, bw * c) if insn.b != isa.NONE else 0) + (
        _words(hw, c) if insn.q != isa.NONE else 0
    )
    load = k * hw.streams.slab_row_beats + pd + head
    fill = r * math.ceil(k / min(r, c)) + pd
    steps = max(k, r, r * math.ceil(k / min(r, c)))
    tiles = math.ceil(rows / r) * steps
    return max(load, fill) + math.ceil(insn.out / c) * max(tiles, load) + r + pd


def hls_insn_cycles(hw: HwParams, insn: isa.Insn, rows: int = 0) -> int:
    """Cycles of one instruction in the HLS schedule, its fetch included (``rows``: the job's
    rows, the queue length for an expert job)."""
    a, c, pd = hw.arith, hw.mac_cols, HLS_PIPE_DEPTH
    n, d, lanes = a.tokens, a.embed_dim, math.ceil(a.embed_dim / hw.mac_cols)
    fetch = hw.isa.insn_beats + pd
    if insn.OP == Op.MATMUL:
        return fetch + hls_matmul_cycles(hw, insn, rows)
    ln = (sum(_words(hw, w) for w in (d, 2 * d, 2, 1)) + d + pd
          + n * (3 * lanes + A.RSQRT_M_BITS + 4 * pd))  # fmt: skip
    p = hw.attn_rows
    other = {
        Op.LAYERNORM: ln,
        Op.ATTENTION: _words(hw, 1) + p + n + p - 1 + p * math.ceil(a.head_dim / c) + 3 * pd,
        Op.LOAD_RES: n * (_words(hw, d) + d + pd),
        Op.ROUTE: n + pd,
        Op.QUEUES: n * a.top_k + pd + a.moe_rows * lanes + pd,
        Op.MOE_COMBINE: _words(hw, d) + n * lanes + pd,
        Op.OUTPUT: out_beats(hw) + pd,
    }
    return fetch + other[insn.OP]


def hls_estimate(program: Program, queue_counts: list[list[int]] | None = None) -> dict:
    """HLS cycles of one frame: per unit and the total (frame reception included), with the
    expert queue lengths measured on a frame or, without them, the balanced router."""
    hw = program.hw
    model = _Model(hw, None)
    moe_blocks = [int(lab.split(".")[1]) for lab in program.labels if lab.endswith(".queues")]
    if queue_counts:
        model.counts = dict(zip(moe_blocks, queue_counts, strict=True))
    units: dict[str, int] = {"frame_in": pixel_beats(hw) + HLS_PIPE_DEPTH}
    for lab, ins in zip(program.labels, program.insns, strict=True):
        rows = model.rows(lab, ins) if ins.OP == Op.MATMUL else 0
        unit = "compute" if ins.OP == Op.MATMUL else ins.OP.name.lower()
        units[unit] = units.get(unit, 0) + hls_insn_cycles(hw, ins, rows)
    return {"units": units, "total": sum(units.values())}


def hls_loop_table(program: Program, queue_counts: list[list[int]] | None = None) -> str:
    """The per-loop table (markdown): unit, loop, accesses per iteration per bank / ports per
    array, the resulting II; then the frame's cycles per unit and the total."""
    lines = ["| unit | loop | accesses/iteration/bank : ports per array | II |",
             "|---|---|---|---|"]  # fmt: skip
    for lp in hls_loops(program.hw):
        acc = ", ".join(f"{n} {a}:{p}" for n, a, p in lp.arrays) or "(registers only)"
        lines.append(f"| {lp.unit} | {lp.loop} | {acc} | {lp.ii} |")
    est = hls_estimate(program, queue_counts)
    lines += ["", "| unit | cycles per frame |", "|---|---|"]
    lines += [f"| {u} | {cyc:,} |" for u, cyc in est["units"].items()]
    lines.append(f"| **total** | **{est['total']:,}** |")
    return "\n".join(lines)
