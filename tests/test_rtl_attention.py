"""Attention engine under Verilator, bit-exact with online_softmax_ref; P swept."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED, variant

pytestmark = pytest.mark.rtl

SMALL = {"embed_dim": 16, "heads": 2}  # head_dim 8 keeps the Verilator build small


@pytest.mark.parametrize("rows", [2, 3])
def test_attention_bit_exact(rows):
    from edgevit_hw.sim.runner import run_bench

    hw = variant(f"attn_p{rows}", attn_rows=rows, model=SMALL)
    print(f"seed {SEED}")
    run_bench("attention", hw, "edgevit_hw.sim.bench_attention", SEED,
              COCOTB_TEST_FILTER="attention_bit_exact|attention_saturated_logits|"
              "attention_rescale_boundaries")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("rows", [1, 4])
def test_attention_micro_moe(rows):
    """micro_moe's own head_dim (32) and 17 tokens, P = 1 and 4 (slow)."""
    from edgevit_hw.sim.runner import run_bench

    hw = variant(f"attn_big_p{rows}", attn_rows=rows)
    run_bench("attention", hw, "edgevit_hw.sim.bench_attention", SEED + 1, EVH_BLOCKS="6")


def test_cycle_model_states_the_attention_pipeline():
    """The perf model's attention formula uses the unit's logit pipeline for every head
    dimension."""
    from edgevit_hw.rtl.attention import TREE_STEP, logit_stages

    from edgevit_hw.program.perf import ATTN_TREE_STEP, attn_logit_stages

    assert ATTN_TREE_STEP == TREE_STEP
    assert [attn_logit_stages(d) for d in range(1, 257)] == [logit_stages(d) for d in range(1, 257)]
