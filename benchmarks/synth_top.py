"""Yosys estimate of the whole accelerator top (``evh_top``) against the board's capacity.

    python benchmarks/synth_top.py --config m3vit [--out DIR] [--reuse]

Exports ``evh_top.v`` (:mod:`edgevit_hw.rtl.export`), runs Debian's yosys (0.23 here)
``synth_xilinx -family xcup -flatten`` (the flow :mod:`synth_rtl` runs on each unit), then
``stat`` and ``write_json``, and prints one table: LUT, FF, DSP48E2 and BRAM (RAMB36E2 +
RAMB18E2 / 2, in BRAM36 tiles) against the capacity of the spec's board
(:data:`edgevit_hw.rtl.vivado.BOARDS`, the ZCU102's XCZU9EG: 274,080 LUT, 548,160 FF, 2,520
DSP48E2, 912 BRAM36), and the deepest logic path in the units' measure
(:func:`synth_rtl.logic_levels`: combinational cells LUT1-6, MUXF7-9, CARRY4/8, INV in a chain
between flip-flops, DSP48E2, block/LUT RAMs or ports; each counts one level), with where it
starts and ends: the named nets of its first input, its last output and what lies between
(flattened names, ``core.cu.epi.x`` = signal ``x`` of the compute unit's epilogue). LUT counts
add the LUTs of LUT RAMs and shift registers (each such cell's LUT6 sites) to the logic LUTs,
as Vivado's "CLB LUTs" does. Results go to ``DIR/summary.json`` (default
``build/synth/top-<config>``); ``yosys.log`` there shows the pass running. Estimates only: no
place and route, no timing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgevit_hw.rtl.export import top_name, unit_verilog
from edgevit_hw.rtl.vivado import BOARDS
from rich.console import Console
from rich.table import Table
from synth_rtl import COMB, WIDE_OFF

from edgevit_hw.core.derive import derive
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import write_files

FLOW = "synth_xilinx -family xcup -flatten"
# ``--per-module``: each module of the exported top mapped on its own ("out of context": its
# submodules are black boxes, no constant crosses a port, so the sum is an upper bound), two
# at a time; m3vit's flat run had not finished mapping after 2 h 40 min (Yosys 0.23's
# repeated opt passes over the whole design)
JOBS = 2
# LUT6 sites of each LUT-based cell besides LUT1-6 (UltraScale+ CLB; SRLs are one LUT each)
LUT_SITES = {"RAM32X1D": 2, "RAM32X1S": 1, "RAM64X1D": 2, "RAM64X1S": 1, "RAM128X1D": 4,
             "RAM128X1S": 2, "RAM256X1S": 4, "RAM32M": 4, "RAM32M16": 8, "RAM64M": 4,
             "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}  # fmt: skip


def run_yosys(vfile: Path, top: str, out: Path, flow: str = FLOW) -> None:
    """Synthesize into ``out``: ``stat.txt``, ``netlist.json`` and ``yosys.log``."""
    stat, js = out / "stat.txt", out / "netlist.json"
    script = f"read_verilog {vfile}; {flow} -top {top}; tee -o {stat} stat; write_json {js}"
    cmd = ["yosys", "-q", "-l", str(out / "yosys.log"), "-p", script]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def cell_counts(stat: str) -> dict[str, int]:
    """``{cell type: count}`` of one module's ``stat`` (black-box submodules, named with
    dots, are not cells)."""
    return {k: int(v) for k, v in re.findall(r"^\s+(\S+)\s+(\d+)\s*$", stat, flags=re.M)
            if not k.startswith("$") and "." not in k}  # fmt: skip


def resources(cells: dict[str, int]) -> dict[str, float]:
    """LUT (logic + LUT RAM/SRL sites), FF, DSP48E2 and BRAM36 equivalents, and the parts."""
    logic = sum(n for k, n in cells.items() if re.fullmatch(r"LUT\d", k))
    mem = sum(n * LUT_SITES[k] for k, n in cells.items() if k in LUT_SITES)
    return {
        "LUT": logic + mem,
        "LUT_logic": logic,
        "LUT_memory": mem,
        "FF": sum(n for k, n in cells.items() if re.fullmatch(r"FD[RSCP]E", k)),
        "DSP48E2": cells.get("DSP48E2", 0),
        "BRAM36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2,
        "RAMB36E2": cells.get("RAMB36E2", 0),
        "RAMB18E2": cells.get("RAMB18E2", 0),
        "CARRY8": cells.get("CARRY8", 0),
    }


class Netlist:
    """The flat netlist's combinational cells and, per net bit, its driver and public names."""

    def __init__(self, module: dict):
        cells = module["cells"]
        self.comb = [c for c in cells.values() if COMB.match(c["type"])]
        self.seq = [c for c in cells.values() if not COMB.match(c["type"])]
        self.driver: dict[int, int] = {}
        for i, c in enumerate(self.comb):
            for bit in _bits(c, "output"):
                self.driver[bit] = i
        self.names: dict[int, str] = {}
        for name, net in sorted(module["netnames"].items(), key=lambda kv: len(kv[0])):
            if not net.get("hide_name"):
                for bit in (b for b in net["bits"] if isinstance(b, int)):
                    self.names.setdefault(bit, name)

    def inputs(self, i: int) -> list[int]:
        return [self.driver[b] for b in _bits(self.comb[i], "input") if b in self.driver]

    def deepest(self) -> list[int]:
        """The comb cells of a longest chain, first to last (iterative, no recursion limit)."""
        depth: dict[int, int] = {}
        pred: dict[int, int | None] = {}
        for root in range(len(self.comb)):
            stack = [(root, False)]
            while stack:
                j, ready = stack.pop()
                if j in depth:
                    continue
                ins = self.inputs(j)
                todo = [k for k in ins if k not in depth]
                if ready or not todo:
                    best = max(ins, key=lambda k: depth[k], default=None)
                    depth[j], pred[j] = 1 + (depth[best] if best is not None else 0), best
                else:
                    stack.append((j, True))
                    stack.extend((k, False) for k in todo)
        if not depth:
            return []
        path, j = [], max(depth, key=depth.get)
        while j is not None:
            path.append(j)
            j = pred[j]
        return path[::-1]

    def describe(self, path: list[int]) -> dict:
        """Levels, cell types, and the named signals where the path starts (outside the
        combinational cells), passes, ends, and is captured (the cells its end feeds)."""
        cells = [self.comb[i] for i in path]
        start = [b for b in _bits(cells[0], "input") if b not in self.driver]
        inner = [b for c in cells[:-1] for b in _bits(c, "output")]
        end = set(_bits(cells[-1], "output"))
        caught = [b for c in self.seq if end & set(_bits(c, "input")) for b in _bits(c, "output")]
        return {
            "levels": len(path),
            "cells": [c["type"] for c in cells],
            **{k: self._signals(bits) for k, bits in
               (("start", start), ("through", inner), ("end", end), ("captured_by", caught))},
        }  # fmt: skip

    def _signals(self, bits) -> list[str]:
        """Distinct named signals of ``bits``, in order."""
        return list(dict.fromkeys(self.names[b] for b in bits if b in self.names))


