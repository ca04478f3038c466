"""Whole frames through the RTL top on the C++ Verilator bench (edgevit_hw.sim.fullframe):
bit-exact with the golden model on every task, back to back with task switches, and the
per-instruction cycle trace (from dbg_pc) accounts for every cycle FRAME_CYCLES counts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import prepared
from edgevit_hw.sim.specs import SEED

pytestmark = pytest.mark.rtl


def _frames(prep, rng) -> tuple[list[np.ndarray], list[int]]:
    """The evaluation image on task 0, then noise frames switching through every task."""
    a, img = prep.hw.arith, prep.spec.model.image
    noise = [rng.integers(0, 256, (img.channels, img.height, img.width), dtype=np.uint8)
             for _ in range(a.tasks)]  # fmt: skip
    return [prep.pixels(), *noise], [0, *reversed(range(a.tasks))]


@pytest.mark.parametrize("config", ["micro_moe", "odd_moe"])
def test_fullframe_bit_exact_and_traced(config):
    """Every frame bit-exact, its cycles accounted for instruction by instruction, the counters
    consistent, and each layer's cycles within 10% of the cycle model's (given the routing the
    interpreter measures on that frame)."""
    from edgevit_hw.sim.fullframe import group_cycles, run_frames
    from edgevit_hw.sim.fullframe_trace import first_difference

    from edgevit_hw.core.golden import golden_forward, patchify
    from edgevit_hw.program.interpreter import Interpreter
    from edgevit_hw.program.perf import estimate

    print(f"seed {SEED}")
    prep = prepared(config)
    frames, tasks = _frames(prep, np.random.default_rng(SEED))
    res = run_frames(prep, frames, tasks, waves=False)
    assert not res.warnings, res.warnings
    assert [f.task for f in res.frames] == tasks
    for k, (f, px) in enumerate(zip(res.frames, frames, strict=True)):
        diff = first_difference(f.tokens, golden_forward(prep.qmodel, px, f.task).tokens)
        assert diff is None, f"{config} frame {k} (task {f.task}): {diff}"
        cycles = f.insn_cycles
        assert len(cycles) == len(prep.program.insns) and (cycles > 0).all()
        assert f.wait + int(cycles.sum()) + f.tail == f.frame_cycles
        assert 0 <= f.tail <= 4, f"FRAME_CYCLES counts {f.tail} cycles past the last instruction"
        assert f.first_pixel < f.last_pixel <= f.start < f.last_token <= f.pc_cycles[-1]
        interp = Interpreter(prep.program.image, prep.hw)
        interp.run(patchify(px, prep.spec.model.patch), f.task)
        rep = estimate(prep.program, interp.queue_counts)
        want = group_cycles([c.label for c in rep.costs], [c.cycles for c in rep.costs])
        for layer, got in group_cycles(prep.program.labels, cycles).items():
            assert abs(got / want[layer] - 1) <= 0.10, f"frame {k} {layer}: {got} vs {want}"
    ends = [f.pc_cycles[-1] for f in res.frames[:-1]]
    starts = [f.start for f in res.frames[1:]]
    assert all(e <= s for e, s in zip(ends, starts, strict=True)), "programs overlap"
    c = res.counters
    assert (c["FRAMES_OK"], c["FRAMES_DROPPED"], c["STATUS"]) == (len(frames), 0, 0)
    assert c["SPEC_ID"] == prep.hw.hash32
    assert sum(f.program_cycles for f in res.frames) < c["CYCLES"] <= res.cycles
    assert 0 < c["COMPUTE_BUSY"] < c["CYCLES"] and 0 < c["WEIGHT_PORT_BUSY"] < c["CYCLES"]


def test_latency_changes_cycles_not_tokens():
    """A slower DRAM costs cycles, never output bits."""
    from edgevit_hw.sim.fullframe import run_frames

    print(f"seed {SEED}")
    prep = prepared("micro_moe")
    fast = run_frames(prep, [prep.pixels()], [0], latency=1, waves=False).frames[0]
    slow = run_frames(prep, [prep.pixels()], [0], latency=200, waves=False).frames[0]
    assert np.array_equal(fast.tokens, slow.tokens)
    assert slow.frame_cycles > fast.frame_cycles


def test_next_matrix_job_loads_while_this_one_runs():
    """Cross-job weight prefetch, read off the AXI bursts: a matrix job (or MOE_COMBINE) that
    follows one with rows asks for its first slab (its biases, requantization words or
    weights, whichever it reads first) before the job before it ends; one after any other
    instruction asks only after it starts (the engine looks one instruction ahead)."""
    from edgevit_hw.sim.fullframe import run_frames

    from edgevit_hw.program.isa import NONE, Op

    prep = prepared("micro_moe")
    res = run_frames(prep, [prep.pixels()], [0], waves=False)
    f, insns = res.frames[0], prep.program.insns
    first: dict[int, int] = {}  # image beat -> cycle of the first burst from it
    for cycle, beat, _ in res.bursts:
        first.setdefault(int(beat), int(cycle))

    def slab(ins) -> int | None:  # the cycle of its first slab's first burst; None: no slab
        if ins.OP not in (Op.MATMUL, Op.MOE_COMBINE):
            return None
        segs = (ins.q,) if ins.OP == Op.MOE_COMBINE else (ins.w, ins.b, ins.q)
        asked = [first[s] for s in segs if s != NONE and s in first]
        return min(asked, default=None)

    starts = [f.start, *f.pc_cycles[:-1]]  # instruction i starts after cycle starts[i]
    ahead, behind = [], []
    for i, ins in enumerate(insns):
        asked = slab(ins)
        if asked is None:  # not a matrix job, or an expert no token chose
            continue
        if i and slab(insns[i - 1]) is not None:
            assert asked < starts[i], f"{prep.program.labels[i]} not loaded ahead"
            ahead.append(i)
        else:
            assert asked > starts[i], f"{prep.program.labels[i]} loaded early"
            behind.append(i)
    # fc2, both expert layers of every expert with rows but the first, the combine
    assert len(ahead) >= 4 and len(behind) >= 4, (ahead, behind)


def test_first_difference_names_token_and_column():
    from edgevit_hw.sim.fullframe_trace import first_difference

    want = np.arange(12).reshape(3, 4)
    got = want.copy()
    got[2, 1] = 99
    got[2, 3] = 98
    assert first_difference(want, want) is None
    msg = first_difference(got, want)
    assert msg == "2 output elements differ; first at token 2, column 1: rtl 99, golden 9"


def test_decode_memory_inverts_the_lane_layout():
    """A dumped memory word holds act_lanes elements of the buffer's width, lane 0 lowest."""
    from edgevit_hw.sim.fullframe_trace import decode_memory

    from edgevit_hw.program.isa import Buf

    prep = prepared("odd_moe")
    hw, rng = prep.hw, np.random.default_rng(SEED)
    print(f"seed {SEED}")
    for buf in Buf:
        spec = getattr(hw.buffers, buf.buffer_name)
        rows, cols = spec.shape
        lanes, bits = hw.streams.act_lanes, spec.bits
        wpr = -(-cols // lanes)
        lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if spec.signed else (0, 1 << bits)
        want = rng.integers(lo, hi, (rows, wpr * lanes))
        wbytes = 4 * -(-(lanes * bits) // 32)
        words = []
        for r in range(rows):
            for w in range(wpr):
                v = sum((int(x) & ((1 << bits) - 1)) << (i * bits)
                        for i, x in enumerate(want[r, w * lanes : (w + 1) * lanes]))  # fmt: skip
                words.append(np.frombuffer(v.to_bytes(wbytes, "little"), np.uint8))
        got = decode_memory(hw, buf, np.stack(words))
        assert np.array_equal(got, want[:, :cols]), buf


@pytest.mark.slow
def test_trace_names_the_instruction_that_parts_ways():
    """A weight byte changed in the RTL's DRAM image only: the frame differs from golden and
    the trace names the first instruction that reads it (debug build: VPI memory dumps)."""
    from edgevit_hw.sim.fullframe_trace import trace_mismatch

    from edgevit_hw.program.isa import Op

    print(f"seed {SEED}")
    prep = prepared("micro_moe")
    labels, insns = prep.program.labels, prep.program.insns
    i = next(k for k, ins in enumerate(insns) if labels[k].endswith(".qkv"))
    assert insns[i].OP == Op.MATMUL
    image = bytearray(prep.program.image)
    image[insns[i].w * prep.hw.streams.beat_bytes] ^= 0x55
    msg = trace_mismatch(prep, [prep.pixels()], [0], image=bytes(image))
    assert f"at instruction {i} ({labels[i]}" in msg, msg


def test_a_hang_ends_with_pc_and_status():
    """A DRAM image whose program header is not this hardware's stops the run (STATUS
    bad_program); the bench's pixels then wait forever, and its bounded wait says so."""
    from edgevit_hw.sim.fullframe import SimulationError, run_frames

    from edgevit_hw.program.regmap import STATUS_FIELDS

    print(f"seed {SEED}")
    prep = prepared("micro_moe")
    image = bytearray(prep.program.image)
    image[0] ^= 0xFF  # the header's magic
    with pytest.raises(SimulationError) as err:
        run_frames(prep, [prep.pixels()], [0], waves=False, image=bytes(image))
    bad = next(f.mask for f in STATUS_FIELDS if f.name == "bad_program")
    msg = str(err.value)
    assert "no progress" in msg and "pc 0 (embed.init)" in msg, msg
    assert f"STATUS 0x{bad:x}" in msg, msg
