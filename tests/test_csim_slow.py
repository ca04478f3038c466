"""C-simulation bit-exactness on the full-size presets (deit_tiny, m3vit): every task, the
evaluation photograph and seeded random pixels. Marked slow (about a minute per preset)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import prepared
from edgevit_hw.hls import csim

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.ml.images import EVAL_IMAGE, load_image, random_pixels

pytestmark = [pytest.mark.csim, pytest.mark.slow]


@pytest.mark.parametrize("preset", ["deit_tiny", "m3vit"])
def test_full_preset_bit_exact(preset, seed):
    prep = prepared(preset)
    binary = csim.build(prep.qmodel, prep.hw)
    print(f"{preset}: compile {binary.compile_s:.1f} s (cached={binary.cached}), seed={seed}")
    images = [(EVAL_IMAGE, load_image(EVAL_IMAGE, prep.spec)),
              (f"random seed {seed}", random_pixels(prep.spec, seed))]  # fmt: skip
    for label, px in images:
        for task in range(len(prep.spec.tasks)):
            res = csim.run_frame(binary, prep.qmodel, px, task)
            gold = golden_forward(prep.qmodel, px, task).tokens
            assert res.status == 0 and len(res.frames) == 1, (label, task)
            bad = np.argwhere(res.frames[0] != gold)
            if len(bad):
                where = csim.diagnose(prep.qmodel, prep.hw, px, task)
                pytest.fail(f"{preset} {label} task {task}: {len(bad)} differ; {where}")
            print(f"  {label} task {task}: bit-exact, {res.run_s:.2f} s")
