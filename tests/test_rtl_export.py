"""The Verilog export is a pure function (``{file: text}``, memoized); its command line writes
the files through the flow and refuses bad input with one line."""

import pytest
from edgevit_hw.rtl.export import UNIT_CLASSES, main, unit_verilog, verilog_files

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec


@pytest.fixture(scope="module")
def hw():
    return derive(load_spec("micro_moe"))


def test_verilog_files_is_pure(hw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = verilog_files(hw, ["router", "expert_queues"])
    assert list(files) == ["evh_router.v", "evh_expert_queues.v"]
    assert files["evh_router.v"] is unit_verilog("router", hw)  # memoized, not re-converted
    assert files["evh_router.v"].startswith(f"// generated from spec {hw.spec_hash[:16]}")
    assert "module evh_router" in files["evh_router.v"]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_writes_units_and_derived_json(tmp_path, capsys):
    assert main(["--config", "micro_moe", "--unit", "router", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "derived.json"), str(tmp_path / "evh_router.v")]
    assert (tmp_path / "evh_router.v").read_text().startswith("// generated from spec")


def test_cli_bad_unit_is_one_line(capsys):
    assert main(["--config", "micro_moe", "--unit", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --unit: invalid choice: 'nope'" in err
    assert {u for u, _, _ in UNIT_CLASSES} >= {"compute_unit", "attention", "router"}
