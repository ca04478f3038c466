"""Real natural images from scikit-image's bundled data, resized to the model's input.

No download: these photographs ship inside the scikit-image wheel. ``EVAL_IMAGE`` is never
part of the calibration set, so fidelity figures are measured on an unseen image.
"""

from __future__ import annotations

import numpy as np

from edgevit_hw.core.spec import Spec

EVAL_IMAGE = "astronaut"
CALIB_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def load_image(name: str, spec: Spec) -> np.ndarray:
    """scikit-image sample ``name`` as uint8 [C, H, W] at the spec's input size (center crop to
    the target aspect ratio, then anti-aliased resize)."""
    from skimage import data
    from skimage.transform import resize

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    im = spec.model.image
    img = _center_crop(img, im.height / im.width)
    out = resize(img, (im.height, im.width), anti_aliasing=True, preserve_range=True)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    if im.channels != 3:
        gray = out.mean(axis=0, keepdims=True).round().astype(np.uint8)
        out = np.repeat(gray, im.channels, axis=0)
    return out


def _center_crop(img: np.ndarray, aspect: float) -> np.ndarray:
    h, w = img.shape[:2]
    if h / w > aspect:
        nh = max(1, round(w * aspect))
        top = (h - nh) // 2
        return img[top : top + nh]
    nw = max(1, round(h / aspect))
    left = (w - nw) // 2
    return img[:, left : left + nw]


def calibration_set(spec: Spec) -> np.ndarray:
    """uint8 [B, C, H, W]: the calibration photographs (``EVAL_IMAGE`` excluded)."""
    return np.stack([load_image(n, spec) for n in CALIB_IMAGES])


def random_pixels(spec: Spec, seed: int) -> np.ndarray:
    """Seeded uniform random uint8 pixels [C, H, W] (for bit-exactness on non-natural input)."""
    im = spec.model.image
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(im.channels, im.height, im.width), dtype=np.uint8)
