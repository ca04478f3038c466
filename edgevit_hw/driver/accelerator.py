"""``Accelerator``: one API over every backend; the backend is one argument.

```python
from edgevit_hw.driver import Accelerator

acc = Accelerator.open("m3vit", backend="golden")      # or "csim"; a gen folder works too
for r in acc.run("photos/", task="depth"):
    print(r.name, r.tokens.shape, r.cycles)
```

``open`` loads the artifacts (a preset or YAML spec is quantized as ``gen`` does; a ``gen``
output folder is read back from its ``model.safetensors``), starts the backend and refuses a
device whose spec ID differs from the artifacts'. ``run`` returns one result per frame in
order; ``stream`` yields them one by one for video-like input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.errors import InputError
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.driver.backends import BACKENDS, LATER, FrameResult
from edgevit_hw.driver.errors import BadTask, SpecHashMismatch
from edgevit_hw.driver.frames import Frame, frames


@dataclass(frozen=True)
class Artifacts:
    """What a backend is built from: the quantized model and its derived parameters."""

    qmodel: QuantModel
    hw: HwParams

    @classmethod
    def load(cls, source) -> Artifacts:
        """A gen output folder, a preset name or YAML path, or an object with ``qmodel``."""
        if hasattr(source, "qmodel"):
            return cls(source.qmodel, derive(source.qmodel.spec))
        folder = Path(str(source))
        if folder.is_dir():
            model = folder / "model.safetensors"
            if not model.is_file():
                raise InputError(
                    f"{str(folder)!r} is not a gen output folder (no model.safetensors)"
                )
            qm = QuantModel.load(model)
            return cls(qm, derive(qm.spec))
        from edgevit_hw.core.spec import load_spec
        from edgevit_hw.flow import prepare

        prep = prepare(load_spec(str(source)))
        return cls(prep.qmodel, prep.hw)


class Accelerator:
    """Frames in, integer tokens out, on the chosen backend."""

    def __init__(self, artifacts: Artifacts, backend):
        self.artifacts, self.backend = artifacts, backend
        self.spec = artifacts.qmodel.spec

    @classmethod
    def open(cls, source, backend: str = "golden", **options) -> Accelerator:
        if backend in LATER:
            raise InputError(f"backend {backend!r} ({LATER[backend]}) needs the RTL top, which"
                             f" is not built yet; use one of {sorted(BACKENDS)}")  # fmt: skip
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {sorted(BACKENDS)}, not {backend!r}")
        art = Artifacts.load(source)
        acc = cls(art, BACKENDS[backend](art.qmodel, art.hw, **options))
        acc.check_spec_id()
        return acc

    def check_spec_id(self) -> None:
        got, want = self.backend.spec_id(), self.artifacts.hw.hash32
        if got != want:
            raise SpecHashMismatch(f"the {self.backend.name} device reports spec ID 0x{got:08x};"
                                   f" the artifacts are spec 0x{want:08x}")  # fmt: skip

    def task_index(self, task: int | str) -> int:
        tasks = list(self.spec.tasks)
        if isinstance(task, str) and task in tasks:
            return tasks.index(task)
        if isinstance(task, int) and 0 <= task < len(tasks):
            return task
        raise BadTask(f"task must be an index 0..{len(tasks) - 1} or a name in {tasks},"
                      f" not {task!r}")  # fmt: skip

    def stream(self, source: Iterable, task: int | str = 0,
               dequantize: bool = False) -> Iterator[FrameResult]:  # fmt: skip
        """Results one frame at a time, as frames arrive from ``source``."""
        t = self.task_index(task)
        for i, item in enumerate(frames(source, self.spec)):
            res = self.backend.run_one(i, item, t)
            res.pixels = item.pixels if isinstance(item, Frame) else None
            if dequantize and res.tokens is not None:
                res.floats = self.artifacts.qmodel.dequantize(res.tokens)
            yield res

    def run(self, source, task: int | str = 0, dequantize: bool = False) -> list[FrameResult]:
        return list(self.stream(source, task, dequantize))

    def fps(self, result: FrameResult) -> float | None:
        """Frames per second at the spec's clock, from a frame's cycles."""
        if not result.cycles:
            return None
        return self.artifacts.hw.clock_mhz * 1e6 / result.cycles
