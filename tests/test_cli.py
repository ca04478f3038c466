"""Every command line that calibrates takes ``--calib`` and refuses a bad one (or a bad output
folder, or a bad option) with one line and exit status 2; shared option checks."""

import importlib

import pytest

from edgevit_hw.cli import task_indices
from edgevit_hw.core.errors import InputError
from edgevit_hw.core.spec import load_spec

CALIB_ERROR = "error: --calib must be a folder of images or an .npz of pixels, not 'x.txt'\n"
COMMANDS = {  # module with main(argv) -> arguments before --calib
    "edgevit_hw.gen": ["--config", "micro_moe"],
    "edgevit_hw.sim.report": ["--config", "micro_moe"],
    "edgevit_hw.hls.csim": ["--config", "micro_moe"],
    "edgevit_hw.ml.quality": ["--config", "micro_moe"],
    "edgevit_hw.ml.importers": ["m3vit", "ckpt.pth"],
    "edgevit_hw.apps.heads": ["--config", "micro_moe"],
}


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_calibrating_command_refuses_a_bad_calib(module, tmp_path, capsys):
    main = importlib.import_module(module).main
    assert main([*COMMANDS[module], "--calib", "x.txt", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == CALIB_ERROR


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_command_has_one_line_usage_errors(module, capsys):
    main = importlib.import_module(module).main
    assert main([*COMMANDS[module], "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --no-such-option" in err


@pytest.mark.parametrize("module", ["edgevit_hw.gen", "edgevit_hw.sim.report",
                                    "edgevit_hw.ml.quality", "edgevit_hw.apps.heads",
                                    "edgevit_hw.rtl.export"])  # fmt: skip
def test_out_pointing_at_a_file_is_one_line(module, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    argv = ["--config", "micro_moe", "--out", str(tmp_path / "f")]
    assert importlib.import_module(module).main(argv) == 2
    want = f"error: --out must be a folder, not the existing file '{tmp_path / 'f'}'\n"
    assert capsys.readouterr().err == want


def test_task_indices():
    spec = load_spec("micro_moe")
    assert task_indices(spec, None) == [0, 1]
    assert task_indices(spec, "depth") == [1] and task_indices(spec, "0") == [0]
    for bad in ("2", "-1", "x", ""):
        with pytest.raises(InputError, match=r"--task must be a task index 0\.\.1 or a name"):
            task_indices(spec, bad)
