"""The accelerator's AXI4-Stream input as data: one frame of pixels as the beats the hardware
takes (``s_axis``: ``streams.pixels_per_beat`` unsigned pixels per beat, lane j in bits
8j .. 8j+7, so the beats carry the frame's bytes in order; patches in row-major grid order, each
patch in (channel, row, column) order, ``tlast`` on the frame's last beat), and the frame check
the hardware makes on receiving them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevit_hw.core.derive import HwParams
from edgevit_hw.core.golden import patchify
from edgevit_hw.core.spec import Spec


def pixel_beats(hw: HwParams) -> int:
    """s_axis beats of one frame."""
    return hw.arith.patches * hw.arith.patch_dim // hw.streams.pixels_per_beat


def out_beats(hw: HwParams) -> int:
    """m_axis beats of one frame's output tokens."""
    return hw.arith.tokens * hw.arith.embed_dim // hw.streams.tokens_per_beat


def frame_beats(pixels: np.ndarray, hw: HwParams) -> np.ndarray:
    """One frame [C, H, W] uint8 as uint8 beats [beats, pixels_per_beat + 1]: the beat's
    pixels (lane order), then tlast."""
    per = hw.streams.pixels_per_beat
    flat = patchify(np.asarray(pixels), hw.arith.patch).reshape(-1, per).astype(np.uint8)
    last = np.zeros((len(flat), 1), np.uint8)
    last[-1] = 1
    return np.concatenate([flat, last], axis=1)


def beat_bytes(beats: np.ndarray) -> bytes:
    """The stream's payload bytes in order (every beat's pixel lanes, tlast dropped)."""
    return np.ascontiguousarray(np.asarray(beats, np.uint8)[:, :-1]).tobytes()


def unpatchify(patches: np.ndarray, spec: Spec) -> np.ndarray:
    """Inverse of ``patchify``: [patches, patch_dim] -> [C, H, W] uint8 pixels."""
    m = spec.model
    (gh, gw), p, c = m.grid, m.patch, m.image.channels
    x = np.asarray(patches).reshape(gh, gw, c, p, p).transpose(2, 0, 3, 1, 4)
    return x.reshape(c, gh * p, gw * p).astype(np.uint8)


@dataclass(frozen=True)
class Received:
    """What the frame check makes of the beats up to (and including) the first ``tlast``:
    ``patches`` [patches, patch_dim] when the count is exact, else which error it was."""

    patches: np.ndarray | None
    short: bool
    long: bool
    consumed: int  # beats taken from the stream (through tlast, or all of them)


def receive(beats: np.ndarray, hw: HwParams) -> Received:
    """The hardware's frame check: beats through the first ``tlast`` form one frame; fewer
    than the frame's beats is a short frame, more (no ``tlast`` on the last beat) a long one,
    and either is dropped whole. A stream that ends without ``tlast`` is a short frame."""
    a, per, want = hw.arith, hw.streams.pixels_per_beat, pixel_beats(hw)
    beats = np.asarray(beats, np.uint8).reshape(-1, per + 1)
    ends = np.flatnonzero(beats[:, per])
    n = int(ends[0]) + 1 if len(ends) else len(beats)
    ok = n == want and len(ends) > 0
    patches = beats[:n, :per].astype(np.int64).reshape(a.patches, a.patch_dim) if ok else None
    return Received(patches, n < want or not len(ends), n > want, n)
