"""The wheel installs whole: built from the sources, installed with ``--no-deps`` into a folder
and run from another folder by a Python that sees neither the repo nor the editable install
(``python -S``: no site, so no ``.pth`` file; the dependencies come from the venv's
site-packages on ``PYTHONPATH``, after the installed folder)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "edgevit_hw", "hls", "rtl", "sim")  # what the wheel is built from
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so the repo gets no build/ or egg-info."""
    tmp = tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        src, dst = REPO / name, tmp / "src" / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=SKIP)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    _run([*pip, "-w", str(tmp / "dist"), str(tmp / "src")])
    (found,) = (tmp / "dist").glob("edgevit_hw-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    _run([*pip, str(wheel)])
    return target


def _isolated(site: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -S`` with only the installed folder and the dependencies on the path."""
    deps = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), deps]), "PYTHONNOUSERSITE": "1"}
    return _run([sys.executable, "-S", *args], cwd=cwd, env=env)


def test_wheel_carries_backends_as_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"edgevit_hw", wheel.name.split("-py3")[0] +
                                                ".dist-info"}  # fmt: skip
    for folder, pattern in (("hls/include", "*.h"), ("hls/templates", "*.j2"), ("rtl", "*.py"),
                            ("sim", "*.py"), ("sim", "lint.vlt")):  # fmt: skip
        want = {f"edgevit_hw/{folder}/{p.name}" for p in (REPO / folder).glob(pattern)}
        assert want and want <= set(names), sorted(want - set(names))
    assert not any(n.startswith(("rtl/", "sim/", "hls/")) for n in names)


def test_installed_gen_runs_from_another_folder(site, tmp_path):
    cwd, out = tmp_path / "elsewhere", tmp_path / "out"
    cwd.mkdir()
    probe = "import edgevit_hw.hls, edgevit_hw.rtl, edgevit_hw.sim as m; print(m.__file__)"
    where = _isolated(site, ["-c", probe], cwd).stdout.strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    _isolated(site, ["-m", "edgevit_hw.gen", "--config", "micro_moe", "--out", str(out)], cwd)
    hls = out / "hls"
    for pattern in ("*.h", "*.cpp", "include/*.h", "run_hls.tcl"):
        assert list(hls.glob(pattern)), pattern
    kernels = {p.name for p in (REPO / "hls" / "include").glob("*.h")}
    assert {p.name for p in (hls / "include").glob("*.h")} == kernels
    from edgevit_hw.rtl.export import UNIT_CLASSES

    for unit, _, _ in UNIT_CLASSES:
        text = (out / "rtl" / f"evh_{unit}.v").read_text()
        assert f"module evh_{unit}(" in text.replace(" (", "(")
    assert "rtl/" in (out / "README.md").read_text()
    qm = QuantModel.load(out / "model.safetensors")
    px = np.load(out / "vectors" / "input.npy", allow_pickle=False)
    gold = np.load(out / "vectors" / f"golden_{qm.spec.tasks[0]}.npy", allow_pickle=False)
    assert np.array_equal(gold, golden_forward(qm, px, 0).tokens)
