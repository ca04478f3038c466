"""C-simulation backend: compile the generated HLS project with g++ and run it from Python.

The project is compiled with ``g++ -std=c++14 -O2 -Wall -Wextra -Werror`` against the
``ap_types`` headers inside the installed ``hls4ml`` wheel (never copied). Binaries are cached
by the SHA-256 of every source file plus the compiler command, so a spec is compiled once and
reused by every test and run; the weight image and inputs are read at run time.

``python -m edgevit_hw.csim --config <preset> [--task T] [--image IMG | --random SEED]
[--calib DIR|NPZ] [--weights W] [--out DIR]`` compiles the project, runs one frame per task and
compares it with the golden model.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from edgevit_hw.hls.emit import kernel_sources, render_sources

from edgevit_hw.core.derive import derive
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.program.streams import frame_beats

CXX = os.environ.get("CXX", "g++")
CXXFLAGS = ["-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror"]
RUN_TIMEOUT_S = 900  # a C-simulation never legitimately runs this long
CACHE = Path(os.environ.get("EVH_CSIM_CACHE", "build/csim_cache"))  # relative: the cwd


def ap_types_dir() -> Path:
    """``<hls4ml package>/templates/vivado/ap_types`` of the installed wheel."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the hls4ml package is required for C-simulation (pip install hls4ml)")
    path = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise RuntimeError(f"ap_int.h not found in {path}")
    return path


@dataclass
class Binary:
    """A compiled testbench, how long its compilation took (0 when cached) and ``weights``: the
    weight image of the quantized model it was built for, which :func:`build` wrote or verified
    and every run uses unless told otherwise."""

    path: Path
    project: Path
    compile_s: float
    cached: bool
    weights: Path


@dataclass
class CsimResult:
    """Output of one call of the top function (one or more frames)."""

    frames: list[np.ndarray]  # output tokens [N, D] per frame that produced output
    status: int
    frames_ok: int
    frames_bad: int
    spec_id: int
    cycles: int
    run_s: float
    dumps: dict[str, np.ndarray] = field(default_factory=dict)


def _compile_cmd(project: Path, out: Path, defines: tuple[str, ...]) -> list[str]:
    return [
        CXX, *CXXFLAGS, *(f"-D{d}" for d in defines), "-isystem", str(ap_types_dir()),
        f"-I{project}", f"-I{project / 'include'}",
        str(project / "evh_top.cpp"), str(project / "evh_tb.cpp"), "-o", str(out),
    ]  # fmt: skip


def build(qm: QuantModel, hw, defines: tuple[str, ...] = ()) -> Binary:
    """Render the project (sources + weight image) into the cache and compile it once. The
    binary is keyed by its sources, the weight image by the SHA-256 of its bytes (so by the
    quantized model); the returned Binary names the image of ``qm``, written or verified."""
    from edgevit_hw.program.compiler import compile_program

    program = compile_program(qm, hw)
    sources, image = render_sources(program), program.image
    kernels = kernel_sources()
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + sources[name].encode())
    for name, data in kernels.items():
        h.update(name.encode() + data)
    h.update(" ".join(CXXFLAGS + list(defines) + [CXX]).encode())
    key = h.hexdigest()[:20]
    project = CACHE / f"{qm.spec.name}-{key}"
    exe = project / "evh_csim"
    weights = _weights(project, image)
    if exe.exists():
        return Binary(exe, project, 0.0, True, weights)
    with open(project / ".lock", "w") as lock:  # parallel test workers compile only once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists():
            return Binary(exe, project, 0.0, True, weights)
        path, dt = _compile(project, sources, kernels, defines)
        return Binary(path, project, dt, False, weights)


def _weights(project: Path, image: bytes) -> Path:
    """``project/weights-<sha256 of image>.bin`` holding exactly ``image``: written when absent
    or when its bytes differ (a torn or tampered file)."""
    path = project / f"weights-{hashlib.sha256(image).hexdigest()[:16]}.bin"
    project.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_bytes() != image:
        _atomic_write(path, image)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _compile(project: Path, sources: dict[str, str], kernels: dict[str, bytes],
             defines) -> tuple[Path, float]:  # fmt: skip
    """Write the sources and compile them; returns (executable, seconds)."""
    (project / "include").mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        _atomic_write(project / name, text.encode())
    for name, data in kernels.items():
        _atomic_write(project / "include" / name, data)
    fd, tmp = tempfile.mkstemp(dir=project, prefix=".evh_csim.")
    os.close(fd)
    t0 = time.perf_counter()
    res = subprocess.run(_compile_cmd(project, Path(tmp), defines), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"g++ failed for {project}:\n{res.stderr[-6000:]}")
    os.replace(tmp, project / "evh_csim")
    return project / "evh_csim", dt


