"""``gen`` writes ``DIR/rtl``: the top's Verilog, the register map, a clean Verilator lint report
naming every waiver, and a Vivado block-design script whose ports and widths are the top's
(the script cannot run here: no Vivado). No test here runs Yosys."""

from __future__ import annotations

import json
import re

import pytest
from edgevit_hw.rtl.vivado import BOARDS, TOP_BUSES, bd_tcl_name, emit_bd_tcl
from edgevit_hw.sim.lint_report import waivers
from edgevit_hw.sim.runner import LINT_VLT

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec, spec_from_dict
from edgevit_hw.gen import main

CELL = "evh_top_0"
BUS_SIGNALS = {  # what each bus of the top must carry for its interface to be inferred
    "s_axis": {"tdata", "tvalid", "tready", "tlast"},
    "m_axis": {"tdata", "tvalid", "tready", "tlast"},
    "m_axi": {"araddr", "arlen", "arsize", "arburst", "arvalid", "arready", "rdata", "rresp",
              "rlast", "rvalid", "rready"},
    "s_axil": {"awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp",
               "bvalid", "bready", "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid",
               "rready"},
}  # fmt: skip


@pytest.fixture(scope="module")
def rtl(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    assert main(["--config", "micro_moe", "--out", str(out)]) == 0
    return out / "rtl"


@pytest.fixture(scope="module")
def hw():
    return derive(load_spec("micro_moe"))


def top_ports(verilog: str) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of module evh_top (its declarations up to endmodule)."""
    body = verilog[verilog.index("module evh_top(") :]
    body = body[: body.index("endmodule")]
    decl = re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, flags=re.M)
    return {name: (d, int(msb or 0) + 1) for d, msb, name in decl}


def tcl_config(tcl: str, key: str) -> str:
    """The value a ``CONFIG.<key> <value>`` pair of the script sets (exactly once)."""
    (value,) = re.findall(rf"CONFIG\.{re.escape(key)} (\S+)", tcl)
    return value


def test_gen_writes_the_rtl_folder(rtl, hw):
    names = {p.name for p in rtl.iterdir()}
    want = {"evh_top.v", "regmap.json", "regmap.h", "regmap.py", "lint.txt", "lint.vlt",
            "zcu102_bd.tcl"}  # fmt: skip
    assert want <= names, want - names
    assert {n for n in names if n.startswith("evh_")} >= {"evh_router.v", "evh_compute_unit.v"}
    top = (rtl / "evh_top.v").read_text()
    assert top.startswith(f"// generated from spec {hw.spec_hash[:16]}")
    assert "module evh_top(" in top
    assert json.loads((rtl / "regmap.json").read_text())
    assert (rtl / "lint.vlt").read_bytes() == LINT_VLT.read_bytes()


def test_top_ports_have_the_derived_widths(rtl, hw):
    ports = top_ports((rtl / "evh_top.v").read_text())
    s = hw.streams
    assert ports["s_axis_tdata"] == ("input", s.pixels_per_beat * s.pixel_bits)
    assert ports["m_axis_tdata"] == ("output", s.tokens_per_beat * s.token_bits)
    assert ports["m_axi_rdata"] == ("input", s.port_bits)
    assert ports["aclk"] == ports["aresetn"] == ("input", 1)
    assert ports["interrupt"] == ("output", 1)


def test_lint_report_is_clean_and_lists_every_waiver(rtl):
    report = (rtl / "lint.txt").read_text()
    lines = report.splitlines()
    assert lines[0].startswith("# generated from spec ")
    assert "  verilator --lint-only -Wall rtl/lint.vlt rtl/evh_top.v --top-module evh_top" in lines
    assert any(line.startswith("verilator: 5.") for line in lines), report
    assert "result: 0 warnings, 0 errors (exit status 0)" in lines, report
    listed = waivers(LINT_VLT.read_text())
    assert len(listed) == LINT_VLT.read_text().count("\nlint_off") >= 5
    for i, w in enumerate(listed, 1):
        assert w.why.startswith(w.rule), w  # the justification is the one written for it
        assert f"{i}. {w.rule} in {w.scope}" in lines
        assert " ".join(w.why.split()[:6]) in " ".join(report.split())


def test_tcl_says_it_was_never_run_and_targets_the_part(rtl, hw):
    tcl = (rtl / "zcu102_bd.tcl").read_text()
    head = tcl.splitlines()[:12]
    assert head[0].startswith("# generated from spec ")
    assert any("NEVER RUN" in line and "Vivado is not installed" in line for line in head)
    assert f"create_project $proj $proj_dir -part {hw.part} -force" in tcl
    assert "xilinx.com:zcu102:part0:" in tcl and "apply_board_preset" in tcl
    for step in ("create_bd_cell -type module -reference evh_top", "assign_bd_address",
                 "validate_bd_design", "make_wrapper", "launch_runs synth_1",
                 "launch_runs impl_1 -to_step write_bitstream"):  # fmt: skip
        assert step in tcl, step
    assert tcl_config(tcl, "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ") == f"{hw.clock_mhz:g}"


def test_tcl_connects_only_ports_of_the_top(rtl):
    ports = top_ports((rtl / "evh_top.v").read_text())
    tcl = (rtl / "zcu102_bd.tcl").read_text()
    pins = set(re.findall(rf"get_bd_pins {CELL}/(\w+)\]", tcl))
    assert pins == {"aclk", "aresetn", "interrupt"}
    assert pins <= set(ports)
    buses = re.findall(rf"intf_pin {CELL} (\w+)\]", tcl)
    assert sorted(buses) == sorted(TOP_BUSES.values())
    for bus in buses:  # IP integrator infers an interface from its ports' common prefix
        have = {p[len(bus) + 1 :] for p in ports if p.startswith(f"{bus}_")}
        assert BUS_SIGNALS[bus] <= have, (bus, BUS_SIGNALS[bus] - have)


def test_tcl_widths_are_the_tops(rtl):
    ports = top_ports((rtl / "evh_top.v").read_text())
    tcl = (rtl / "zcu102_bd.tcl").read_text()
    hp = BOARDS["zcu102"].accel_port
    assert int(tcl_config(tcl, "c_m_axis_mm2s_tdata_width")) == ports["s_axis_tdata"][1]
    assert int(tcl_config(tcl, "c_s_axis_s2mm_tdata_width")) == ports["m_axis_tdata"][1]
    assert int(tcl_config(tcl, hp.width_key)) == ports["m_axi_rdata"][1]
    mm = int(tcl_config(tcl, "c_m_axi_mm2s_data_width"))
    assert mm >= ports["s_axis_tdata"][1] and mm == int(tcl_config(tcl, "c_m_axi_s2mm_data_width"))
    assert f"get_bd_intf_pins zynq_ultra_ps_e_0/{hp.pin}]" in tcl


def _hw(name: str, hardware: dict | None = None, quant: dict | None = None):
    """micro_moe's derived parameters with some hardware and quant fields changed."""
    data = load_spec("micro_moe").to_dict()
    data["name"] = name
    data["hardware"] = {**data["hardware"], **(hardware or {})}
    data["quant"] = {**data["quant"], **(quant or {})}
    return derive(spec_from_dict(data))


@pytest.mark.parametrize("port_bits,act_bits,hp_bits,token_bits", [
    (32, 8, 32, 8), (128, 12, 128, 16), (256, 8, 128, 8),
])  # fmt: skip
def test_tcl_follows_derive(port_bits, act_bits, hp_bits, token_bits):
    hw = _hw("tcl_variant", {"weight_port_bits": port_bits}, {"act_bits": act_bits})
    assert hw.streams.token_bits == token_bits
    tcl = emit_bd_tcl(hw)[bd_tcl_name(hw)]
    assert int(tcl_config(tcl, BOARDS["zcu102"].accel_port.width_key)) == hp_bits
    s = hw.streams
    assert int(tcl_config(tcl, "c_s_axis_s2mm_tdata_width")) == s.tokens_per_beat * token_bits
    assert int(tcl_config(tcl, "c_m_axis_mm2s_tdata_width")) == s.pixels_per_beat * 8
    a = hw.arith
    frame = a.patches * a.patch_dim  # one byte a pixel
    assert 2 ** int(tcl_config(tcl, "c_sg_length_width")) > frame
    assert "set proj evh_tcl_variant" in tcl


def test_no_tcl_for_a_board_without_a_design():
    assert emit_bd_tcl(_hw("elsewhere", {"board": "kv260"})) == {}
    assert emit_bd_tcl(_hw("elsewhere", {"part": "xczu7ev-ffvc1156-2-e"})) == {}
