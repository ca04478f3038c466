"""Options shared by the command lines that build a model (gen, sim, csim) and their checks.

Every check raises :class:`~edgevit_hw.core.errors.InputError` with one line naming the option
and what it must be; :func:`~edgevit_hw.core.errors.run_cli` prints it and exits with status 2.
"""

from __future__ import annotations

import argparse

from edgevit_hw.core.errors import InputError
from edgevit_hw.core.spec import Spec
from edgevit_hw.ml.images import CALIB_HELP, EVAL_IMAGE


def add_model_args(ap: argparse.ArgumentParser) -> None:
    """``--config``, ``--weights``, ``--calib``, ``--image``."""
    ap.add_argument("--config", required=True, help="preset name or YAML spec path")
    ap.add_argument("--weights", help="float checkpoint (.safetensors or .npz), M3ViT names")
    ap.add_argument("--calib", help=f"calibration set: {CALIB_HELP} (default: the weights "
                    "file's own calibration images, else 5 scikit-image photographs)")  # fmt: skip
    ap.add_argument("--image", help="the frame (golden vectors, simulation): an image file or "
                    f"a scikit-image photograph name (default {EVAL_IMAGE!r})")  # fmt: skip


def task_indices(spec: Spec, text: str | None) -> list[int]:
    """``--task``: an index or a name of ``spec.tasks``; every task when not given."""
    tasks = list(spec.tasks)
    if text is None:
        return list(range(len(tasks)))
    if text in tasks:
        return [tasks.index(text)]
    if text.isdigit() and int(text) < len(tasks):
        return [int(text)]
    raise InputError(f"--task must be a task index 0..{len(tasks) - 1} or a name in {tasks}, "
                     f"not {text!r}")  # fmt: skip
