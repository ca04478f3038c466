"""Images and calibration sets: the evaluation image never enters calibration, ``--calib``
folders and ``.npz`` files are fitted like every image, and bad sets are one-line errors."""

import numpy as np
import pytest

from edgevit_hw.core.errors import InputError
from edgevit_hw.core.spec import load_spec, presets
from edgevit_hw.ml.images import (
    CALIB_IMAGES,
    EVAL_IMAGE,
    Calibration,
    check_calibration,
    default_calibration,
    fit_image,
    load_calibration,
    load_frame,
    load_image,
)
from edgevit_hw.ml.quality import EVAL_IMAGES
from edgevit_hw.ml.shipped import shipped_calibration, shipped_weights_path


def _holds(cal: Calibration, img: np.ndarray) -> bool:
    return any(np.array_equal(p, img) for p in cal.pixels)


@pytest.mark.parametrize("name", presets())
def test_default_calibration_never_holds_the_evaluation_image(name):
    spec = load_spec(name)
    cal = default_calibration(spec)
    assert EVAL_IMAGE not in cal.names and not set(EVAL_IMAGES) & set(CALIB_IMAGES)
    assert not _holds(cal, load_image(EVAL_IMAGE, spec))
    check_calibration(cal, spec, EVAL_IMAGES)  # the quality report's images too


def test_shipped_calibration_never_holds_the_evaluation_image():
    shipped = [s for s in map(load_spec, presets()) if shipped_weights_path(s)]
    assert shipped, "no preset ships trained weights"
    for spec in shipped:
        cal = shipped_calibration(shipped_weights_path(spec))
        assert cal is not None and cal.pixels.dtype == np.uint8
        assert not _holds(cal, load_image(EVAL_IMAGE, spec)), spec.name
        check_calibration(cal, spec)


def test_calibration_holding_the_evaluation_image_is_refused(tmp_path):
    spec = load_spec("micro_moe")
    pixels = np.stack([load_image("coffee", spec), load_image(EVAL_IMAGE, spec)])
    np.savez(tmp_path / "cal.npz", pixels)
    with pytest.raises(InputError) as err:
        load_calibration(str(tmp_path / "cal.npz"), spec)
    msg = str(err.value)
    assert "\n" not in msg and "cal.npz[1] is the evaluation image 'astronaut'" in msg


def test_npz_of_images_of_another_size_is_fitted(tmp_path):
    from skimage import data

    spec = load_spec("micro_moe")
    raw = np.stack([data.coffee()[:300, :400], data.chelsea()[:300, :400]])  # [n, H, W, C]
    want = np.stack([fit_image(r, spec) for r in raw])
    for i, arr in enumerate((raw, raw.transpose(0, 3, 1, 2))):  # channels last, then first
        np.savez(tmp_path / f"c{i}.npz", pixels=arr, other=np.zeros(2))
        cal = load_calibration(str(tmp_path / f"c{i}.npz"), spec)
        assert np.array_equal(cal.pixels, want) and cal.pixels.shape == (2, 3, 32, 32)
    gray = np.stack([data.camera(), data.moon()])  # [n, H, W]
    np.savez(tmp_path / "g.npz", gray)
    cal = load_calibration(str(tmp_path / "g.npz"), spec)
    assert np.array_equal(cal.pixels[0], load_image("camera", spec))


BAD_NPZ = [
    ({"pixels": np.zeros((2, 3, 32, 32), np.float32)}, "pixels must be uint8"),
    ({"a": np.zeros((2, 3, 32, 32), np.uint8), "b": np.zeros(1)}, "must hold one array or"),
    ({"pixels": np.zeros((0, 3, 32, 32), np.uint8)}, "with n > 0"),
    ({"pixels": np.zeros((2, 5, 9, 9), np.uint8)}, "cannot tell the channel axis"),
]


@pytest.mark.parametrize("arrays,message", BAD_NPZ)
def test_bad_npz_is_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message) as err:
        load_calibration(str(tmp_path / "bad.npz"), load_spec("micro_moe"))
    assert "\n" not in str(err.value)


def test_load_frame_names_and_files(tmp_path):
    spec = load_spec("micro_moe")
    assert np.array_equal(load_frame("camera", spec), load_image("camera", spec))
    with pytest.raises(InputError, match="--image must be an image file or a scikit-image"):
        load_frame("brain", spec)  # needs a download: not offered
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(InputError, match="--image: cannot read image"):
        load_frame(str(tmp_path / "x.png"), spec)


def test_digits_spec_fits_gray_images():
    spec = load_spec("digits_moe")
    img = load_image(EVAL_IMAGE, spec)
    im = spec.model.image
    assert img.shape == (im.channels, im.height, im.width) and img.dtype == np.uint8
