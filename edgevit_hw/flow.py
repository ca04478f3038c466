"""The generator flow: spec -> quantized model -> golden vectors -> files in an output folder.

This is the only module (with the emitters it calls) that writes files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.errors import InputError
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import Spec, generated_line
from edgevit_hw.ml.images import (
    EVAL_IMAGE,
    Calibration,
    check_calibration,
    default_calibration,
    load_calibration,
    load_frame,
    load_image,
)
from edgevit_hw.ml.quantizer import quantize
from edgevit_hw.ml.weights import load_weights, synthetic_weights
from edgevit_hw.program.compiler import Program, compile_program
from edgevit_hw.progress import step

SYNTHETIC_SEED = 0


@dataclass
class Prepared:
    """A spec with its float weights, quantized model (which names its weights' source and
    calibration set), derived parameters, and the frame of the golden vectors (uint8
    [C, H, W]; ``frame_name`` says which image it is)."""

    spec: Spec
    weights: dict[str, np.ndarray]
    qmodel: QuantModel
    hw: HwParams
    frame: np.ndarray | None = None
    frame_name: str = EVAL_IMAGE

    @cached_property
    def program(self) -> Program:
        """The compiled program and DRAM image (compiled once, on first use)."""
        return compile_program(self.qmodel, self.hw)

    def pixels(self) -> np.ndarray:
        """The golden-vector frame (the evaluation image unless ``--image`` chose another)."""
        return load_image(EVAL_IMAGE, self.spec) if self.frame is None else self.frame


def prepare(spec: Spec, weights_path: str | None = None, calib: str | Calibration | None = None,
            image: str | None = None) -> Prepared:  # fmt: skip
    """Float weights (from ``weights_path`` or seeded synthetic ones), quantized on a
    calibration set: ``calib`` (a folder of images or an ``.npz`` of pixels, or a loaded
    :class:`Calibration`), else the calibration images stored in the weights file, else the
    calibration photographs. A preset with shipped trained weights uses them when no
    ``weights_path`` is given (:mod:`edgevit_hw.ml.shipped`). ``image`` (a file or a
    scikit-image name, default the evaluation image) is the golden vectors' frame. Every input
    is checked before the slow steps; no calibration set may hold the evaluation image."""
    frame = load_frame(image or EVAL_IMAGE, spec)
    chosen = load_calibration(calib, spec) if isinstance(calib, str) else calib
    weights, synthetic, source, path = _float_weights(spec, weights_path)
    cal = chosen or _stored_calibration(spec, path)
    with step(f"calibrating {spec.name} on {len(cal.pixels)} images and quantizing"):
        qm = quantize(spec, weights, cal.pixels, synthetic, source)
    qm = replace(qm, calibration=cal.label)
    return Prepared(spec, weights, qm, derive(spec), frame, image or EVAL_IMAGE)


def _float_weights(spec: Spec, weights_path: str | None) -> tuple:
    """(weights, synthetic, source, path of the weights file or None)."""
    from edgevit_hw.ml.shipped import shipped_weights_path

    path = weights_path or shipped_weights_path(spec)
    if path:
        return load_weights(spec, path), False, str(path), path
    return synthetic_weights(spec, SYNTHETIC_SEED), True, f"synthetic (seed {SYNTHETIC_SEED})", None


def _stored_calibration(spec: Spec, weights_path) -> Calibration:
    """The weights file's own calibration images, else the calibration photographs."""
    from edgevit_hw.ml.shipped import shipped_calibration

    cal = shipped_calibration(weights_path) or default_calibration(spec)
    check_calibration(cal, spec)
    return cal


def check_out(out: Path) -> Path:
    """``--out`` must be a folder (it may not exist yet), not a file or a path through one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out must be a folder, not the existing file {str(out)!r}")
    for p in out.parents:
        if p.exists() and not p.is_dir():
            raise InputError(f"--out {str(out)!r} must be a folder, but {str(p)!r} is a file")
    return out


def write_files(out: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write ``{relative path: text or bytes}`` under ``out``; a file whose content is
    unchanged is not rewritten (keeps timestamps, and so builds, cached)."""
    written = []
    for rel, data in files.items():
        path = Path(out) / rel
        raw = data.encode() if isinstance(data, str) else bytes(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != raw:
            path.write_bytes(raw)
        written.append(path)
    return written


def header(spec: Spec, comment: str = "#") -> str:
    """First line of every generated file."""
    return generated_line(spec.name, spec.spec_hash(), comment)


def write_text(path: Path, text: str, spec: Spec, comment: str = "#") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header(spec, comment) + "\n" + text)
    return path


