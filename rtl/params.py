"""Rebuild :class:`HwParams` from the derived-parameters JSON (``HwParams.to_json``).

Benches and the export CLI read their parameters from that file only, so what the RTL was built
from and what the bench checks against are the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgevit_hw.core.derive import ArithParams, Buffer, HwParams


def hw_from_dict(d: dict) -> HwParams:
    """Inverse of ``HwParams.to_dict`` (extra keys such as ``onchip_bytes`` are ignored)."""
    names = {f.name for f in dataclasses.fields(HwParams)}
    kw = {k: v for k, v in d.items() if k in names}
    kw["arith"] = ArithParams(**d["arith"])
    kw["buffers"] = tuple(Buffer(**b) for b in d["buffers"])
    return HwParams(**kw)


def hw_from_json(path: str | Path) -> HwParams:
    return hw_from_dict(json.loads(Path(path).read_text()))


def write_hw_json(hw: HwParams, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = hw.to_json()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
