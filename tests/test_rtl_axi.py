"""AXI4 read master and AXI4-Lite register file under Verilator (cocotb + cocotbext-axi), on a
64-bit (micro_moe) and a 32-bit (odd_moe) weight port."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec

pytestmark = pytest.mark.rtl

MODULE = "edgevit_hw.sim.bench_axi"


@pytest.mark.parametrize("preset", ["micro_moe", "odd_moe"])
def test_axi_read_master(preset):
    from edgevit_hw.sim.runner import run_bench

    hw = derive(load_spec(preset))
    print(f"seed {SEED}, {preset}: {hw.streams.port_bits}-bit port")
    run_bench("axi_read", hw, MODULE, SEED, COCOTB_TEST_FILTER="axi_read_")


def test_axi_lite_regs():
    from edgevit_hw.sim.runner import run_bench

    hw = derive(load_spec("micro_moe"))
    print(f"seed {SEED}")
    run_bench("axi_lite", hw, MODULE, SEED, COCOTB_TEST_FILTER="axi_lite_")
