"""Compute unit (MAC array + epilogues) under Verilator, bit-exact with the contract."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED, variant

pytestmark = pytest.mark.rtl

CASES = {
    "mac4x2_w8a8": dict(mac_rows=4, mac_cols=2),
    "mac3x5_w6a5": dict(mac_rows=3, mac_cols=5, weight_bits=6, act_bits=5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compute_unit_bit_exact(case):
    from edgevit_hw.sim.runner import run_bench

    hw = variant(case, **CASES[case])
    print(f"seed {SEED}")
    run_bench("compute_unit", hw, "edgevit_hw.sim.bench_compute", SEED, EVH_TILES="20",
              COCOTB_TEST_FILTER="compute_unit_bit_exact")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(8, 8), (16, 16)])
def test_compute_unit_large(shape):
    """micro_moe widths on 8x8 and the m3vit 16x16 array (slow: long Verilator builds)."""
    from edgevit_hw.sim.runner import run_bench

    rows, cols = shape
    hw = variant(f"mac{rows}x{cols}", mac_rows=rows, mac_cols=cols)
    run_bench("compute_unit", hw, "edgevit_hw.sim.bench_compute", SEED + 1, EVH_TILES="40")


def test_cycle_model_states_the_epilogue_stages():
    """The perf model's matrix-job drain counts the epilogue's pipeline stages."""
    from edgevit_hw.rtl.epilogue import STAGES

    from edgevit_hw.program.perf import EPI_STAGES

    assert EPI_STAGES == STAGES
