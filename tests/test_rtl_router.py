"""MoE router and expert-queue builder under Verilator, bit-exact with gate_q / expert_queues."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED, variant

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("unit", ["router", "expert_queues"])
def test_router_units(unit):
    module = "edgevit_hw.sim.bench_router"
    from edgevit_hw.sim.runner import run_bench

    hw = variant("router_e4k2")
    print(f"seed {SEED}")
    prefix = "router_bit_exact" if unit == "router" else "expert_queues_"
    run_bench(unit, hw, module, SEED, COCOTB_TEST_FILTER=prefix)


def test_cycle_model_states_the_router_token_cycles():
    from edgevit_hw.rtl.router import TOKEN_CYCLES

    from edgevit_hw.program.perf import ROUTER_TOKEN

    assert ROUTER_TOKEN == TOKEN_CYCLES
