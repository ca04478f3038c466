"""LayerNorm unit under Verilator, bit-exact with arithmetic.layernorm_q."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED, variant

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("case", ["ln_res16", "ln_res12"])
def test_layernorm_bit_exact(case):
    from edgevit_hw.sim.runner import run_bench

    quant = {"ln_res16": {}, "ln_res12": {"residual_bits": 12, "ln_gamma_bits": 12}}[case]
    hw = variant(case, model={"embed_dim": 24, "heads": 2}, **quant)
    print(f"seed {SEED}")
    run_bench("layernorm", hw, "edgevit_hw.sim.bench_layernorm", SEED,
              COCOTB_TEST_FILTER="layernorm_bit_exact|layernorm_malformed_row|"
              "layernorm_power_of_two")  # fmt: skip


@pytest.mark.slow
def test_layernorm_micro_moe():
    """micro_moe's embed_dim (64), with the throughput test too (slow)."""
    from edgevit_hw.sim.runner import run_bench

    run_bench(
        "layernorm", variant("ln_micro"), "edgevit_hw.sim.bench_layernorm", SEED + 1, EVH_ROWS="12"
    )