def write_golden_vectors(prep: Prepared, out: Path) -> list[Path]:
    """The frame's pixels and its golden output tokens, every task (``--image`` chooses the
    frame; the evaluation photograph by default)."""
    img = prep.pixels()
    files = {"vectors/input.npy": _npy(img)}
    with step(f"golden model on {prep.frame_name}") as s:
        for t, task in enumerate(prep.spec.tasks):
            s.update(f"golden model on {prep.frame_name}, task {task}")
            files[f"vectors/golden_{task}.npy"] = _npy(golden_forward(prep.qmodel, img, t).tokens)
    return write_files(out, files)


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def write_rtl(prep: Prepared, out: Path) -> list[Path]:
    """``DIR/rtl``: the Verilog of every RTL unit and of the top ``evh_top.v``
    (:mod:`edgevit_hw.rtl.export`), the register map as JSON, C header and Python constants
    (:mod:`edgevit_hw.program.regmap`), the board's Vivado block-design script
    (:mod:`edgevit_hw.rtl.vivado`), the lint waivers ``lint.vlt`` and the Verilator lint
    report of the top ``lint.txt`` (:mod:`edgevit_hw.sim.lint_report`)."""
    from edgevit_hw.program.regmap import emit_regmap
    from edgevit_hw.rtl.export import top_name
    from edgevit_hw.rtl.vivado import emit_bd_tcl
    from edgevit_hw.sim.lint_report import REPORT, RTL, VLT, lint_report
    from edgevit_hw.sim.runner import LINT_VLT

    files: dict[str, str | bytes] = dict(emit_regmap(prep.hw))
    files.update(_unit_verilog(prep.hw))
    files.update(emit_bd_tcl(prep.hw))
    files[VLT] = LINT_VLT.read_bytes()
    written = write_files(Path(out) / RTL, files)
    with step("linting the top's Verilog with Verilator"):
        report = lint_report(Path(out), top_name("top"), header(prep.spec))
    return written + write_files(Path(out) / RTL, {REPORT: report})


def _unit_verilog(hw: HwParams) -> dict[str, str]:
    """``{"evh_<unit>.v": Verilog}`` of every unit, the top included (memoized export)."""
    from edgevit_hw.rtl.export import UNIT_CLASSES, top_name, unit_verilog

    files = {}
    with step("exporting the RTL to Verilog") as s:
        for i, (unit, _, _) in enumerate(UNIT_CLASSES):
            s.update(f"exporting the RTL to Verilog: {unit} ({i + 1}/{len(UNIT_CLASSES)})")
            files[f"{top_name(unit)}.v"] = unit_verilog(unit, hw)
    return files


def write_program(prep: Prepared, out: Path) -> list[Path]:
    """``DIR/program``: the DRAM image, an instruction listing and the perf model's report."""
    from edgevit_hw.program.listing import emit_program

    return write_files(Path(out) / "program", emit_program(prep.program))


def write_hls(prep: Prepared, out: Path) -> list[Path]:
    """``DIR/hls``: the Vitis HLS project with the golden-vector frame and its tokens (task 0)
    for the testbench of ``run_hls.tcl``."""
    from edgevit_hw.hls.emit import emit_hls

    px = prep.pixels()
    gold = golden_forward(prep.qmodel, px, 0).tokens
    return write_files(Path(out) / "hls", emit_hls(prep.program, prep.qmodel, px, gold))


def write_readme(prep: Prepared, out: Path, files: list[Path]) -> Path:
    """``DIR/README.md``: what each written file and folder is (:mod:`edgevit_hw.readme`)."""
    from edgevit_hw.readme import readme_text

    rel = [Path(f).relative_to(out).as_posix() for f in files]
    return write_files(out, {"README.md": readme_text(prep, rel)})[0]


def generate(prep: Prepared, out: Path) -> list[Path]:
    """Write everything for one spec into ``out``: the resolved spec, derived parameters,
    quantized model, golden vectors, the program (image, listing, cycle model), the HLS
    project, the RTL (Verilog, register map, lint report, Vivado block-design script) and a
    README naming each file."""
    import yaml

    spec = prep.spec
    out.mkdir(parents=True, exist_ok=True)
    files = [
        write_text(out / "spec.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False), spec),
        out / "derived.json",
        out / "model.safetensors",
    ]
    files[1].write_text(json.dumps({"_generated": header(spec, "")[1:], **prep.hw.to_dict()},
                                   indent=2, sort_keys=True))  # fmt: skip
    prep.qmodel.save(files[2])
    files += write_golden_vectors(prep, out)
    files += write_program(prep, out)  # DIR/program: the program, its listing and cycle model
    files += write_hls(prep, out)  # DIR/hls: the Vitis HLS project
    files += write_rtl(prep, out)  # DIR/rtl: Verilog, register map, lint report, Vivado Tcl
    files.append(write_readme(prep, out, files))  # DIR/README.md: what each file is
    return files
