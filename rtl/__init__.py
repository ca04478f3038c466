"""Amaranth RTL of the edgevit_hw compute units (one ``wiring.Component`` per module).

Every unit is built from :class:`edgevit_hw.core.derive.HwParams` only; stream payload layouts live
in :mod:`rtl.layouts` and are shared with the Python packing code of the benches.

``SOURCE_DIGEST`` hashes the package's sources as this process loads them (the package is
imported before any of its modules), so a build cache keyed by it holds the RTL this process
exports even when the files are edited while it runs.
"""

import hashlib
from pathlib import Path


def _digest() -> str:
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


SOURCE_DIGEST = _digest()
