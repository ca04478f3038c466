"""``Accelerator``: one API over every backend; the backend is one argument.

```python
from edgevit_hw.driver import Accelerator

with Accelerator.open("m3vit", backend="golden") as acc:  # or "csim", "rtl", "pynq"
    for r in acc.run("photos/", task="depth"):
        print(r.name, r.tokens.shape, r.cycles)
```

``open`` loads the artifacts (a preset or YAML spec is quantized as ``gen`` does; a ``gen``
output folder is read back from its ``model.safetensors``), connects the backend (a device:
reset and the DRAM image written), refuses a device whose spec ID differs from the
artifacts' and starts it. ``run`` returns one result per frame in order; ``stream`` yields
them one by one for video-like input, keeping a device's input fed while it computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgevit_hw.core.derive import HwParams, derive
from edgevit_hw.core.errors import InputError
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.driver.backends import BACKENDS, FrameResult
from edgevit_hw.driver.errors import BadTask, SpecHashMismatch
from edgevit_hw.driver.frames import frames


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
        if backend not in BACKENDS:
            raise InputError(f"backend must be one of {sorted(BACKENDS)}, not {backend!r}")
        art = Artifacts.load(source)
        acc = cls(art, BACKENDS[backend](art.qmodel, art.hw, **options))
        acc.connect()
        return acc

    def connect(self) -> None:
        """Connect the backend (a device: reset, DRAM image), check its spec ID, start it."""
        try:
            self.backend.connect()
            self.check_spec_id()
            self.backend.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Accelerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        for res in self.backend.results(frames(source, self.spec), t):
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
