"""The whole accelerator (rtl.top.Top) under Verilator with cocotbext-axi, frame by frame,
bit-exact with the golden model, through malformed frames and an injected read error."""

from __future__ import annotations

import pytest
from edgevit_hw.sim.specs import SEED

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("config", ["micro_moe", "digits_moe", "odd_moe"])
def test_top_frames(config, tmp_path):
    from edgevit_hw.sim.runner import run_bench
    from edgevit_hw.sim.top_case import write_case

    from edgevit_hw.core.derive import derive
    from edgevit_hw.core.spec import load_spec

    print(f"seed {SEED}")
    hw = derive(load_spec(config))
    case = write_case(config, tmp_path, SEED)
    run_bench(
        "top", hw, "edgevit_hw.sim.bench_top", SEED, testcase="top_frames", EVH_CASE=str(case)
    )


def test_top_restart(tmp_path):
    """micro_moe: ap_start while busy is ignored, reset mid-program and mid-pixels recovers."""
    from edgevit_hw.sim.runner import run_bench
    from edgevit_hw.sim.top_case import write_case

    from edgevit_hw.core.derive import derive
    from edgevit_hw.core.spec import load_spec

    print(f"seed {SEED}")
    hw = derive(load_spec("micro_moe"))
    case = write_case("micro_moe", tmp_path, SEED)
    run_bench("top", hw, "edgevit_hw.sim.bench_top", SEED, testcase="top_restart",
              tag="restart", EVH_CASE=str(case))  # fmt: skip
