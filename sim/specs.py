"""Small spec variants of micro_moe for the RTL benches (hardware/quant fields changed)."""

from __future__ import annotations

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.spec import _read_yaml, spec_from_dict

SEED = 20261122
HW_KEYS = {"mac_rows", "mac_cols", "attn_rows"}


def variant(name: str, **changes) -> HwParams:
    """micro_moe with ``changes`` applied to its hardware or quant section (and ``model`` /
    ``moe`` dict updates under those keys); ``name`` becomes the spec name."""
    data = _read_yaml("micro_moe")
    data["name"] = name
    for key, val in changes.items():
        if key in ("model", "moe"):
            data[key] = {**data[key], **val}
        elif key in HW_KEYS:
            data["hardware"][key] = val
        else:
            data.setdefault("quant", {})[key] = val
    return derive(spec_from_dict(data))
