"""Frame sequences for the whole-accelerator benches: good frames with their golden tokens, and
malformed ones with the STATUS bit that must drop them (the bench's case file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.program.isa import Flag, Op
from edgevit_hw.program.perf import estimate
from edgevit_hw.program.streams import frame_beats

if TYPE_CHECKING:  # the flow (torch) is imported only to write a case, not to read one
    from edgevit_hw.flow import Prepared


def _good(prep: Prepared, name: str, pixels: np.ndarray, task: int) -> dict:
    tokens = golden_forward(prep.qmodel, pixels, task).tokens
    beats = frame_beats(pixels, prep.hw)
    return {"name": name, "task": task, "beats": beats, "tokens": tokens, "drop": ""}


def _bad(name: str, beats: np.ndarray, task: int, drop: str, **extra) -> dict:
    return {"name": name, "task": task, "beats": beats, "tokens": None, "drop": drop, **extra}


def first_weight_byte(prep: Prepared) -> int:
    """Byte offset in the image of the first matrix job's first weight beat."""
    w = next(i.w for i in prep.program.insns if i.OP == Op.MATMUL)
    return w * prep.hw.streams.beat_bytes


def ahead_weight_byte(prep: Prepared) -> int | None:
    """Byte offset of the first weight beat of the first matrix job that follows another with
    fixed rows (an MLP's fc2): the engine loads it ahead, while the job before runs. None for
    a model without one (every block MoE)."""
    insns, fixed = prep.program.insns, Flag.GATHER | Flag.SCATTER
    pairs = zip(insns, insns[1:], strict=False)
    found = (b.w * prep.hw.streams.beat_bytes for a, b in pairs
             if a.OP == b.OP == Op.MATMUL and not (a.flags | b.flags) & fixed)  # fmt: skip
    return next(found, None)


def protocol_frames(prep: Prepared, seed: int) -> list[dict]:
    """Two good frames back to back with a task switch, then a short frame, a long frame, a
    bad task id, a read error and a read error in weights loaded ahead of their job (the
    reader is flushed while the engine's loader works a job ahead), each followed by a good
    frame."""
    rng = np.random.default_rng(seed)
    a, spec = prep.hw.arith, prep.spec
    shape = (spec.model.image.channels, spec.model.image.height, spec.model.image.width)
    last = a.tasks - 1

    def noise():
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    base = frame_beats(noise(), prep.hw)
    extra = rng.integers(0, 256, (5, base.shape[1]), dtype=np.uint8)
    extra[:, -1] = 0
    long = np.concatenate([base, extra])
    long[len(base) - 1, -1], long[-1, -1] = 0, 1
    short = base[: len(base) // 2].copy()
    short[-1, -1] = 1
    ahead = ahead_weight_byte(prep)
    frames = [
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
    if ahead is not None:
        frames += [_bad("read_error_ahead", base, last, "axi_read_error", bad_bytes=(ahead,)),
                   _good(prep, "noise6", noise(), 0)]  # fmt: skip
    return frames


def write_case(config: str, folder: Path, seed: int) -> Path:
    """The case file of :func:`protocol_frames` for ``config``; returns its path."""
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import prepare

    prep = prepare(load_spec(config))
    frames = protocol_frames(prep, seed)
    model = estimate(prep.program).total
    case = {
        "image": prep.program.image,
        "labels": list(prep.program.labels),
        "frames": frames,
        "cycles_per_frame": int(6 * model + 200_000),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"case-{config}-{seed}.npz"
    save_case(path, case)
    return path


def save_case(path: Path, case: dict) -> None:
    """A case as an ``.npz`` of plain arrays (no pickle): the image, each frame's beats and
    tokens, and the rest as a JSON string."""
    arrays = {"image": np.frombuffer(case["image"], np.uint8)}
    meta = {k: v for k, v in case.items() if k not in ("image", "frames")}
    meta["frames"] = []
    for i, f in enumerate(case["frames"]):
        arrays[f"beats{i}"] = f["beats"]
        if f["tokens"] is not None:
            arrays[f"tokens{i}"] = f["tokens"]
        meta["frames"].append({k: v for k, v in f.items() if k not in ("beats", "tokens")})
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def load_case(path: str | Path) -> dict:
    """Inverse of :func:`save_case`."""
    with np.load(path, allow_pickle=False) as z:
        case = json.loads(str(z["meta"]))
        case["image"] = z["image"].tobytes()
        for i, f in enumerate(case["frames"]):
            f["beats"] = z[f"beats{i}"]
            f["tokens"] = z[f"tokens{i}"] if f"tokens{i}" in z else None
    return case
