"""MoE router and expert-queue builder under Verilator, bit-exact with gate_q / expert_queues."""

from __future__ import annotations

import pytest

from sim.specs import SEED, variant

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("unit,module", [("router", "sim.bench_router"),
                                         ("expert_queues", "sim.bench_router")])  # fmt: skip
def test_router_units(unit, module):
    from sim.runner import run_bench

    hw = variant("router_e4k2")
    print(f"seed {SEED}")
    prefix = "router_bit_exact" if unit == "router" else "expert_queues_"
    run_bench(unit, hw, module, SEED, COCOTB_TEST_FILTER=prefix)
