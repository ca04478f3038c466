"""The derived-parameters JSON (``HwParams.to_json``) as the RTL benches and export read it.

Benches and the export CLI read their parameters from that file only, so what the RTL was built
from and what the bench checks against are the same numbers.
"""

from __future__ import annotations

from pathlib import Path

from edgevit_hw.core.derive import HwParams, hw_from_json


def read_hw_json(path: str | Path) -> HwParams:
    return hw_from_json(Path(path).read_text())


def write_hw_json(hw: HwParams, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = hw.to_json()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
