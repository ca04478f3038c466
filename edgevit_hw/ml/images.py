"""Images at the model's input size: scikit-image's bundled photographs, image files, folders
and ``.npz`` files of pixels; and the calibration sets built from them.

No download: the default photographs ship inside the scikit-image wheel. Every image is fitted
the same way (:func:`fit_image`): center crop to the input's aspect ratio, anti-aliased resize,
rounding to uint8 [C, H, W]. ``EVAL_IMAGE`` is never part of a calibration set, so fidelity
figures are measured on an unseen image: :func:`check_calibration` refuses any set holding an
image with the same pixels after fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit_hw.core.errors import InputError
from edgevit_hw.core.spec import Spec

EVAL_IMAGE = "astronaut"
CALIB_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
CALIB_HELP = "a folder of images or an .npz of pixels"
# scikit-image photographs that ship inside its wheel (no download): what ``--image`` names
SAMPLES = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo",
    "microaneurysms", "moon", "page", "retina", "rocket", "text",
)  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    """uint8 pixels [B, C, H, W] at the spec's input size, one name per image, and the label
    every report prints (where the set came from and how many images it holds)."""

    pixels: np.ndarray
    names: tuple[str, ...]
    label: str


def fit_image(img: np.ndarray, spec: Spec) -> np.ndarray:
    """A uint8 image [H, W] or [H, W, C] (C in 1, 3, 4; alpha dropped) as uint8 [C, H, W] at
    the spec's input size: center crop to the target aspect ratio, anti-aliased resize,
    rounding; grayscale (the channel mean, rounded) when the spec has other than 3 channels."""
    from skimage.transform import resize

    im = spec.model.image
    img = np.asarray(img)
    img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = _center_crop(img[..., :3], im.height / im.width)
    out = resize(img, (im.height, im.width), anti_aliasing=True, preserve_range=True)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    if im.channels != 3:
        gray = out.mean(axis=0, keepdims=True).round().astype(np.uint8)
        out = np.repeat(gray, im.channels, axis=0)
    return out


def load_image(name: str, spec: Spec) -> np.ndarray:
    """scikit-image sample ``name`` as uint8 [C, H, W] at the spec's input size."""
    from skimage import data

    return fit_image(np.asarray(getattr(data, name)()), spec)


def _center_crop(img: np.ndarray, aspect: float) -> np.ndarray:
    h, w = img.shape[:2]
    if h / w > aspect:
        nh = max(1, round(w * aspect))
        top = (h - nh) // 2
        return img[top : top + nh]
    nw = max(1, round(h / aspect))
    left = (w - nw) // 2
    return img[:, left : left + nw]


def load_frame(source: str, spec: Spec) -> np.ndarray:
    """``--image``: an image file, or the name of a scikit-image photograph, fitted to the spec
    (uint8 [C, H, W])."""
    if Path(source).is_file():
        return fit_image(read_image(Path(source), "--image"), spec)
    if source in SAMPLES:
        return load_image(source, spec)
    raise InputError(f"--image must be an image file or a scikit-image photograph "
                     f"({', '.join(SAMPLES[:4])}, ...), not {source!r}")  # fmt: skip


def read_image(path: Path, option: str) -> np.ndarray:
    import warnings

    from skimage.io import imread

    try:
        with warnings.catch_warnings():  # imageio's plugin search warns on unreadable files
            warnings.simplefilter("ignore")
            img = np.asarray(imread(str(path)))
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{option}: cannot read image {str(path)!r} ({exc})") from None
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise InputError(f"{option}: {str(path)!r} must be an 8-bit grayscale or color image, "
                         f"not {img.dtype} {list(img.shape)}")  # fmt: skip
    return img


def default_calibration(spec: Spec) -> Calibration:
    """The calibration photographs (``EVAL_IMAGE`` excluded)."""
    pixels = np.stack([load_image(n, spec) for n in CALIB_IMAGES])
    label = f"{len(CALIB_IMAGES)} scikit-image photographs ({', '.join(CALIB_IMAGES)})"
    return Calibration(pixels, CALIB_IMAGES, label)


