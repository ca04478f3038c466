"""Where a whole-frame RTL run differs from the golden model (the first differing token) and
where it leaves the program interpreter: the full-frame bench's debug
build (``--vpi --public-flat-rw``, :mod:`edgevit_hw.sim.fullframe`) dumps, after every
instruction of one frame, the activation memories that instruction writes (through VPI, by
their hierarchical names ``TOP.evh_top.core.mem.mem_<buffer>``), and each dump is compared with
the machine :meth:`Interpreter.steps` yields after the same instruction, as the cocotb bench's
Tracer does (sim/bench_top.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from edgevit_hw.sim.fullframe import LATENCY, RunResult, SimulationError, run_frames

from edgevit_hw.core.derive import HwParams
from edgevit_hw.program.isa import written

MEM_SCOPE = "TOP.evh_top.core.mem"  # VPI scope of the activation memories (mem_<buffer>)


def decode_memory(hw: HwParams, buf, words: np.ndarray) -> np.ndarray:
    """A dumped memory (uint8 [depth, word bytes]) as the buffer's elements [rows, cols]."""
    from edgevit_hw.rtl.actmem import row_words

    spec = getattr(hw.buffers, buf.buffer_name)
    rows, cols = spec.shape
    lanes, wpr, bits = hw.streams.act_lanes, row_words(hw, buf), spec.bits
    allbits = np.unpackbits(words, axis=1, bitorder="little")[:, : lanes * bits]
    lane_bits = allbits.reshape(-1, lanes, bits).astype(np.int64)
    vals = lane_bits @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    if spec.signed:
        vals = np.where(vals >> (bits - 1), vals - (1 << bits), vals)
    return vals.reshape(rows, wpr * lanes)[:, :cols]


def read_dumps(path: Path):
    """Records of dump.bin: (pc, memory name, uint8 [words, word bytes])."""
    raw = path.read_bytes() if path.exists() else b""
    pos = 0
    while pos < len(raw):
        pc, n = np.frombuffer(raw, np.uint32, 2, pos)
        name = raw[pos + 8 : pos + 8 + n].decode()
        pos += 8 + int(n)
        words, wbytes = (int(v) for v in np.frombuffer(raw, np.uint32, 2, pos))
        pos += 8
        data = np.frombuffer(raw, np.uint8, words * wbytes, pos).reshape(words, wbytes)
        pos += words * wbytes
        yield int(pc), name, data


def trace_mismatch(prep, frames: list[np.ndarray], tasks: list[int], frame: int = -1,
                   latency: int = LATENCY, image: bytes | None = None) -> str:  # fmt: skip
    """Run ``frames`` up to ``frame`` (default the last) on the debug build, dumping after
    every instruction of that frame's program the memories it writes, and compare them with the
    program interpreter step by step: the first instruction (index, label) whose output
    differs, or a note that every step agreed. ``image`` replaces the DRAM image the RTL reads
    (the interpreter keeps the program's), for tests."""
    from edgevit_hw.program.interpreter import Interpreter
    from edgevit_hw.program.streams import frame_beats, receive

    hw, labels = prep.hw, prep.program.labels
    frame = frame % len(frames)
    pixels, task = frames[frame], tasks[frame]
    interp = Interpreter(prep.program.image, hw)
    lines = [f"dump_frame {frame}", "stop_after_dump 1"]
    for i, insn in enumerate(interp.insns):
        lines += [f"dump {i} {MEM_SCOPE}.mem_{b.buffer_name}" for b in written(insn)]
    res = run_frames(prep, frames[: frame + 1], tasks[: frame + 1], latency, False,
                     debug={"lines": lines}, image=image)  # fmt: skip
    dumps: dict[int, dict[str, np.ndarray]] = {}
    for pc, name, data in read_dumps(res.folder / "dump.bin"):
        dumps.setdefault(pc, {})[name.rsplit(".mem_", 1)[1]] = data
    shutil.rmtree(res.folder, ignore_errors=True)
    patches = receive(frame_beats(pixels, hw), hw).patches
    for i, (insn, m) in enumerate(zip(interp.insns, interp.steps(patches, task), strict=True)):
        for buf in written(insn):
            got = decode_memory(hw, buf, dumps[i][buf.buffer_name])
            want = m.bufs[buf]
            bad = np.argwhere(got != want)
            if len(bad):
                r, c = bad[0]
                return (f"RTL and interpreter part ways at instruction {i} ({labels[i]}: "
                        f"{insn}): {len(bad)} elements of {buf.name} differ, first [{r}, {c}]: "
                        f"rtl {got[r, c]}, interpreter {want[r, c]}")  # fmt: skip
    return ("every instruction's activations agree with the interpreter: a token difference "
            "arises in the output stream (OUTPUT, m_axis)")  # fmt: skip


def first_difference(got: np.ndarray, want: np.ndarray) -> str | None:
    """None when equal, else which output element differs first (token row, column)."""
    if got.shape != want.shape:
        return f"shape {got.shape}, golden {want.shape}"
    bad = np.argwhere(got != want)
    if not len(bad):
        return None
    n, d = bad[0]
    return (f"{len(bad)} output elements differ; first at token {n}, column {d}: "
            f"rtl {got[n, d]}, golden {want[n, d]}")  # fmt: skip


def check_frames(prep, result: RunResult, golden: list[np.ndarray], pixels: list[np.ndarray],
                 trace: bool = True) -> list[str]:  # fmt: skip
    """One message per frame whose tokens differ from ``golden`` (first differing token and,
    with ``trace``, the instruction where the RTL leaves the interpreter, for the first such
    frame only); empty when every frame is bit-exact."""
    errors = []
    for k, (f, want) in enumerate(zip(result.frames, golden, strict=True)):
        diff = first_difference(f.tokens, want)
        if diff is None:
            continue
        msg = f"frame {k} (task {f.task}): {diff}"
        if trace and not errors:
            try:
                tasks = [g.task for g in result.frames]
                msg += "; " + trace_mismatch(prep, pixels, tasks, k, result.latency)
            except SimulationError as e:  # the debug run itself failed: say how
                msg += f"; tracing it failed: {e}"
        errors.append(msg)
    return errors
