"""Measured throughput (cycles per output, no idle / stall cycles) of every RTL unit, and the
Verilator simulation speed of the compute unit, for one model's hardware section.

    python benchmarks/bench_rtl.py --config m3vit [--unit compute_unit ...]

Each unit runs its cocotb ``*_throughput`` test (sim/bench_*.py) under Verilator, built with
``-O2``; the bench checks every output beat bit for bit, counts cycles from reset release to
the last output beat, and writes the figures to ``build/rtl_bench/<config>/summary.json``.
Simulation speed, 16x16 (R x C) compute unit with every MAC busy: (a) under cocotb (clock
only, as the benches run it, model built with --public-flat-rw) and (b) Verilator alone with a
Verilog testbench; "sim cycles/s" in the table is per bench, drivers and scoreboard included.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec

BENCHES = {
    "compute_unit": ("edgevit_hw.sim.bench_compute", "compute_unit_throughput", "cycles_per_tile"),
    "layernorm": ("edgevit_hw.sim.bench_layernorm", "layernorm_throughput", "cycles_per_row"),
    "attention": ("edgevit_hw.sim.bench_attention", "attention_throughput", "cycles_per_row"),
    "router": ("edgevit_hw.sim.bench_router", "router_throughput", "cycles_per_token"),
    "expert_queues": (
        "edgevit_hw.sim.bench_router",
        "expert_queues_throughput",
        "cycles_per_token",
    ),
}
CLOCK_NS = 10  # sim/harness.start


def sim_seconds(results: Path) -> float:
    case = next(ET.parse(results).iter("testcase"))
    return float(case.attrib["time"])


def run(unit: str, hw, seed: int, out: Path, **env) -> dict:
    from edgevit_hw.sim.runner import build, run_bench

    module, test, key = BENCHES[unit]
    t0 = time.time()
    build(unit, hw)
    built = time.time() - t0
    report = out / f"{unit}.json"
    results = run_bench(unit, hw, module, seed, COCOTB_TEST_FILTER=test,
                        EVH_REPORT=str(report), tag=f"bench_{test}", **env)  # fmt: skip
    d = json.loads(report.read_text())
    secs = sim_seconds(results)
    d.update(build_s=round(built, 1), sim_wall_s=round(secs, 2), metric=key)
    d["sim_cycles_per_s"] = round(d["cycles"] / secs) if secs else None
    return d


def speed(hw, seed: int, out: Path, cycles: int) -> dict:
    """Free-running compute unit (all R x C MACs busy every cycle): simulated cycles per
    wall second of Verilator with only cocotb's clock running."""
    from edgevit_hw.sim.runner import run_bench

    report = out / "speed.json"
    run_bench("compute_unit", hw, "edgevit_hw.sim.bench_compute", seed, tag="bench_speed",
              COCOTB_TEST_FILTER="compute_unit_free_run", EVH_REPORT=str(report),
              EVH_CYCLES=str(cycles))  # fmt: skip
    return json.loads(report.read_text())


RAW_TB = """module tb;
  reg clk = 0;
  reg rst = 1;
  integer n = 0;
  integer outs = 0;
  wire ops_ready, cfg_ready, side_ready, out_valid;
  wire [{outw}-1:0] out_payload;
  wire [32*({opsw}/32+1)-1:0] rnd = {{({opsw}/32+1){{n * 32'h9e3779b9}}}};
  always #5 clk = ~clk;
  evh_compute_unit dut (
    .clk(clk), .rst(rst),
    .ops__payload({{n % {k} == {k} - 1, n % {k} == 0, rnd[{opsw}-3:0]}}),
    .ops__valid(1'b1), .ops__ready(ops_ready),
    .cfg__payload({cfgw}'d0), .cfg__valid(1'b1), .cfg__ready(cfg_ready),
    .side__payload({sidew}'d0), .side__valid(1'b0), .side__ready(side_ready),
    .out__payload(out_payload), .out__valid(out_valid), .out__ready(1'b1));
  always @(posedge clk) begin
    n <= n + 1;
    if (n == 4) rst <= 0;
    if (out_valid) outs <= outs + 1;
    if (n == {cycles}) begin $display("cycles %0d out_beats %0d", n, outs); $finish; end
  end
endmodule
"""


