"""Verilator ``--lint-only -Wall`` on every exported unit (waivers: sim/lint.vlt, each one
justified there)."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import variant

pytestmark = pytest.mark.rtl

# the parameter sets of the benches, so the exports are shared with them
UNITS = {
    "compute_unit": ("mac4x2_w8a8", dict(mac_rows=4, mac_cols=2)),
    "mac_array": ("mac4x2_w8a8", dict(mac_rows=4, mac_cols=2)),
    "layernorm": ("ln_res16", dict(model={"embed_dim": 36, "heads": 3})),
    "attention": ("attn_p2", dict(attn_rows=2, model={"embed_dim": 16, "heads": 2})),
    "router": ("router_e4k2", {}),
    "expert_queues": ("router_e4k2", {}),
    "axi_read": ("micro_moe", {}),
    "axi_lite": ("micro_moe", {}),
    "top": ("micro_moe", {}),
}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_verilator_lint_clean(unit):
    from edgevit_hw.sim.runner import lint

    name, changes = UNITS[unit]
    res = lint(unit, variant(name, **changes))
    assert res.returncode == 0 and "%Warning" not in res.stderr, res.stderr[-4000:]


def test_every_unit_is_linted():
    from edgevit_hw.rtl.export import UNITS as exported

    assert set(exported()) == set(UNITS)
