"""Where the full-frame RTL simulation spends its time, RTL module by RTL module.

    python benchmarks/sim_profile.py --config m3vit [--task 0] [--freq 499]

Runs one frame of the model through the Verilated top (the ``fast`` build of ``make sim``, the
C++ bench of :mod:`edgevit_hw.sim.fullframe`) under Linux ``perf record`` (Debian's
``linux-perf``), checks the frame bit for bit against the golden model, and shares each
sampled function of the model among the RTL modules whose state it names: Verilator emits the
design as a few dozen large functions (``nba_sequent__TOP__<n>``) that mix modules, and a
function's samples are split in proportion to its references to each module's variables
(``evh_top__DOT__core__DOT__attn__DOT__...``: module ``core.attn``). That split is an estimate
(a reference to a wide memory costs more than one to a flag); a ``--prof-cfuncs`` build, one
function per Verilog statement, gives the same ranking but runs ten times slower, which skews
it toward modules of many small statements.

The table gives each module's share and its nanoseconds per simulated cycle; the last line
bounds the speed of any single-threaded Verilator model of this design: the compute path
alone (MAC array, epilogue, matrix engine and the activation memories, all working on every
cycle of a matrix job) costs that much per cycle even if every other module were free.
Figures go to ``build/sim_profile/<config>/summary.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

# modules that work on every cycle of a matrix job (most of a frame's cycles)
COMPUTE_PATH = ("core.cu", "core.mm", "core.mem")
FUNC = re.compile(r"^(?:VL_ATTR_COLD |VL_INLINE_OPT )?void (Vtop___024root___\w+)\(")
REF = re.compile(r"evh_top__DOT__((?:\w+?__DOT__)*)\w+")
SAMPLE = re.compile(r"^\s*([\d.]+)%\s+\[\.\]\s+(\S+)")


def function_modules(obj: Path) -> dict[str, collections.Counter]:
    """For each function of the Verilated model, its references per RTL module."""
    refs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for cpp in sorted(obj.glob("Vtop___024root__*.cpp")):
        if "Slow" in cpp.name:  # run-once code (initialisation)
            continue
        fn = None
        for line in cpp.read_text().splitlines():
            m = FUNC.match(line)
            if m:
                fn = m.group(1)
            elif fn:
                for path in REF.findall(line):
                    refs[fn][path.replace("__DOT__", ".").rstrip(".") or "(top)"] += 1
    return refs


def perf_shares(data: Path) -> dict[str, float]:
    """Percent of samples per symbol (``perf report``)."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "symbol"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {m.group(2): float(m.group(1)) for m in map(SAMPLE.match, out.splitlines()) if m}


def attribute(shares: dict[str, float], refs: dict[str, collections.Counter]) -> dict[str, float]:
    """Percent of the run per RTL module; functions naming no module (the bench's own, the
    scheduler's, libraries) are grouped as ``(other)``."""
    per: collections.Counter = collections.Counter()
    for fn, pct in shares.items():
        c = refs.get(fn)
        if not c:
            per["(other)"] += pct
            continue
        total = sum(c.values())
        for mod, n in c.items():
            per[mod] += pct * n / total
    return dict(per)


def in_compute_path(mod: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in COMPUTE_PATH)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="m3vit")
    ap.add_argument("--task", type=int, default=0)
    ap.add_argument("--freq", type=int, default=499, help="perf samples per second")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("benchmarks/sim_profile.py needs Linux perf: apt-get install linux-perf")

    from edgevit_hw.sim import fullframe as ff

    from edgevit_hw.core.golden import golden_forward
    from edgevit_hw.core.spec import load_spec
    from edgevit_hw.flow import prepare

    out = (args.out or Path("build/sim_profile") / args.config).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "run", ignore_errors=True)
    prep = prepare(load_spec(args.config))
    img = prep.pixels()
    exe = ff.build(prep.hw, "fast")
    data = out / "perf.data"
    wrapper = ("perf", "record", "-q", "-F", str(args.freq), "-o", str(data))
    run = ff.run_frames(prep, [img], [args.task], waves=False, out=out / "run", wrapper=wrapper)
    gold = golden_forward(prep.qmodel, img, args.task).tokens
    exact = np.array_equal(run.frames[0].tokens, gold)

    per = attribute(perf_shares(data), function_modules(exe.parent))
    ns = 1e9 * run.cpu_s / run.cycles  # processor time per simulated cycle
    path_pct = sum(p for m, p in per.items() if in_compute_path(m))
    if path_pct == 0:
        raise SystemExit("perf recorded no sample of the compute path's modules (no symbols?)")
    bound = 1e9 / (ns * path_pct / 100)

    con = Console()
    table = Table(title=f"{args.config}: Verilated top, processor time per RTL module "
                  f"(one frame, task {args.task})")  # fmt: skip
    for col in ("module", "share", "ns / cycle", "compute path"):
        table.add_column(col, justify="left" if col == "module" else "right")
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    for mod, pct in rows:
        if pct >= 0.1:
            table.add_row(mod, f"{pct:.1f}%", f"{ns * pct / 100:,.0f}",
                          "yes" if in_compute_path(mod) else "")  # fmt: skip
    con.print(table)
    con.print(f"  frame {'BIT-EXACT' if exact else 'MISMATCH'} against golden; {run.cycles:,} "
              f"cycles in {run.cpu_s:.1f} processor s under perf: "
              f"{run.cycles_per_cpu_s:,.0f} cycles/s, {ns:,.0f} ns per cycle")  # fmt: skip
    con.print(f"  the compute path alone ({', '.join(COMPUTE_PATH)} and their submodules): "
              f"{path_pct:.1f}% = {ns * path_pct / 100:,.0f} ns per cycle, so at most "
              f"{bound:,.0f} cycles/s if every other module cost nothing")  # fmt: skip
    summary = {"config": args.config, "task": args.task, "bit_exact": exact,
               "cycles": run.cycles, "cpu_s": run.cpu_s, "ns_per_cycle": ns,
               "modules": dict(rows), "compute_path_pct": path_pct,
               "compute_path_bound_cycles_per_s": bound}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
