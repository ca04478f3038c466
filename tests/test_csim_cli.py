"""``python -m edgevit_hw.csim``: bad inputs (preset, spec, task, output folder, calibration)
are one line and exit 2, checked before anything is quantized or compiled; a good run names
its calibration set and compares each task bit for bit."""

import subprocess
import sys

import pytest
import yaml
from edgevit_hw.hls import csim

import edgevit_hw.flow
from edgevit_hw.core.spec import load_spec


@pytest.fixture
def nothing_runs(monkeypatch):
    """Quantizing or compiling before the arguments are checked fails the test."""

    def refuse(*_a, **_k):
        raise AssertionError("ran before the arguments were checked")

    monkeypatch.setattr(edgevit_hw.flow, "prepare", refuse)
    monkeypatch.setattr(csim, "build", refuse)


def _bad_spec(tmp_path) -> str:
    data = load_spec("micro_moe").to_dict()
    data["moe"]["top_k"] = 9
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    return str(tmp_path / "bad.yaml")


CASES = [
    (["--config", "nosuch"], "--config must be a preset (deit_tiny, digits_moe, m3vit"),
    (["--config", "BAD"], "moe.top_k must be at most moe.experts (4), not 9"),
    (["--config", "micro_moe", "--task", "7"],
     "--task must be a task index 0..1 or a name in ['semseg', 'depth'], not '7'"),
    (["--config", "micro_moe", "--task", "segm"], "--task must be a task index 0..1 or a name"),
    (["--config", "micro_moe", "--task", "-1"], "--task must be a task index 0..1 or a name"),
    (["--config", "micro_moe", "--out", "FILE"], "--out must be a folder, not the existing file"),
    (["--config", "micro_moe", "--random", "x"], "python -m edgevit_hw.csim: argument --random"),
]  # fmt: skip


@pytest.mark.parametrize("args,message", CASES)
def test_bad_input_is_one_line_before_anything_runs(tmp_path, capsys, nothing_runs, args,
                                                    message):  # fmt: skip
    (tmp_path / "FILE").write_text("")
    subst = {"BAD": _bad_spec(tmp_path), "FILE": str(tmp_path / "FILE")}
    assert csim.main([subst.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err


def test_bad_calibration_is_one_line_before_compiling(capsys, monkeypatch):
    monkeypatch.setattr(csim, "build", lambda *a, **k: pytest.fail("compiled"))
    assert csim.main(["--config", "micro_moe", "--calib", "x.txt"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --calib must be a folder of images or an .npz of pixels, not 'x.txt'\n"


def test_entry_point_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "edgevit_hw.csim", "--config", "micro_moe", "--task", "9"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.csim
def test_task_by_name_runs_bit_exact(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(csim, "CACHE", tmp_path / "cache")  # compiled here, from these sources
    assert csim.main(["--config", "micro_moe", "--task", "depth"]) == 0
    out = capsys.readouterr().out
    assert "calibration: 5 scikit-image photographs" in out
    assert "task 1 (depth), image astronaut" in out and "BIT-EXACT" in out
    assert "task 0" not in out
