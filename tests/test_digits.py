"""The shipped digits_moe model: evaluated (never retrained) on the held-out split.

Bounds from the issue: float accuracy on digit class >= 95 %, and integer (golden model)
accuracy within 1 percentage point of float on each task.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgevit_hw.apps import digits
from edgevit_hw.core.spec import load_spec


@pytest.fixture(scope="module")
def shipped():
    spec = load_spec("digits_moe")
    weights, heads, calib = digits.load_model(spec)
    return spec, weights, heads, calib, digits.load_split()


def test_split_is_seeded_and_disjoint(shipped):
    *_, split = shipped
    assert (len(split.train_y), len(split.test_y)) == (1347, 450)
    assert split.train_x.dtype == np.uint8 and split.train_x.max() == 255
    train = {x.tobytes() for x in split.train_x}
    overlap = sum(x.tobytes() in train for x in split.test_x)
    assert overlap < 5  # load_digits holds a few exact duplicate images, nothing more
    np.testing.assert_array_equal(digits.load_split().test_y, split.test_y)


def test_calibration_images_come_from_training_part(shipped):
    _, _, _, calib, split = shipped
    assert calib.shape == (digits.CALIB_COUNT, 1, 8, 8)
    np.testing.assert_array_equal(calib, split.train_x[: digits.CALIB_COUNT])


def test_shipped_digits_moe_accuracy(shipped):
    spec, weights, heads, calib, split = shipped
    rep = digits.evaluate(spec, weights, heads, calib, split)
    for t, task in enumerate(rep["tasks"]):
        print(f"{task}: float {rep['float'][t]:.2f}%  integer {rep['integer'][t]:.2f}%")
    assert rep["float"][0] >= 95.0
    for f, q in zip(rep["float"], rep["integer"], strict=True):
        assert abs(q - f) <= 1.0


def test_prepare_picks_up_shipped_weights():
    from edgevit_hw.flow import prepare
    from edgevit_hw.ml.shipped import shipped_weights_path

    spec = load_spec("digits_moe")
    prep = prepare(spec)
    assert not prep.qmodel.synthetic
    assert prep.qmodel.source == str(shipped_weights_path(spec))
    assert shipped_weights_path(load_spec("micro_moe")) is None
    other = spec.model_copy(update={"tasks": ("a", "b")})
    assert shipped_weights_path(other) is None  # trained for other tasks: not used