def _bits(cell: dict, direction: str) -> list[int]:
    return [b for port, bits in cell["connections"].items()
            if cell["port_directions"].get(port) == direction
            for b in bits if isinstance(b, int)]  # fmt: skip


def deepest_path(netlist: Path, top: str) -> dict:
    """The deepest path of the flat top, or with modules kept, the deepest of any module's
    (a submodule instance bounds a path like a flip-flop: paths are not joined across ports;
    names are prefixed with the module's)."""
    modules = json.loads(netlist.read_text())["modules"]
    best: dict = {"levels": 0}
    for name, module in modules.items():
        if "blackbox" in module.get("attributes", {}):  # the cell library
            continue
        net = Netlist(module)
        path = net.deepest()
        if len(path) > best["levels"]:
            best = net.describe(path)
            if name != top:
                prefix = name.removeprefix(f"{top}.") + "."
                for k in ("start", "through", "end", "captured_by"):
                    best[k] = [prefix + n for n in best[k]]
    return best


def synth_top(config: str, out: Path, reuse: bool = False, per_module: bool = False,
              nowidelut: bool = False) -> dict:  # fmt: skip
    hw = derive(load_spec(config))
    out.mkdir(parents=True, exist_ok=True)
    flow = FLOW + WIDE_OFF * nowidelut
    top = top_name("top")
    if not (reuse and (out / "seconds.txt").exists()):
        t0 = time.time()
        vfile = write_files(out, {f"{top}.v": unit_verilog("top", hw)})[0]
        if per_module:
            run_modules(vfile, out, flow)
        else:
            run_yosys(vfile, top, out, flow)
        (out / "seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    seconds = float((out / "seconds.txt").read_text())
    flow += " per module (submodules black boxes)" if per_module else ""
    res = {"config": config, "board": hw.board, "seconds": seconds, "flow": flow}
    if per_module:
        names = modules_of(out / f"{top}.v")
        counts: dict[str, int] = {}
        for name in names:
            for k, n in cell_counts((out / "modules" / f"{name}.stat").read_text()).items():
                counts[k] = counts.get(k, 0) + n
        res.update(resources(counts))
        paths = [deepest_path(out / "modules" / f"{name}.json", top) for name in names]
        res["path"] = max(paths, key=lambda p: p["levels"])
    else:
        res.update(resources(cell_counts((out / "stat.txt").read_text())))
        res["path"] = deepest_path(out / "netlist.json", top)
    (out / "summary.json").write_text(json.dumps(res, indent=2))
    return res


MODULE = re.compile(r"^module \\?([^\s(]+)[^;]*;.*?^endmodule\s*$", re.M | re.S)
PORT = re.compile(r"^\s*(?:input|output|inout)\b[^;]*;", re.M)


def modules_of(vfile: Path) -> list[str]:
    """The module names of an exported Verilog file (Amaranth: one per elaboratable)."""
    return [mt.group(1) for mt in MODULE.finditer(vfile.read_text())]


def run_modules(vfile: Path, out: Path, flow: str) -> None:
    """``flow`` on every module, :data:`JOBS` at a time, into ``out/modules/<name>.{v,stat,
    json,log}``. Each run reads its module's text and a black-box stub (the port
    declarations) of every other module: Yosys 0.23's frontend takes minutes on m3vit's
    whole file."""
    text = vfile.read_text()
    mods = {mt.group(1): mt.group(0) for mt in MODULE.finditer(text)}
    stubs = {n: "(* blackbox *)\n" + t[: t.index(";") + 1] + "\n"
             + "\n".join(PORT.findall(t)) + "\nendmodule\n" for n, t in mods.items()}  # fmt: skip
    (out / "modules").mkdir(exist_ok=True)

    def one(name: str) -> None:
        base = out / "modules" / name
        src = "\n".join([mods[name], *(stub for n, stub in stubs.items() if n != name)])
        Path(f"{base}.v").write_text(src)
        script = (f"read_verilog {base}.v; hierarchy -top {name}; {flow} -noiopad -top {name}; "
                  f"tee -o {base}.stat stat; write_json {base}.json")  # fmt: skip
        cmd = ["yosys", "-q", "-l", f"{base}.log", "-p", script]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(one, sorted(mods, key=lambda n: -len(mods[n]))))


