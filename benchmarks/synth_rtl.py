"""Yosys resource and logic-depth estimate of every RTL unit for one model's hardware section.

    python benchmarks/synth_rtl.py --config m3vit [--unit compute_unit ...] [--jobs 2]

Per unit: export Verilog (edgevit_hw.rtl.export), run Debian's yosys (0.23 here)
``synth_xilinx -family xcup -flatten`` then ``stat`` and ``write_json``, and print LUT / FF /
DSP48E2 / BRAM counts and the logic levels of the longest combinational path (see
:func:`logic_levels`). Results also go to
``build/synth/<config>/summary.json``. Estimates only: no place and route, no timing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgevit_hw.rtl.export import UNITS, top_name, verilog_files
from rich.console import Console
from rich.table import Table

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import write_files

GROUPS = {
    "LUT": re.compile(r"^LUT\d$"),
    "FF": re.compile(r"^FD[RSCP]E$"),
    "DSP48E2": re.compile(r"^DSP48E2$"),
    "BRAM": re.compile(r"^RAMB(18|36)E2$"),
    "LUTRAM": re.compile(r"^RAM(32|64|128|256)[XM]"),
    "CARRY": re.compile(r"^CARRY[48]$"),
}


FLOW = "synth_xilinx -family xcup -flatten"
# ``--nowidelut``: abc maps to LUT1-6 only. By default it may build 7- and 8-input "LUTs"
# (and Yosys 9-input ones) from LUT6 + MUXF7/8/9, each a level in logic_levels (as in
# Vivado's count), but one level in abc's own depth model, so abc stacks them even on loops.
WIDE_OFF = " -nowidelut"


def run_yosys(vfile: Path, top: str, log: Path, flow: str = FLOW) -> str:
    script = (
        f"read_verilog {vfile}; {flow} -top {top}; tee -o {{stat}} stat; write_json {{js}}"
    ).format(stat=log.with_suffix(".stat"), js=log.with_suffix(".json"))
    with open(log, "w") as fh:
        subprocess.run(["yosys", "-q", "-p", script], stdout=fh, stderr=subprocess.STDOUT,
                       check=True)  # fmt: skip
    return log.with_suffix(".stat").read_text()


def parse_stat(text: str) -> dict[str, int]:
    counts = dict.fromkeys(GROUPS, 0)
    for name, num in re.findall(r"^\s+(\S+)\s+(\d+)\s*$", text, flags=re.M):
        for group, pat in GROUPS.items():
            if pat.match(name):
                counts[group] += int(num)
    return counts


COMB = re.compile(r"^(LUT\d|MUXF\d|CARRY[48]|INV)$")


def logic_levels(netlist: Path, top: str) -> int:
    """Longest chain of combinational cells (LUT1-6, MUXF7-9, CARRY4/8, INV; each counts one)
    between sequential cells or ports. FFs, DSP48E2 (registered here), block and LUT RAMs
    are path ends: the classic "logic levels" figure of a post-synthesis netlist."""
    mod = json.loads(netlist.read_text())["modules"][top]
    cells = mod["cells"].values()
    driver: dict[int, int] = {}
    comb = [c for c in cells if COMB.match(c["type"])]
    for i, c in enumerate(comb):
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                driver.update((b, i) for b in bits if isinstance(b, int))
    depth: dict[int, int] = {}

    def level(i: int) -> int:
        stack = [(i, False)]
        while stack:
            j, ready = stack.pop()
            if j in depth:
                continue
            ins = [driver[b] for p, bits in comb[j]["connections"].items()
                   if comb[j]["port_directions"].get(p) == "input"
                   for b in bits if isinstance(b, int) and b in driver]  # fmt: skip
            todo = [k for k in ins if k not in depth]
            if ready or not todo:
                depth[j] = 1 + max((depth.get(k, 0) for k in ins), default=0)
            else:
                stack.append((j, True))
                stack.extend((k, False) for k in todo)
        return depth[i]

    return max((level(i) for i in range(len(comb))), default=0)


def synth_unit(unit: str, hw, out: Path, reuse: bool = False, flow: str = FLOW) -> dict:
    """Synthesize one unit (or, with ``reuse``, re-read a finished run's stat and netlist)."""
    t0 = time.time()
    log = out / f"{unit}.log"
    if reuse and log.with_suffix(".stat").exists() and log.with_suffix(".json").exists():
        stat = log.with_suffix(".stat").read_text()
    else:
        vfile = write_files(out, verilog_files(hw, [unit]))[0]
        stat = run_yosys(vfile, top_name(unit), log, flow)
    res = parse_stat(stat)
    res["levels"] = logic_levels(log.with_suffix(".json"), top_name(unit))
    res["seconds"] = round(time.time() - t0, 1)
    (out / f"{unit}.result.json").write_text(json.dumps(res))
    return res


def table(config: str, results: dict[str, dict], flow: str = FLOW) -> Table:
    t = Table(title=f"Yosys {flow} estimate, hardware of {config}")
    for col in ("unit", "LUT", "FF", "DSP48E2", "BRAM", "LUTRAM", "CARRY", "levels", "s"):
        t.add_column(col, justify="left" if col == "unit" else "right", no_wrap=True)
    for unit, r in results.items():
        t.add_row(unit, *(str(r[k]) for k in ("LUT", "FF", "DSP48E2", "BRAM", "LUTRAM",
                                               "CARRY", "levels", "seconds")))  # fmt: skip
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Yosys estimate of each RTL unit")
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--unit", action="append")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="re-read finished yosys runs")
    ap.add_argument("--out", help="output folder (default build/synth/<config>[-nowidelut])")
    ap.add_argument("--nowidelut", action="store_true", help="LUT1-6 only: no MUXF7-9")
    args = ap.parse_args(argv)
    hw = derive(load_spec(args.config))
    flow = FLOW + WIDE_OFF * args.nowidelut
    name = args.config + "-nowidelut" * args.nowidelut
    out = Path(args.out) if args.out else Path("build") / "synth" / name
    out.mkdir(parents=True, exist_ok=True)
    units = args.unit or list(UNITS())
    with ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda u: synth_unit(u, hw, out, args.reuse, flow), units)
        done = dict(zip(units, results, strict=True))
    (out / "summary.json").write_text(json.dumps(done, indent=2))
    Console().print(table(args.config, done, flow))
    print(f"one multiplier (one MAC of the array) per DSP48E2; logs in {out}")


if __name__ == "__main__":
    main()