def calibration_set(spec: Spec) -> np.ndarray:
    """uint8 [B, C, H, W]: the calibration photographs (``EVAL_IMAGE`` excluded)."""
    return default_calibration(spec).pixels


def load_calibration(source: str, spec: Spec) -> Calibration:
    """``--calib``: a folder of image files (read in name order) or an ``.npz`` of pixels
    (one array, or the one named ``pixels``: uint8 [B, C, H, W] at the input size, or images
    [B, H, W], [B, H, W, C] or [B, C, H, W] of any size, fitted like every image)."""
    path = check_calib_path(source)
    cal = _folder(path, spec) if path.is_dir() else _npz(path, spec)
    check_calibration(cal, spec)
    return cal


def check_calib_path(source: str) -> Path:
    """``--calib`` names an existing folder or ``.npz`` file (checked before slow steps)."""
    path = Path(source)
    if not (path.is_dir() or (path.suffix == ".npz" and path.is_file())):
        raise InputError(f"--calib must be {CALIB_HELP}, not {source!r}")
    return path


def _folder(path: Path, spec: Spec) -> Calibration:
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--calib folder {str(path)!r} holds no images "
                         f"({', '.join(IMAGE_SUFFIXES)})")  # fmt: skip
    pixels = np.stack([fit_image(read_image(f, "--calib"), spec) for f in files])
    return Calibration(pixels, tuple(f.name for f in files), f"{len(files)} images in {path}")


def _npz(path: Path, spec: Spec) -> Calibration:
    arr = _npz_array(path)
    im = spec.model.image
    if arr.shape[1:] == (im.channels, im.height, im.width):
        pixels = arr
    else:
        pixels = np.stack([fit_image(_as_hwc(a, path), spec) for a in arr])
    names = tuple(f"{path.name}[{i}]" for i in range(len(pixels)))
    return Calibration(pixels, names, f"{len(pixels)} images in {path}")


def _npz_array(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "pixels" if "pixels" in keys else (keys[0] if len(keys) == 1 else None)
            arr = None if key is None else z[key]
    except (OSError, ValueError) as exc:
        raise InputError(f"--calib: cannot read {str(path)!r} ({exc})") from None
    if arr is None:
        raise InputError(f"--calib {str(path)!r} must hold one array or one named 'pixels', "
                         f"not {keys}")  # fmt: skip
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or not len(arr):
        raise InputError(f"--calib {str(path)!r}: pixels must be uint8 [n, C, H, W], "
                         f"[n, H, W, C] or [n, H, W] with n > 0, not {arr.dtype} "
                         f"{list(arr.shape)}")  # fmt: skip
    return arr


def _as_hwc(img: np.ndarray, path: Path) -> np.ndarray:
    """One image of an ``.npz``: [H, W], [H, W, C] or [C, H, W] (C in 1, 3, 4)."""
    if img.ndim == 2 or img.shape[-1] in (1, 3, 4):
        return img
    if img.shape[0] in (1, 3, 4):
        return img.transpose(1, 2, 0)
    raise InputError(f"--calib {str(path)!r}: cannot tell the channel axis of images shaped "
                     f"{list(img.shape)} (expected 1, 3 or 4 channels)")  # fmt: skip


def check_calibration(cal: Calibration, spec: Spec, held_out: tuple[str, ...] = (EVAL_IMAGE,)):
    """Refuse a calibration set holding a held-out image (same pixels at the input size)."""
    for name in held_out:
        ref = load_image(name, spec)
        same = np.flatnonzero((cal.pixels == ref).all(axis=(1, 2, 3)))
        if len(same):
            raise InputError(f"calibration set {cal.label}: {cal.names[same[0]]} is the "
                             f"evaluation image {name!r} (same pixels after resizing); "
                             f"evaluation images never enter calibration")  # fmt: skip


def random_pixels(spec: Spec, seed: int) -> np.ndarray:
    """Seeded uniform random uint8 pixels [C, H, W] (for bit-exactness on non-natural input)."""
    im = spec.model.image
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(im.channels, im.height, im.width), dtype=np.uint8)
