"""Frames for the accelerator: any uint8 image source to the model's input, then to beats.

One policy fits an image to the input (:func:`edgevit_hw.ml.images.fit_image`): center crop
to the input's aspect ratio, anti-aliased resize, rounding; grey (the channel mean) when the
spec has other than 3 channels, grey images repeated to 3 channels otherwise. An array that
already has the input's [C, H, W] shape is taken as it is.

Sources: an array ([C, H, W] frame, [H, W] or [H, W, C] image, or a stack [n, ...] of either),
an image file, a ``.npy`` / ``.npz`` file of such arrays, a folder of image files (sorted by
name), or a list of any of these. :class:`Beats` passes raw stream beats through untouched (a
test's way to send a malformed frame). Anything else is refused with one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit_hw.core.errors import InputError
from edgevit_hw.core.spec import Spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Beats:
    """Raw s_axis beats of one frame, uint8 [n, pixels_per_beat + 1] (pixels, tlast), sent as
    they are."""

    beats: np.ndarray
    name: str = "beats"


@dataclass(frozen=True)
class Frame:
    """One frame at the model's input: uint8 [C, H, W] and where it came from."""

    pixels: np.ndarray
    name: str


def _shape(spec: Spec) -> tuple[int, int, int]:
    im = spec.model.image
    return im.channels, im.height, im.width


def _array_frames(arr: np.ndarray, spec: Spec, name: str) -> Iterator[Frame]:
    from edgevit_hw.ml.images import fit_image

    if arr.dtype != np.uint8:
        raise InputError(f"{name}: frames must be uint8 pixels, not {arr.dtype}")
    want = _shape(spec)
    if arr.shape == want:
        yield Frame(arr, name)
    elif arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
        yield Frame(fit_image(arr, spec), name)
    elif arr.ndim == 4:
        for i, one in enumerate(arr):
            yield from _array_frames(one, spec, f"{name}[{i}]")
    else:
        raise InputError(f"{name}: an array must be a frame {list(want)}, an image [H, W] or"
                         f" [H, W, C], or a stack of them, not {list(arr.shape)}")  # fmt: skip


def _file_frames(path: Path, spec: Spec) -> Iterator[Frame]:
    from edgevit_hw.ml.images import read_image

    if path.suffix == ".npy":
        yield from _array_frames(np.load(path, allow_pickle=False), spec, path.name)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for key in sorted(z.files):
                yield from _array_frames(z[key], spec, f"{path.name}:{key}")
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        yield from _array_frames(read_image(path, "frames"), spec, path.name)
    else:
        raise InputError(f"frames: {str(path)!r} must be an image, .npy or .npz file")


def _samples() -> tuple[str, ...]:
    from edgevit_hw.ml.images import SAMPLES

    return tuple(SAMPLES)


def frames(source, spec: Spec) -> Iterator[Frame | Beats]:
    """Every frame of ``source``, fitted to ``spec``'s input, in order (lazily); a
    scikit-image photograph's name is a source too."""
    from edgevit_hw.ml.images import load_image

    if isinstance(source, Beats | Frame):
        yield source
    elif isinstance(source, np.ndarray):
        yield from _array_frames(source, spec, "array")
    elif isinstance(source, str) and source in _samples():
        yield Frame(load_image(source, spec), source)
    elif isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"frames: folder {str(path)!r} holds no image files")
            for f in files:
                yield from _file_frames(f, spec)
        elif path.is_file():
            yield from _file_frames(path, spec)
        else:
            raise InputError(f"frames: {str(path)!r} is neither a file nor a folder")
    elif isinstance(source, Iterable):
        for item in source:
            yield from frames(item, spec)
    else:
        raise InputError(f"frames must be arrays, image files or folders, not {type(source)}")
