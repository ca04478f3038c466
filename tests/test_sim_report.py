"""``python -m edgevit_hw.sim``: the report names its calibration set and its frame."""

import numpy as np
import pytest
from edgevit_hw.sim.report import main


@pytest.mark.csim
def test_report_names_calibration_and_image(tmp_path, capsys, monkeypatch):
    from edgevit_hw.hls import csim
    from skimage import data, io

    monkeypatch.setattr(csim, "CACHE", tmp_path / "cache")  # compiled here, from these sources
    (tmp_path / "cal").mkdir()
    for name in ("coffee", "rocket"):
        io.imsave(tmp_path / "cal" / f"{name}.png", getattr(data, name)(), check_contrast=False)
    frame = tmp_path / "frame.png"
    io.imsave(frame, np.asarray(data.camera()), check_contrast=False)
    argv = ["--config", "micro_moe", "--calib", str(tmp_path / "cal"), "--image", str(frame)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"calibration: 2 images in {tmp_path / 'cal'}" in out
    assert f"image: {frame}" in out and "BIT-EXACT" in out and "MISMATCH" not in out