def run_beats(binary: Binary, beats: np.ndarray, task: int, frames: int, shape: tuple[int, int],
              weights: Path | None = None, dump_dir: Path | None = None,
              timeout: float = RUN_TIMEOUT_S) -> CsimResult:  # fmt: skip
    """Run the top function once on raw AXI4-Stream beats (uint8 [B, pixels_per_beat + 1]:
    the beat's pixels, tlast), with
    the weight image ``weights`` (default: the one ``binary`` was built with); a run longer
    than ``timeout`` seconds raises ``subprocess.TimeoutExpired``."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        inp.write_bytes(np.ascontiguousarray(beats, np.uint8).tobytes())
        env = dict(os.environ)
        if dump_dir is not None:
            env["EVH_DUMP_DIR"] = str(dump_dir)
        cmd = [str(binary.path), str(weights or binary.weights), str(inp), str(outp),
               str(task), str(frames)]  # fmt: skip
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        dt = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"C-simulation failed ({res.returncode}): {res.stderr[-3000:]}")
        return _parse(outp.read_bytes(), shape, dt)


def _parse(data: bytes, shape: tuple[int, int], run_s: float) -> CsimResult:
    head = np.frombuffer(data[:16], "<u4")
    cycles, nbeats = (int(x) for x in np.frombuffer(data[16:32], "<u8"))
    vals = np.frombuffer(data[32 : 32 + 4 * nbeats], "<i4").astype(np.int64)
    lasts = np.frombuffer(data[32 + 4 * nbeats : 32 + 5 * nbeats], np.uint8)
    ends = np.flatnonzero(lasts) + 1
    frames, start = [], 0
    for end in ends:
        frame = vals[start:end]
        if frame.size != shape[0] * shape[1]:
            raise RuntimeError(
                f"output frame of {frame.size} beats, expected {shape[0] * shape[1]}"
            )
        frames.append(frame.reshape(shape))
        start = end
    if start != nbeats:
        raise RuntimeError("output stream ends without tlast")
    return CsimResult(frames, int(head[0]), int(head[1]), int(head[2]), int(head[3]), cycles, run_s)


def run_frame(binary: Binary, qm: QuantModel, pixels: np.ndarray, task: int = 0,
              dump_dir: Path | None = None, weights: Path | None = None) -> CsimResult:  # fmt: skip
    """One well-formed frame; with ``dump_dir`` (a -DEVH_DUMP binary) the per-layer dumps are
    returned in ``dumps``, named and shaped like ``golden_forward(..., trace=True).trace``."""
    m = qm.spec.model
    res = run_beats(binary, frame_beats(pixels, derive(qm.spec)), task, 1, (m.tokens, m.embed_dim),
                    weights=weights, dump_dir=dump_dir)  # fmt: skip
    if dump_dir is not None:
        res.dumps = load_dumps(dump_dir, qm)
    return res


def load_dumps(folder: Path, qm: QuantModel) -> dict[str, np.ndarray]:
    """Dump files -> trace names; ``blocks.i.qkv`` [N, 3D] splits into q, k, v [H, N, dh]."""
    m = qm.spec.model
    n, h, dh = m.tokens, m.heads, m.head_dim
    out = {}
    for f in sorted(folder.glob("*.bin")):
        arr = np.fromfile(f, "<i8")
        name = f.name[:-4]
        if name.endswith(".qkv"):
            q, k, v = arr.reshape(n, 3, h, dh).transpose(1, 2, 0, 3)
            for tag, val in (("q", q), ("k", k), ("v", v)):
                out[name[:-3] + tag] = val
        else:
            out[name] = arr.reshape(n, -1)
    return out


def first_difference(golden: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> str | None:
    """The first tensor (in golden execution order) whose dump differs: name, index, values."""
    for name, ref in golden.items():
        if name not in got:
            continue
        val = got[name]
        if val.shape != ref.shape:
            return f"{name}: shape {val.shape} differs from golden {ref.shape}"
        bad = np.argwhere(val != ref)
        if len(bad):
            i = tuple(int(x) for x in bad[0])
            return (f"{name}: first difference at index {i}: csim {int(val[i])}, golden"
                    f" {int(ref[i])} ({len(bad)} of {ref.size} differ)")  # fmt: skip
    return None


def diagnose(qm: QuantModel, hw, pixels: np.ndarray, task: int) -> str:
    """Debug mode: rebuild with -DEVH_DUMP, run the frame, and name the first intermediate
    tensor (golden trace order) that differs, with its index and both values."""
    from edgevit_hw.core.golden import golden_forward

    binary = build(qm, hw, ("EVH_DUMP",))
    with tempfile.TemporaryDirectory() as tmp:
        res = run_frame(binary, qm, pixels, task, dump_dir=Path(tmp))
    msg = first_difference(golden_forward(qm, pixels, task, trace=True).trace, res.dumps)
    return msg or "every dumped intermediate tensor matches the golden trace"


def section_csim(ctx: dict, con) -> None:
    """``make sim`` report section: the C-simulation of every task on the report's image,
    compared bit for bit with the golden model."""
    from rich.table import Table

    from edgevit_hw.core.golden import golden_forward
    from edgevit_hw.progress import step

    prep, img = ctx["prep"], ctx["image"]
    with step(f"compiling the C-simulation of {prep.spec.name} (g++ -O2)"):
        binary = build(prep.qmodel, prep.hw)
    how = "cached binary" if binary.cached else f"compiled in {binary.compile_s:.1f} s"
    table = Table(title=f"HLS C-simulation (g++ -O2, {how}) vs golden model")
    for col in ("task", "time/frame", "modeled cycles", f"ms @ {prep.hw.clock_mhz:g} MHz",
                "spec id", "result"):  # fmt: skip
        table.add_column(col)
    for t, task in enumerate(prep.spec.tasks):
        gold = ctx.get("golden", {}).get(t)
        gold = golden_forward(prep.qmodel, img, t).tokens if gold is None else gold
        with step(f"C-simulation of {prep.spec.name}, task {task}"):
            res = run_frame(binary, prep.qmodel, img, t)
        same = len(res.frames) == 1 and np.array_equal(res.frames[0], gold)
        table.add_row(
            task, f"{res.run_s:.2f} s", str(res.cycles),
            f"{res.cycles / (prep.hw.clock_mhz * 1e3):.2f} (assumed clock)",
            f"0x{res.spec_id:08x}", "BIT-EXACT" if same else "[red]MISMATCH[/]",
        )  # fmt: skip
    con.print(table)


def _check_same_sources(compiled: Path, generated: Path) -> None:
    """The compiled project must be the generated one, file for file."""
    for f in sorted(generated.glob("*.cpp")) + sorted(generated.rglob("*.h")):
        rel = f.relative_to(generated)
        if (compiled / rel).read_bytes() != f.read_bytes():
            raise RuntimeError(f"{f} differs from the compiled {compiled / rel}")


def main(argv: list[str] | None = None) -> int:
    """``python -m edgevit_hw.csim``: a bad input is one line and exit status 2 (checked before
    anything runs); a failed compilation or simulation prints its message and exits 1."""
    from edgevit_hw.cli import add_model_args
    from edgevit_hw.core.errors import CliParser, run_cli

    ap = CliParser(prog="python -m edgevit_hw.csim", description=__doc__.split("\n\n")[0])
    add_model_args(ap)
    ap.add_argument("--task", help="task index or name (default: every task)")
    ap.add_argument("--random", type=int, default=None, help="seeded random pixels instead")
    ap.add_argument("--out", default=None, help="also generate the project (gen) into OUT")
    return run_cli(_main, ap, argv, tool_failures=True)


def _main(args) -> int:
    from edgevit_hw.cli import task_indices
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import check_out, generate, prepare
    from edgevit_hw.progress import step

    out = check_out(Path(args.out)) if args.out else None
    spec = load_spec(args.config)
    tasks = task_indices(spec, args.task)
    prep = prepare(spec, args.weights, args.calib, args.image)
    print(f"{spec.name}: {_weights_label(prep.qmodel)}; calibration: {prep.qmodel.calibration}")
    if out:
        generate(prep, out)
        print(f"{spec.name}: generated {out} (HLS project in {out / 'hls'})")
    with step(f"compiling the C-simulation of {spec.name} (g++ -O2)"):
        binary = build(prep.qmodel, prep.hw)
    if out:
        _check_same_sources(binary.project, out / "hls")
    print(f"{spec.name}: compiled in {binary.compile_s:.1f} s" if not binary.cached
          else f"{spec.name}: cached binary {binary.path}")  # fmt: skip
    px, label = _frame(prep, args.random)
    return 1 if sum(not _simulate(binary, prep, px, label, t) for t in tasks) else 0


def _weights_label(qm: QuantModel) -> str:
    return "SYNTHETIC weights" if qm.synthetic else f"weights {qm.source}"


def _frame(prep, seed: int | None) -> tuple[np.ndarray, str]:
    from edgevit_hw.ml.images import random_pixels

    if seed is None:
        return prep.pixels(), f"image {prep.frame_name}"
    return random_pixels(prep.spec, seed), f"random pixels seed {seed}"


def _simulate(binary: Binary, prep, px: np.ndarray, label: str, t: int) -> bool:
    """One frame of task ``t`` in the C-simulation against the golden model; prints a line."""
    from edgevit_hw.core.golden import golden_forward
    from edgevit_hw.progress import step

    task = prep.spec.tasks[t]
    with step(f"C-simulation of {prep.spec.name}, task {task}, {label}"):
        res = run_frame(binary, prep.qmodel, px, t)
    gold = golden_forward(prep.qmodel, px, t).tokens
    same = len(res.frames) == 1 and np.array_equal(res.frames[0], gold)
    verdict = "BIT-EXACT" if same else "MISMATCH"
    print(f"  task {t} ({task}), {label}: {res.run_s:.2f} s, {res.cycles} modeled cycles,"
          f" spec id 0x{res.spec_id:08x}: {verdict} vs golden")  # fmt: skip
    return same


if __name__ == "__main__":
    sys.exit(main())
