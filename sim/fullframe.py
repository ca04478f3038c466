"""Whole frames through the RTL top with no Python per cycle: a Verilator C++ testbench.

``sim/fullframe.cpp`` is the bench's ``main`` over the models of ``sim/topbench.h`` (the same
executable, as ``fullframe serve``, is the host driver's rtl transport: ``sim/serve.h``,
:mod:`edgevit_hw.sim.transport`): a behavioral AXI4 read slave holds the DRAM image
at :data:`BASE` and answers every burst (INCR, ARLEN+1 beats, in order, several outstanding,
RRESP OKAY) with its first beat a fixed ``latency`` cycles (default :data:`LATENCY`) after the AR
handshake, then one beat per cycle; an AXI4-Lite master writes DRAM_BASE, FRAMES, TASK and
CTRL.ap_start and reads the counters back; a pixel source keeps ``s_axis`` fed frame after frame
(TASK of frame k+1 is written when frame k's first pixel is taken, since the hardware reads it at
a frame's first pixel; the top takes frame k+1's pixels while frame k's program runs); a token
sink is always ready. It records the cycle of every ``dbg_pc`` change, so each instruction's
cycles are known, and every wait is bounded (a hang ends with an error naming the pc, its label
and STATUS). Its speed is that of the Verilated model (two evaluations per cycle; the bench's own
work is under 2% of a profile; the top's registered reset keeps the next-state logic out of the
evaluation of input changes): 75-90 k cycles/s for m3vit and about 220 k for micro_moe on one
core of these machines. Verilator evaluates every module on every cycle, busy or idle:
``benchmarks/sim_profile.py`` shows where an m3vit cycle's time goes, module by module.

Builds are cached like :mod:`edgevit_hw.sim.runner` does, in ``build/rtl/fullframe-<variant>-
<spec>-<key>`` keyed by the derived parameters, the RTL sources and the flags; a changed harness
is recompiled and relinked in place (its digest is stamped in the folder). Variants: ``fast``
(the default), ``waves`` (``--trace-fst``; chosen by ``waves=True`` or the environment's
``WAVES=1``; the FST is written as ``waves.fst`` in the run folder, optionally only cycles
``EVH_WAVES_FROM``..``EVH_WAVES_TO``) and ``debug`` (``--vpi --public-flat-rw``: the
activation memories are dumped after each instruction and compared with
:meth:`Interpreter.steps`, see :mod:`edgevit_hw.sim.fullframe_trace`).

Per-instruction cycles of a frame (:class:`FrameRun`): frame k's program is the k-th time
``dbg_pc`` steps 1, 2, ..., insns; it starts when pc goes back to 0 (for the first program,
whose pc is 0 from reset, at the last pixel). ``wait`` runs from the first pixel through that
start (the pixels, plus the previous program when frames stream in back to back); instruction
0 from the start until pc becomes 1, instruction i until pc becomes i+1; ``tail`` is what
FRAME_CYCLES counts beyond the last instruction, so ``wait + sum(insn_cycles) + tail ==
frame_cycles``, the FRAME_CYCLES register read for that frame (first pixel to last token).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from edgevit_hw.sim.runner import waves_requested

from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.errors import EdgeVitError
from edgevit_hw.program import regmap
from edgevit_hw.program.perf import DRAM_LATENCY
from edgevit_hw.progress import step

BASE = 0x10000  # byte address of the DRAM image (nonzero on purpose)
LATENCY = DRAM_LATENCY  # cycles from an AR handshake to the burst's first R beat
HARNESS = "fullframe.cpp"
HARNESS_FILES = (HARNESS, "topbench.h", "serve.h")  # the bench's C++ (one translation unit)
# -O1: g++ -O2 spends minutes on each of Verilator's 10k-line functions of the top (313 s against
# 8.8 s at -O1 for one of m3vit's files) for about 10% of simulation speed.
CXX_OPT = "-O1"
# --threads 1: a --threads 2 model of micro_moe ran 228 k cycles in 115 s against 1.35 s (the
# two threads meet twice per cycle); parallel runs use the cores instead (run_parallel).
VL_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--threads", "1")
VARIANTS = {  # variant: (verilator flags, C++ defines)
    "fast": ((), ()),
    "waves": (("--trace-fst",), ("-DEVH_FST",)),
    "debug": (("--vpi", "--public-flat-rw"), ("-DEVH_VPI",)),
}


class SimulationError(EdgeVitError):
    """The full-frame simulation failed (hang, protocol error or a build failure)."""


def harness_path() -> Path:
    return Path(str(resources.files("edgevit_hw.sim") / HARNESS))


def harness_digest() -> str:
    """The digest of every C++ file of the bench (a change relinks the model's folder)."""
    h = hashlib.sha256()
    for name in HARNESS_FILES:
        h.update((harness_path().parent / name).read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------- build ----


def build_dir(hw: HwParams, variant: str) -> Path:
    """The model's build folder: keyed by the derived parameters, the RTL sources, the lint
    waivers, the variant and the flags. The harness is not in the key: a changed harness is
    recompiled and relinked by make in the same folder (:func:`build`), not the whole model."""
    from edgevit_hw.sim.runner import BUILD, LINT_VLT, _source_digest

    vl, defs = VARIANTS[variant]
    salt = [hw.to_json(), _source_digest(), LINT_VLT.read_text(), " ".join(VL_FLAGS + vl + defs),
            _makeflags()]  # fmt: skip
    key = hashlib.sha256("\0".join(salt).encode()).hexdigest()[:12]
    return BUILD / f"fullframe-{variant}-{hw.spec_name}-{key}"


def _makeflags() -> str:
    """The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (see sim/runner.py); the model
    is compiled with CXX_OPT, its run-once (``Slow``) code without optimization."""
    opt = os.environ.get("EVH_FF_OPT", CXX_OPT)
    return f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_SLOW=-O0 OPT_GLOBAL={opt}"


def build(hw: HwParams, variant: str = "fast", jobs: int = 2) -> Path:
    """The bench executable for ``hw``: Verilated and compiled once per build folder; when only
    the harness changed since, make recompiles it and relinks. Returns the executable."""
    from edgevit_hw.sim.runner import _locked, export, verilator_env

    if variant == "waves" and not Path("/usr/include/lz4.h").exists():
        raise SimulationError("WAVES=1 needs Verilator's FST writer, which needs lz4.h: "
                              "apt-get install liblz4-dev (make sim WAVES=1 does)")  # fmt: skip
    folder = build_dir(hw, variant)
    exe, stamp = folder / "obj" / "fullframe", folder / "harness.sha256"
    digest = harness_digest()
    if is_built(hw, variant):
        return exe
    vfile, _ = export("top", hw, folder)  # takes the folder's lock itself
    with _locked(folder):
        if is_built(hw, variant):
            return exe
        env = {**os.environ, **verilator_env(), "MAKEFLAGS": _makeflags()}
        fresh = not (folder / "verilated").exists()
        make = ["make", "-C", str(folder / "obj"), "-f", "Vtop.mk", f"-j{jobs}", "fullframe"]
        t0 = time.perf_counter()
        what = "compiling" if fresh else "relinking"
        with step(f"{what} the full-frame bench of {hw.spec_name} ({variant}) with Verilator"):
            if fresh:
                _checked(folder, [_verilator_cmd(folder, vfile, variant)], env)
                (folder / "verilated").touch()
            t1 = time.perf_counter()
            _checked(folder, [make], env)
        if fresh:
            times = f"{time.perf_counter() - t0:.1f} {t1 - t0:.1f}\n"  # total, verilating
            (folder / "build_seconds").write_text(times)
        stamp.write_text(digest)
    return exe


def start_build(hw: HwParams, variant: str = "fast") -> subprocess.Popen | None:
    """:func:`build` in a background process (so a report can compute other sections
    meanwhile); None when already built. Wait for the process, then call :func:`build`, which
    returns the executable at once, or builds and raises with the log if the background build
    failed."""
    from edgevit_hw.rtl.params import write_hw_json

    if is_built(hw, variant):
        return None
    folder = build_dir(hw, variant)
    js = write_hw_json(hw, folder / "derived.json")
    cmd = [sys.executable, "-m", "edgevit_hw.sim.fullframe", str(js), variant]
    with open(folder / "background.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def is_built(hw: HwParams, variant: str = "fast") -> bool:
    """The bench of ``hw`` is compiled, from the current RTL and harness."""
    folder = build_dir(hw, variant)
    stamp = folder / "harness.sha256"
    return (
        (folder / "obj" / "fullframe").exists()
        and stamp.exists()
        and stamp.read_text() == harness_digest()
    )


def _checked(folder: Path, cmds: list[list[str]], env: dict) -> None:
    """Run build commands in order, appending to build.log; raise with the log's tail."""
    log = folder / "build.log"
    for cmd in cmds:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        with open(log, "a") as fh:
            fh.write(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        if proc.returncode:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise SimulationError(f"the bench build failed (log {log}):\n{tail}")


def _verilator_cmd(folder: Path, vfile: Path, variant: str) -> list[str]:
    """Verilate only (make compiles, one object per file: no --build, whose -j concatenates
    the model's files into as many groups as jobs, leaving one huge file on one core)."""
    from edgevit_hw.sim.runner import LINT_VLT

    vl, defs = VARIANTS[variant]
    return ["verilator", "--cc", "--exe", "-Wno-fatal",
            "--top-module", "evh_top", "--prefix", "Vtop", "-o", "fullframe",
            "-Mdir", str(folder / "obj"), *VL_FLAGS, *vl,
            "-CFLAGS", " ".join(("-std=c++17", *defs)),
            str(LINT_VLT), str(vfile), str(harness_path())]  # fmt: skip


def build_seconds(hw: HwParams, variant: str = "fast") -> tuple[float, float] | None:
    """(total, verilating) wall seconds of the build that made the cached executable (None if
    it was not built here)."""
    f = build_dir(hw, variant) / "build_seconds"
    if not f.exists():
        return None
    total, verilate = (float(x) for x in f.read_text().split())
    return total, verilate


# ---------------------------------------------------------------------- results ----


@dataclass
class FrameRun:
    """One frame as the bench saw it (cycles numbered by the rising edge that ends them)."""

    task: int
    tokens: np.ndarray  # [tokens, embed_dim] as received on m_axis
    first_pixel: int
    last_pixel: int
    last_token: int
    frame_cycles: int  # the FRAME_CYCLES register for this frame
    start: int  # the program's start: dbg_pc back to 0, or the last pixel (first program)
    pc_cycles: np.ndarray  # [insns]: cycle at which dbg_pc became i + 1

    @property
    def frame_in(self) -> int:
        """Cycles from the first pixel through the last."""
        return self.last_pixel - self.first_pixel + 1

    @property
    def wait(self) -> int:
        """Cycles from the first pixel through the program's start: the pixels, and the wait
        for the previous frame's program when frames stream in back to back."""
        return self.start - self.first_pixel + 1

    @property
    def program_cycles(self) -> int:
        return int(self.pc_cycles[-1]) - self.start

    @property
    def insn_cycles(self) -> np.ndarray:
        """Cycles of every instruction (see the module docstring)."""
        return np.diff(np.concatenate([[self.start], self.pc_cycles]))

    @property
    def tail(self) -> int:
        """What FRAME_CYCLES counts past the last instruction."""
        return self.frame_cycles - (int(self.pc_cycles[-1]) - self.first_pixel + 1)


@dataclass
class RunResult:
    frames: list[FrameRun]
    counters: dict[str, int]  # every regmap counter read at the end (64-bit ones combined)
    cycles: int  # simulated cycles of the run, reset included
    wall_s: float  # simulation time (the C++ loop, build and file I/O excluded)
    cpu_s: float  # its processor time (the wall time on an unloaded core)
    folder: Path  # the run folder (job, outputs, waves.fst when dumped)
    waves: Path | None = None
    warnings: list[str] = field(default_factory=list)
    latency: int = LATENCY  # the DRAM read latency the run modeled
    # [bursts, 3]: per AXI read burst accepted, its cycle, first beat in the image and beats
    bursts: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / max(self.wall_s, 1e-9)

    @property
    def cycles_per_cpu_s(self) -> float:
        """Speed on a core of its own (independent of other processes' load)."""
        return self.cycles / max(self.cpu_s, 1e-9)


# ------------------------------------------------------------------------- run ----


def _job_lines(prep, beats: list[np.ndarray], tasks: list[int], out: Path, latency: int,
               waves: Path | None, limits: tuple[int, int]) -> list[str]:  # fmt: skip
    hw, a = prep.hw, prep.hw.arith
    lines = [f"image {out / 'image.bin'}", f"beats {out / 'beats.bin'}", f"out {out}",
             f"base {BASE}", f"latency {latency}", f"port_bytes {hw.streams.beat_bytes}",
             f"pixels_per_beat {hw.streams.pixels_per_beat}", f"token_bits {hw.streams.token_bits}",
             f"tokens_per_beat {hw.streams.tokens_per_beat}",
             f"tokens_per_frame {a.tokens * a.embed_dim}",
             f"insns {len(prep.program.insns)}", f"max_cycles {limits[0]}",
             f"stall_limit {limits[1]}", f"ctrl_idle_mask {_ctrl_mask('ap_idle')}"]  # fmt: skip
    lines += [f"reg {r.name} {r.offset}" for r in regmap.registers(hw)]
    lines += [f"counter {n}" for n in counter_regs(hw)]
    lines += [f"frame {t} {len(b)}" for t, b in zip(tasks, beats, strict=True)]
    if waves:
        lines.append(f"waves {waves}")
        lines += [f"{k} {os.environ[e]}" for k, e in
                  (("waves_from", "EVH_WAVES_FROM"), ("waves_to", "EVH_WAVES_TO"))
                  if os.environ.get(e)]  # fmt: skip
    return lines


def _ctrl_mask(name: str) -> int:
    return next(f.mask for f in regmap.CTRL_FIELDS if f.name == name)


def counter_regs(hw: HwParams) -> list[str]:
    """Registers read at the end of a run, LO before HI."""
    names = ["CYCLES_LO", "CYCLES_HI", "FRAMES_OK", "FRAMES_DROPPED", "STATUS", "SPEC_ID"]
    for unit in regmap.COUNTED_UNITS:
        for kind in ("BUSY", "STALL"):
            names += [f"{unit.upper()}_{kind}_LO", f"{unit.upper()}_{kind}_HI"]
    return names


def _limits(prep, frames: int) -> tuple[int, int]:
    """(max cycles of the run, max cycles without progress) from the cycle model."""
    from edgevit_hw.program.perf import estimate

    rep = estimate(prep.program)
    longest = max(c.cycles for c in rep.costs)
    return frames * (6 * rep.total + 200_000) + 100_000, 8 * longest + 100_000


def run_frames(prep, frames: list[np.ndarray], tasks: list[int], latency: int = LATENCY,
               waves: bool | None = None, out: Path | None = None,
               debug: dict | None = None, image: bytes | None = None,
               wrapper: tuple[str, ...] = ()) -> RunResult:  # fmt: skip
    """Run ``frames`` (uint8 [C, H, W] each) with ``tasks`` through the top in one run of
    len(frames) frames (``image``: another DRAM image than the program's, for tests;
    ``wrapper``: a command the bench runs under, such as a profiler's);
    ``waves`` (default: ``WAVES=1`` in the environment) dumps an FST in the
    run folder ``out`` (default: a new folder under the build folder, removed after a run that
    went well unless it holds waves). ``debug`` (internal, see
    :mod:`edgevit_hw.sim.fullframe_trace`) adds memory dumps and uses the VPI build. Raises
    :class:`SimulationError` on a hang, naming the pc, its label and STATUS."""
    waves = waves_requested() if waves is None else waves
    exe = build(prep.hw, "debug" if debug else "waves" if waves else "fast")
    job = _write_job(prep, frames, tasks, latency, waves, out, exe, debug, image)
    with step(f"simulating {len(frames)} frame(s) of {prep.hw.spec_name} (Verilator, C++ bench)"):
        proc = _simulate(exe, job, wrapper)
    res = _read_result(prep, job.parent, proc, waves, bool(debug), latency)
    if out is None and not (waves or debug):  # a temporary folder of a run that went well
        shutil.rmtree(job.parent, ignore_errors=True)
    return res


def run_parallel(prep, runs: list[tuple[list[np.ndarray], list[int]]], latency: int = LATENCY,
                 waves: bool | None = None, out: Path | None = None,
                 jobs: int | None = None) -> list[RunResult]:  # fmt: skip
    """Independent runs ``[(frames, tasks)]`` (as :func:`run_frames`) as parallel processes, at
    most ``jobs`` (default: the CPU count) at a time; run i's folder is ``out/run<i>``."""
    from concurrent.futures import ThreadPoolExecutor

    waves = waves_requested() if waves is None else waves
    exe = build(prep.hw, "waves" if waves else "fast")
    base = Path(out) if out else None
    files = [_write_job(prep, f, t, latency, waves, base / f"run{i}" if base else None, exe)
             for i, (f, t) in enumerate(runs)]  # fmt: skip
    jobs = jobs or os.cpu_count() or 1
    what = f"simulating {len(runs)} runs of {prep.hw.spec_name} ({jobs} at a time, Verilator)"
    with step(what), ThreadPoolExecutor(jobs) as pool:
        procs = list(pool.map(lambda job: _simulate(exe, job), files))
    results = [_read_result(prep, job.parent, proc, waves, False, latency)
               for job, proc in zip(files, procs, strict=True)]  # fmt: skip
    if out is None and not waves:
        for job in files:
            shutil.rmtree(job.parent, ignore_errors=True)
    return results


def _write_job(prep, frames, tasks, latency, waves, out, exe, debug=None, image=None) -> Path:
    """The run folder's inputs (DRAM image, beats, job file); returns the job file."""
    from edgevit_hw.program.streams import frame_beats

    out = Path(out or tempfile.mkdtemp(prefix="run-", dir=exe.parent.parent)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    beats = [frame_beats(f, prep.hw) for f in frames]
    (out / "image.bin").write_bytes(bytes(prep.program.image if image is None else image))
    (out / "beats.bin").write_bytes(b"".join(np.ascontiguousarray(b, np.uint8).tobytes()
                                             for b in beats))  # fmt: skip
    for old in ("result.json", "dump.bin", "waves.fst"):
        (out / old).unlink(missing_ok=True)
    fst = out / "waves.fst" if waves else None
    lines = _job_lines(prep, beats, list(tasks), out, latency, fst, _limits(prep, len(frames)))
    lines += (debug or {}).get("lines", [])
    (out / "job.txt").write_text("\n".join(lines) + "\n")
    return out / "job.txt"


def _simulate(exe: Path, job: Path, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*wrapper, str(exe), str(job)], capture_output=True, text=True)


def _read_result(prep, out: Path, proc, waves: bool, partial: bool, latency: int) -> RunResult:
    """The run's outputs; ``partial``: a debug run that stopped after its last dump (no
    frames are parsed)."""
    res_file = out / "result.json"
    if not res_file.exists():
        raise SimulationError(f"the bench ended with status {proc.returncode} and no result "
                              f"({out}): {proc.stderr.strip()[-2000:]}")  # fmt: skip
    res = json.loads(res_file.read_text())
    if res["error"]:
        pc = int(res["pc"])
        labels = prep.program.labels
        where = f"pc {pc} ({labels[pc]})" if pc < len(labels) else f"pc {pc} (end of program)"
        raise SimulationError(f"full-frame simulation failed at {where}: "
                              f"{_name_status(res['error'])} (run folder {out})")  # fmt: skip
    a = prep.hw.arith
    toks = np.fromfile(out / "tokens.bin", np.int32).astype(np.int64)
    pcs = np.fromfile(out / "pc.bin", np.uint64).astype(np.int64).reshape(-1, 2)
    bursts = np.fromfile(out / "bursts.bin", np.int64).reshape(-1, 3)
    frames: list[FrameRun] = []
    per = a.tokens * a.embed_dim
    progs = programs(pcs, len(prep.program.insns))
    if partial:
        return RunResult(frames, _combine(res["counters"]), res["cycles"], res["wall_s"],
                         res["cpu_s"], out, latency=latency, bursts=bursts)  # fmt: skip
    if len(progs) != len(res["frames"]):
        raise SimulationError(f"{len(res['frames'])} frames sent, {len(progs)} programs ran "
                              f"(run folder {out})")  # fmt: skip
    for k, (f, (start, trace)) in enumerate(zip(res["frames"], progs, strict=True)):
        tk = toks[k * per : (k + 1) * per].reshape(a.tokens, a.embed_dim)
        start = f["last_pixel"] if start is None else start
        frames.append(FrameRun(f["task"], tk, f["first_pixel"], f["last_pixel"],
                               f["last_token"], f["frame_cycles"], start, trace))  # fmt: skip
    fst = out / "waves.fst" if waves else None
    return RunResult(frames, _combine(res["counters"]), res["cycles"], res["wall_s"],
                     res["cpu_s"], out, fst, res["warnings"] + _oob(res), latency,
                     bursts)  # fmt: skip


def _name_status(text: str) -> str:
    """``STATUS 0x..`` in the bench's message, followed by the names of its bits."""
    import re

    def named(m: re.Match) -> str:
        v = int(m.group(1), 16)
        names = [f.name for f in regmap.STATUS_FIELDS if v & f.mask]
        return f"{m.group(0)} ({', '.join(names) or 'no error bit'})"

    return re.sub(r"STATUS 0x([0-9a-f]+)", named, text)


def _oob(res: dict) -> list[str]:
    n = res["oob_beats"]
    return [f"{n} DRAM beats were read outside the image"] if n else []


def programs(pcs: np.ndarray, insns: int) -> list[tuple[int | None, np.ndarray]]:
    """The programs in the ``dbg_pc`` changes [(cycle, value)]: per program, the cycle it
    started (pc back to 0; None for a first program, whose pc was already 0) and the cycles at
    which pc became 1, 2, ..., ``insns`` (it must step through every value in order)."""
    out: list[tuple[int | None, np.ndarray]] = []
    start, cur = None, []
    for cyc, pc in pcs.tolist():
        if pc == 0 and not cur:
            start = cyc
            continue
        if pc != len(cur) + 1:
            raise SimulationError(f"program {len(out)}: dbg_pc went from {len(cur)} to {pc} at "
                                  f"cycle {cyc} (expected {len(cur) + 1})")  # fmt: skip
        cur.append(cyc)
        if pc == insns:
            out.append((start, np.array(cur, np.int64)))
            start, cur = None, []
    return out


def _combine(raw: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, v in raw.items():
        if name.endswith("_HI"):
            continue
        if name.endswith("_LO"):
            out[name[:-3]] = v | raw.get(name[:-3] + "_HI", 0) << 32
        else:
            out[name] = v
    return out


# ------------------------------------------------------------------- grouping ----


def layer_key(label: str) -> str:
    """The per-layer group of an instruction label (as ``PerfReport.by_layer``): ``embed``,
    ``blocks.i``, ``head``."""
    if label.startswith("blocks."):
        return ".".join(label.split(".")[:2])
    if label.startswith("embed") or label == "program":
        return "embed"
    return "head" if label in ("norm", "output") else label


def kind_key(label: str) -> str:
    """The instruction kind of a label across blocks: ``qkv``, ``attn`` (all heads), ``efc1``
    (all experts), ...; ``embed.*``, ``norm`` and ``output`` stay themselves."""
    parts = label.split(".")
    return parts[2] if label.startswith("blocks.") else label


def group_cycles(labels, cycles, key=layer_key) -> dict[str, int]:
    out: dict[str, int] = {}
    for lab, c in zip(labels, cycles, strict=True):
        out[key(lab)] = out.get(key(lab), 0) + int(c)
    return out


if __name__ == "__main__":  # the background build of start_build: DERIVED_JSON VARIANT
    from edgevit_hw.rtl.params import read_hw_json

    if len(sys.argv) != 3 or sys.argv[2] not in VARIANTS:
        sys.exit(f"usage: python -m edgevit_hw.sim.fullframe DERIVED_JSON {{{','.join(VARIANTS)}}}")
    build(read_hw_json(sys.argv[1]), sys.argv[2])