def raw_speed(hw, out: Path, cycles: int) -> dict:
    """Verilator alone (no cocotb, no --public-flat-rw): a Verilog testbench streams one
    operand beat per cycle (tiles of K = 4R, cfg always valid, out always ready) into the
    compute unit; wall time of the compiled model for ``cycles`` cycles."""
    import subprocess

    from amaranth.hdl import Shape
    from edgevit_hw.rtl.export import verilog_files
    from edgevit_hw.rtl.layouts import (
        epi_cfg_layout,
        epi_out_layout,
        epi_side_layout,
        mac_op_layout,
    )
    from edgevit_hw.sim.runner import verilator_env

    from edgevit_hw.flow import write_files

    verilator_env()
    folder = (out / "raw_speed").resolve()
    vfile = write_files(folder, verilog_files(hw, ["compute_unit"]))[0]
    widths = {
        n: Shape.cast(f(hw)).width
        for n, f in (
            ("opsw", mac_op_layout),
            ("cfgw", epi_cfg_layout),
            ("sidew", epi_side_layout),
            ("outw", epi_out_layout),
        )
    }
    (folder / "tb.v").write_text(RAW_TB.format(k=4 * hw.mac_rows, cycles=cycles, **widths))
    env = {**os.environ, "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}
    cmd = ["verilator", "--binary", "-O3", "--timing", "-CFLAGS", "-std=c++20 -fcoroutines -O2",
           "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb", "-Mdir",
           str(folder / "obj"), "tb.v", str(vfile)]  # fmt: skip
    subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    t0 = time.perf_counter()
    run = subprocess.run([str(folder / "obj" / "Vtb")], capture_output=True, text=True, check=True)
    secs = time.perf_counter() - t0
    beats = int(run.stdout.split("out_beats")[1].split()[0])
    return {"cycles": cycles, "seconds": secs, "cycles_per_s": cycles / secs, "out_beats": beats}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--unit", action="append")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tiles", type=int, default=16, help="compute unit tiles (K = mac_rows*4)")
    ap.add_argument("--cycles", type=int, default=200000, help="free-running speed test")
    args = ap.parse_args(argv)
    os.environ.setdefault("EVH_VL_OPT", "-O2")
    hw = derive(load_spec(args.config))
    out = Path("build") / "rtl_bench" / args.config
    out.mkdir(parents=True, exist_ok=True)
    res = {}
    for unit in args.unit or list(BENCHES):
        env = {"EVH_K": str(4 * hw.mac_rows), "EVH_NT": str(args.tiles)}
        res[unit] = run(unit, hw, args.seed, out, **(env if unit == "compute_unit" else {}))
        print(unit, res[unit], flush=True)
    if "compute_unit" in res:
        res["speed"] = speed(hw, args.seed, out, args.cycles)
        res["raw_speed"] = raw_speed(hw, out, 10 * args.cycles)
        print("free-running compute unit:", res["speed"], res["raw_speed"], flush=True)
    (out / "summary.json").write_text(json.dumps(res, indent=2))
    t = Table(title=f"RTL throughput and Verilator speed, hardware of {args.config}")
    for col in ("unit", "measured", "cycles/output", "sim cycles/s", "build s"):
        t.add_column(col, no_wrap=True)
    for unit, d in res.items():
        if unit in ("speed", "raw_speed"):
            continue
        t.add_row(unit, d["metric"], f"{d[d['metric']]:.1f}", str(d["sim_cycles_per_s"]),
                  str(d["build_s"]))  # fmt: skip
    Console().print(t)
    if "speed" in res:
        sp = res["speed"]
        print(
            f"Verilator, {hw.mac_rows}x{hw.mac_cols} compute unit free-running: "
            f"{sp['cycles_per_s']:.0f} cycles/s under cocotb ({sp['cycles']} cycles in "
            f"{sp['seconds']:.1f} s); Verilator alone "
            f"{res['raw_speed']['cycles_per_s']:.0f} cycles/s"
        )


if __name__ == "__main__":
    main()
