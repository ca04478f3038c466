"""Stream images through the accelerator on a backend and report each frame.

``python -m edgevit_hw.run --config m3vit --backend rtl --task depth --images DIR --out DIR``

Backends: ``golden`` (the golden model), ``csim`` (the HLS C-simulation), ``rtl`` (the
Verilator model of the RTL top, driven through its registers and AXI streams; frames stream
back to back), ``pynq`` (a board: ``--bitfile``). For every frame (images fitted to the
model's input, see :mod:`edgevit_hw.driver.frames`): one line on stdout with its status and
its cycles and milliseconds at the spec's clock (the hardware's FRAME_CYCLES on rtl and pynq,
the C-simulation's modeled cycles on csim; the golden backend has no clock), and
``OUT/tokens.npz`` with the integer tokens of every good frame. For a model with two or more
tasks, ``OUT/<frame>.png`` shows input | segmentation | depth from untrained host heads on
the first two tasks' tokens (:mod:`edgevit_hw.apps.heads`). A bad input is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from edgevit_hw.core.errors import CliParser, run_cli


def parser() -> CliParser:
    ap = CliParser(prog="python -m edgevit_hw.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="preset, YAML spec or gen output folder")
    ap.add_argument("--backend", default="golden",
                    help="golden, csim, rtl or pynq (default golden)")  # fmt: skip
    ap.add_argument("--task", default="0", help="task index or name (default 0)")
    ap.add_argument("--images", required=True, help="image file, folder, .npy or .npz")
    ap.add_argument("--out", default=None, help="folder for tokens.npz and the pictures")
    ap.add_argument("--bitfile", default=None, help="pynq: the overlay's .bit (beside its .hwh)")
    return ap


def _line(acc, res) -> str:
    if not res.ok:
        return f"{res.index:4d} {res.name}: DROPPED ({res.error})"
    if res.cycles is None:
        return f"{res.index:4d} {res.name}: ok"
    ms = res.cycles / (acc.artifacts.hw.clock_mhz * 1e3)
    return f"{res.index:4d} {res.name}: ok, {res.cycles:,} cycles = {ms:.2f} ms"


def _picture(acc, res, out: Path) -> Path:
    """input | segmentation | depth of one frame, heads fitted on tasks 0 and 1's tokens."""
    from edgevit_hw.apps.heads import fit_dense_heads, frame_figure
    from edgevit_hw.driver.frames import Frame

    qm, spec = acc.artifacts.qmodel, acc.spec
    frame = Frame(res.pixels, res.name)
    toks = [qm.dequantize(acc.run(frame, task=t)[0].tokens) for t in (0, 1)]
    seg_head, depth_head = fit_dense_heads(spec, toks[0], toks[1])
    weights = "synthetic weights, " if qm.synthetic else ""
    title = (
        f"{spec.name} on {acc.backend.name}: {weights}untrained host heads, tasks {spec.tasks[:2]}"
    )
    name = Path(res.name).stem.replace(":", "_") or f"frame{res.index}"
    return frame_figure(res.pixels, seg_head(toks[0]).argmax(0), depth_head(toks[1])[0],
                        out / f"{res.index:04d}_{name}.png", title)  # fmt: skip


def _run(args) -> int:
    from edgevit_hw.driver import Accelerator
    from edgevit_hw.driver.frames import frames

    out = _out_folder(args.out)
    options = {"bitfile": args.bitfile} if args.bitfile and args.backend == "pynq" else {}
    with Accelerator.open(args.config, backend=args.backend, **options) as acc:
        task = acc.task_index(int(args.task) if args.task.isdigit() else args.task)
        items = list(frames(args.images, acc.spec))
        good = _stream(acc, items, task)
        if len(acc.spec.tasks) >= 2 and out is not None:  # after the stream: heads run frames
            for res in (r for r in good if r.pixels is not None):
                print(f"     wrote {_picture(acc, res, out)}")
    if out is not None:
        _write_tokens(out, good)
    return 0


def _out_folder(out: str | None) -> Path | None:
    from edgevit_hw.flow import check_out

    return check_out(Path(out)) if out else None


def _stream(acc, items, task: int) -> list:
    """Every frame through the backend, one line each, under a progress bar; the good ones."""
    from rich.progress import Progress

    good = []
    with Progress(transient=True, console=_stderr_console()) as bar:
        job = bar.add_task(f"{acc.spec.name} on {acc.backend.name}", total=len(items))
        for res in acc.stream(items, task):
            print(_line(acc, res))
            if res.ok:
                good.append(res)
            bar.advance(job)
    return good


def _write_tokens(out: Path, good: list) -> None:
    from edgevit_hw.flow import write_files

    buf = io.BytesIO()
    np.savez(buf, **{f"{res.index:04d}": res.tokens for res in good})
    (path,) = write_files(out, {"tokens.npz": buf.getvalue()})
    print(f"wrote {path} ({len(good)} frames)")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
