"""LayerNorm unit under Verilator, bit-exact with arithmetic.layernorm_q."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED, variant

pytestmark = pytest.mark.rtl


# ln_res16: D = 36 on L = 24 lanes (two words, the last one partial); ln_res12: D = 24 on
# L = 24 (a row is one word), 12-bit residuals and gamma.
CASES = {
    "ln_res16": dict(model={"embed_dim": 36, "heads": 3}),
    "ln_res12": dict(model={"embed_dim": 24, "heads": 2}, residual_bits=12, ln_gamma_bits=12),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layernorm_bit_exact(case):
    from edgevit_hw.sim.runner import run_bench

    hw = variant(case, **CASES[case])
    print(f"seed {SEED}")
    run_bench("layernorm", hw, "edgevit_hw.sim.bench_layernorm", SEED)


@pytest.mark.slow
def test_layernorm_micro_moe():
    """micro_moe's D = 64 on L = 32 lanes (two whole words), 12 random rows (slow)."""
    from edgevit_hw.sim.runner import run_bench

    run_bench(
        "layernorm", variant("ln_micro"), "edgevit_hw.sim.bench_layernorm", SEED + 1, EVH_ROWS="12"
    )


def test_cycle_model_states_the_unit_fill():
    """The perf model's LayerNorm formula uses the unit's pipeline fill."""
    from edgevit_hw.rtl.layernorm import FILL

    from edgevit_hw.program.perf import LN_FILL

    assert LN_FILL == FILL