def table(res: dict) -> Table:
    capacity = dict(BOARDS[res["board"]].capacity)
    t = Table(title=f"Yosys {res['flow']}: evh_top of {res['config']} on the {res['board']}")
    for col in ("resource", "used", f"{res['board']} has", "share"):
        t.add_column(col, justify="left" if col == "resource" else "right")
    notes = {"LUT": f"{res['LUT_logic']:,} logic + {res['LUT_memory']:,} in LUT RAM / SRL",
             "BRAM36": f"{res['RAMB36E2']} RAMB36E2 + {res['RAMB18E2']} RAMB18E2 / 2"}  # fmt: skip
    for key, cap in capacity.items():
        used = res[key]
        t.add_row(f"{key} ({notes[key]})" if key in notes else key, f"{used:,g}", f"{cap:,}",
                  f"{100 * used / cap:.1f}%")  # fmt: skip
    p = res["path"]
    t.add_row("logic levels (deepest path)", str(p["levels"]), "", "")
    return t


def path_lines(path: dict, show: int = 8) -> list[str]:
    if not path.get("levels"):
        return ["no combinational path"]
    named = path["start"] + path["through"] + path["end"] + path["captured_by"]
    modules = dict.fromkeys(n.rsplit(".", 1)[0] for n in named if "." in n)
    return [
        f"deepest path: {path['levels']} levels, in {', '.join(modules) or 'the top'}:",
        f"  cells: {' > '.join(path['cells'])}",
        *(f"  {k.replace('_', ' ')}: {', '.join(path[k][:show]) or '(unnamed)'}"
          for k in ("start", "through", "end", "captured_by")),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Yosys estimate of the accelerator top")
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--out", help="output folder (default build/synth/top-<config>)")
    ap.add_argument("--reuse", action="store_true", help="re-read a finished yosys run")
    ap.add_argument("--per-module", action="store_true",
                    help="each module alone (an upper bound): fast enough for m3vit")  # fmt: skip
    ap.add_argument("--nowidelut", action="store_true",
                    help="LUT1-6 only: no MUXF7-9 (see synth_rtl.WIDE_OFF)")  # fmt: skip
    args = ap.parse_args(argv)
    suffix = "-modules" * args.per_module + "-nowidelut" * args.nowidelut
    out = Path(args.out or f"build/synth/top-{args.config}{suffix}")
    res = synth_top(args.config, out, args.reuse, args.per_module, args.nowidelut)
    Console().print(table(res))
    print("\n".join(path_lines(res["path"])))
    print(f"export + yosys took {res['seconds']:.0f} s; netlist, stat and log in {out}")


if __name__ == "__main__":
    main()
