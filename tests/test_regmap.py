"""The register map: Vitis control block, unique aligned offsets, and three exports that agree
(the C header compiled with g++, the Python module executed, the JSON parsed)."""

import json
import subprocess

import pytest
from conftest import prepared
from edgevit_hw.hls import csim

from edgevit_hw.program.regmap import COUNTED_UNITS, WORD, emit_regmap, registers


@pytest.fixture(scope="module")
def hw():
    return prepared("micro_moe").hw


def test_vitis_control_block_and_layout(hw):
    regs = {r.name: r for r in registers(hw)}
    assert [regs[n].offset for n in ("CTRL", "GIE", "IER", "ISR")] == [0x00, 0x04, 0x08, 0x0C]
    ctrl = {f.name: f.bit for f in regs["CTRL"].fields}
    assert (ctrl["ap_start"], ctrl["ap_done"], ctrl["ap_idle"], ctrl["ap_ready"]) == (0, 1, 2, 3)
    assert ctrl["auto_restart"] == 7
    offsets = [r.offset for r in registers(hw)]
    assert offsets == sorted(set(offsets)) and all(o % WORD == 0 for o in offsets)
    assert regs["DRAM_BASE_HI"].offset == regs["DRAM_BASE_LO"].offset + WORD
    status = {f.name for f in regs["STATUS"].fields}
    assert {"short_frame", "long_frame", "bad_task", "axi_read_error", "bad_program"} <= status
    for unit in COUNTED_UNITS:
        assert f"{unit.upper()}_BUSY_LO" in regs and f"{unit.upper()}_STALL_HI" in regs


def _from_python(text: str) -> dict[str, int]:
    scope: dict = {}
    exec(compile(text, "regmap.py", "exec"), scope)
    return {k: v for k, v in scope.items() if k.isupper()}


def _from_c(text: str, tmp_path) -> dict[str, int]:
    names = [line.split()[1] for line in text.splitlines() if line.startswith("#define")]
    body = "".join(f'std::printf("%s %u\\n", "{n}", unsigned({n}));' for n in names)
    (tmp_path / "regmap.h").write_text(text)
    (tmp_path / "dump.cpp").write_text(
        f'#include <cstdio>\n#include "regmap.h"\nint main() {{ {body} return 0; }}\n'
    )
    exe = tmp_path / "dump"
    subprocess.run([csim.CXX, *csim.CXXFLAGS, f"-I{tmp_path}", str(tmp_path / "dump.cpp"),
                    "-o", str(exe)], check=True, capture_output=True)  # fmt: skip
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    return dict(zip(out[::2], map(int, out[1::2]), strict=True))


@pytest.mark.csim
def test_the_three_exports_agree(hw, tmp_path):
    files = emit_regmap(hw)
    doc = json.loads(files["regmap.json"])
    assert doc["spec_id"] == hw.hash32
    py, c = _from_python(files["regmap.py"]), _from_c(files["regmap.h"], tmp_path)
    assert py["SPEC_ID_VALUE"] == c["EVH_SPEC_ID_VALUE"] == hw.hash32
    for r in doc["registers"]:
        assert py[r["name"]] == c[f"EVH_REG_{r['name']}"] == r["offset"]
        for f in r["fields"]:
            mask = ((1 << f["width"]) - 1) << f["bit"]
            key = f"{r['name']}_{f['name'].upper()}"
            assert py[key] == c[f"EVH_{key}_MASK"] == mask
            assert c[f"EVH_{key}_SHIFT"] == f["bit"]
