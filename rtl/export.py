"""Verilog of every RTL unit from HwParams: a pure function, the flow writes the files.

:func:`verilog_files` returns ``{"evh_<unit>.v": text}``; the top module of unit ``u`` is
``evh_<u>`` with ports ``clk``, ``rst`` and ``<stream>__{payload,valid,ready}``. ``gen`` writes
them into ``DIR/rtl``; ``python -m edgevit_hw.rtl.export --config micro_moe --out build/rtl``
writes them (and ``derived.json``) into a folder of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgevit_hw.core.derive import HwParams

UNIT_CLASSES = (  # (unit, module, Component class), in dependency order
    ("compute_unit", "edgevit_hw.rtl.compute_unit", "ComputeUnit"),
    ("mac_array", "edgevit_hw.rtl.mac_array", "MacArray"),
    ("attention", "edgevit_hw.rtl.attention", "AttentionEngine"),
    ("layernorm", "edgevit_hw.rtl.layernorm", "LayerNormUnit"),
    ("router", "edgevit_hw.rtl.router", "MoeRouter"),
    ("expert_queues", "edgevit_hw.rtl.expert_queues", "ExpertQueueBuilder"),
    ("axi_read", "edgevit_hw.rtl.axi_read", "AxiReadMaster"),
    ("axi_lite", "edgevit_hw.rtl.axi_lite", "AxiLiteRegs"),
    ("top", "edgevit_hw.rtl.top", "Top"),
)


def _units() -> dict[str, Callable[[HwParams], object]]:
    import importlib

    return {u: getattr(importlib.import_module(m), c) for u, m, c in UNIT_CLASSES}


UNITS = _units


def top_name(unit: str) -> str:
    return f"evh_{unit}"


def unit_verilog(unit: str, hw: HwParams) -> str:
    """Verilog text of one unit, first line ``// generated from spec <hash> ..., do not edit``.
    Memoized on ``repr(hw)`` (a conversion takes seconds; the text depends on nothing else)."""
    key = (unit, repr(hw))
    if key not in _MEMO:
        while len(_MEMO) >= MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _convert(unit, hw)
    return _MEMO[key]


MEMO_SIZE = 12
_MEMO: dict[tuple[str, str], str] = {}


def _convert(unit: str, hw: HwParams) -> str:
    from amaranth.back import verilog

    text = verilog.convert(_units()[unit](hw), name=top_name(unit), emit_src=False)
    return f"// generated from spec {hw.spec_hash[:16]} ({hw.spec_name}), do not edit\n" + text


def verilog_files(hw: HwParams, units: list[str] | None = None) -> dict[str, str]:
    """``{"evh_<unit>.v": Verilog}`` of ``units`` (default: every unit)."""
    return {f"{top_name(u)}.v": unit_verilog(u, hw) for u in units or list(_units())}


def main(argv: list[str] | None = None) -> int:
    from edgevit_hw.core.errors import CliParser, run_cli

    ap = CliParser(prog="python -m edgevit_hw.rtl.export", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="m3vit", help="preset name or YAML spec path")
    ap.add_argument("--out", default="build/rtl", help="output folder")
    ap.add_argument("--unit", action="append", choices=[u for u, _, _ in UNIT_CLASSES],
                    help="unit(s) to export (default: all)")  # fmt: skip
    return run_cli(_export, ap, argv)


def _export(args) -> int:
    from edgevit_hw.core.derive import derive
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import check_out, write_files
    from edgevit_hw.progress import step

    out = check_out(Path(args.out))
    hw = derive(load_spec(args.config))
    with step(f"exporting the RTL of {hw.spec_name} to Verilog"):
        files = {"derived.json": hw.to_json(), **verilog_files(hw, args.unit)}
    for path in write_files(out, files):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
