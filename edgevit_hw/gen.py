"""Write everything the generator makes for one spec into a folder.

``python -m edgevit_hw.gen --config <preset|file> [--weights FILE] [--calib DIR|NPZ]
[--image IMAGE] [--out DIR]``: DIR gets the resolved spec, the derived parameters, the
quantized model, the golden vectors, the compiled program, the HLS project (``hls/``), the
Verilog of every RTL unit (``rtl/``) and a README saying what each file is. stdout lists the
written files; progress goes to stderr. A bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgevit_hw.cli import add_model_args
from edgevit_hw.core.errors import CliParser, run_cli


def parser() -> CliParser:
    ap = CliParser(prog="python -m edgevit_hw.gen", description=__doc__.split("\n\n")[0])
    add_model_args(ap)
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    return ap


def run(args: argparse.Namespace) -> int:
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import check_out, generate, prepare

    if args.out:
        check_out(Path(args.out))
    spec = load_spec(args.config)
    out = check_out(Path(args.out or f"build/{spec.name}"))
    prep = prepare(spec, args.weights, args.calib, args.image)
    files = generate(prep, out)
    qm = prep.qmodel
    label = "SYNTHETIC weights" if qm.synthetic else f"weights {qm.source}"
    print(f"{spec.name}: {label}; calibration: {qm.calibration}; frame: {prep.frame_name}")
    print(f"wrote {len(files)} files to {out}")
    for f in files:
        print(f"  {f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; any :class:`EdgeVitError` becomes one line on stderr and exit status 2."""
    return run_cli(run, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
