"""Verilog export of every unit from HwParams.

``python -m rtl.export --config micro_moe --out build/rtl`` writes ``<top>.v`` per unit and
``derived.json``; the top module of unit ``u`` is ``evh_<u>`` with ports ``clk``, ``rst`` and
``<stream>__{payload,valid,ready}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog
from edgevit_hw.rtl.params import write_hw_json

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.spec import load_spec


def _units() -> dict[str, Callable[[HwParams], object]]:
    from edgevit_hw.rtl.compute_unit import ComputeUnit

    units: dict[str, Callable[[HwParams], object]] = {"compute_unit": ComputeUnit}
    try:
        from edgevit_hw.rtl.mac_array import MacArray

        units["mac_array"] = MacArray
    except ImportError:  # pragma: no cover
        pass
    for mod, cls, name in (
        ("edgevit_hw.rtl.attention", "AttentionEngine", "attention"),
        ("edgevit_hw.rtl.layernorm", "LayerNormUnit", "layernorm"),
        ("edgevit_hw.rtl.router", "MoeRouter", "router"),
        ("edgevit_hw.rtl.expert_queues", "ExpertQueueBuilder", "expert_queues"),
    ):
        try:
            units[name] = getattr(__import__(mod, fromlist=[cls]), cls)
        except (ImportError, AttributeError):
            continue
    return units


UNITS = _units


def top_name(unit: str) -> str:
    return f"evh_{unit}"


def export_unit(unit: str, hw: HwParams, out_dir: Path) -> Path:
    """Write ``<out_dir>/evh_<unit>.v``; rewritten only when the text changes (keeps Verilator
    builds cached)."""
    comp = _units()[unit](hw)
    text = verilog.convert(comp, name=top_name(unit), emit_src=False)
    text = f"// generated from spec {hw.spec_hash[:16]} ({hw.spec_name}), do not edit\n" + text
    path = Path(out_dir) / f"{top_name(unit)}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--out", default="build/rtl")
    ap.add_argument("--unit", action="append", help="unit(s) to export (default: all)")
    args = ap.parse_args(argv)
    hw = derive(load_spec(args.config))
    out = Path(args.out)
    write_hw_json(hw, out / "derived.json")
    for unit in args.unit or list(_units()):
        print(export_unit(unit, hw, out))


if __name__ == "__main__":
    main()
