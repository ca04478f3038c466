"""Frame sequences for the whole-accelerator benches: good frames with their golden tokens, and
malformed ones with the STATUS bit that must drop them (the bench's case file)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import Prepared, prepare
from edgevit_hw.program.isa import Op
from edgevit_hw.program.perf import estimate
from edgevit_hw.program.streams import frame_beats


def _good(prep: Prepared, name: str, pixels: np.ndarray, task: int) -> dict:
    tokens = golden_forward(prep.qmodel, pixels, task).tokens
    beats = frame_beats(pixels, prep.hw.arith.patch)
    return {"name": name, "task": task, "beats": beats, "tokens": tokens, "drop": ""}


def _bad(name: str, beats: np.ndarray, task: int, drop: str, **extra) -> dict:
    return {"name": name, "task": task, "beats": beats, "tokens": None, "drop": drop, **extra}


def first_weight_byte(prep: Prepared) -> int:
    """Byte offset in the image of the first matrix job's first weight beat."""
    w = next(i.w for i in prep.program.insns if i.OP == Op.MATMUL)
    return w * prep.hw.streams.beat_bytes


def protocol_frames(prep: Prepared, seed: int) -> list[dict]:
    """Two good frames back to back with a task switch, then a short frame, a long frame, a
    bad task id and a read error, each followed by a good frame."""
    rng = np.random.default_rng(seed)
    a, spec = prep.hw.arith, prep.spec
    shape = (spec.model.image.channels, spec.model.image.height, spec.model.image.width)
    last = a.tasks - 1

    def noise():
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    base = frame_beats(noise(), a.patch)
    long = np.concatenate([base, np.stack([rng.integers(0, 256, 5), np.zeros(5)], 1)]).astype(
        np.uint8
    )
    long[len(base) - 1, 1], long[-1, 1] = 0, 1
    short = base[: len(base) // 2].copy()
    short[-1, 1] = 1
    return [
        _good(prep, "eval", prep.pixels(), 0),
        _good(prep, "noise1", noise(), last),
        _bad("short", short, 0, "short_frame"),
        _good(prep, "noise2", noise(), 0),
        _bad("long", long, 0, "long_frame"),
        _good(prep, "noise3", noise(), last),
        _bad("bad_task", base, a.tasks, "bad_task"),
        _good(prep, "noise4", noise(), 0),
        _bad("read_error", base, 0, "axi_read_error", bad_bytes=(first_weight_byte(prep),)),
        _good(prep, "noise5", noise(), last),
    ]


def write_case(config: str, folder: Path, seed: int) -> Path:
    """The case file of :func:`protocol_frames` for ``config``; returns its path."""
    prep = prepare(load_spec(config))
    frames = protocol_frames(prep, seed)
    model = estimate(prep.program).total
    case = {
        "image": prep.program.image,
        "labels": prep.program.labels,
        "frames": frames,
        "cycles_per_frame": 6 * model + 200_000,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"case-{config}-{seed}.pkl"
    with open(path, "wb") as fh:
        pickle.dump(case, fh)
    return path
