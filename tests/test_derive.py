"""derive: widths proven from bounds, JSON serializable, on-chip budget."""

import json

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import derive, derive_arith
from edgevit_hw.core.spec import load_spec, spec_variant


def test_accumulators_hold_their_extremes():
    for name in ("micro_moe", "m3vit", "deit_tiny"):
        ap = derive_arith(load_spec(name))
        for lin in ap.linears.values():
            x = -(1 << (lin["x_bits"] - 1))
            w = -(1 << (ap.weight_bits - 1))
            extreme = lin["k"] * x * w + lin["bias_max"]
            assert A.smin(lin["acc_bits"]) <= -extreme and extreme <= A.smax(lin["acc_bits"])
            assert extreme > A.smax(lin["acc_bits"] - 1)  # and the width is tight
            assert lin["prod_bits"] <= 63


def test_widths_follow_the_quant_section():
    base = derive_arith(load_spec("micro_moe"))
    wide = derive_arith(spec_variant("micro_moe", quant={"act_bits": 12, "weight_bits": 10}))
    assert wide.linears["fc1"]["acc_bits"] == base.linears["fc1"]["acc_bits"] + 6
    assert wide.score_bits == base.score_bits + 8


def test_json_round_trip_and_budget():
    hw = derive(load_spec("m3vit"))
    data = json.loads(hw.to_json())
    assert data["arith"]["tokens"] == 129 and data["mac_rows"] == 16
    assert data["onchip_bytes"] == hw.onchip_bytes < 1 << 20  # well under 1 MB on chip
    assert data["hash32"] == int(hw.spec_hash[:8], 16)
    assert hw.dram_bytes_worst > hw.dram_bytes_dense > 0
