"""``python -m edgevit_hw.gen --config <preset|file> [--weights FILE] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgevit_hw.core.errors import EdgeVitError


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m edgevit_hw.gen", description=__doc__)
    ap.add_argument("--config", required=True, help="preset name or YAML spec path")
    ap.add_argument("--weights", help="float checkpoint (.safetensors or .npz), M3ViT names")
    ap.add_argument("--out", default=None, help="output folder (default build/<name>)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import generate, prepare

    spec = load_spec(args.config)
    out = Path(args.out or f"build/{spec.name}")
    prep = prepare(spec, args.weights)
    files = generate(prep, out)
    label = "SYNTHETIC weights" if prep.qmodel.synthetic else f"weights {prep.qmodel.source}"
    print(f"{spec.name}: {label}; wrote {len(files)} files to {out}")
    for f in files:
        print(f"  {f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; any :class:`EdgeVitError` becomes one line on stderr and exit status 2."""
    args = parse(argv)
    try:
        return run(args)
    except EdgeVitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
