"""Fault-injection benchmark: do the tests catch a single wrong line in any implementation?

    python benchmarks/fault_injection.py [--only ID[,ID]] [--list] [--workdir DIR] [--keep]
                                         [--jobs N] [--timeout S]
    make faults [FAULTS_ARGS="--only HL01,RT02"]

Each fault of :data:`FAULTS` is one line of the Python contract, the golden model, the
quantizer and calibration, the program compiler / interpreter, the HLS C++ or the Amaranth RTL,
replaced by a plausible mistake (rounding at ties, off-by-one bounds, key order, tie breaks,
dropped tokens, a wrong task router, calibration drift, a lost saturation). A fault names the
exact original text (it must occur exactly once in its file: a missing or ambiguous anchor
stops the benchmark with exit status 2 and a one-line error, so the table cannot rot
silently) and the test selection that owns its file.

The repository's tracked and untracked-not-ignored files (``git ls-files -co
--exclude-standard``) are copied once per run into ``WORKDIR/snapshot`` (files edited
meanwhile in the working tree do not disturb a run); each fault runs in a fresh copy of it,
``WORKDIR/scratch/<id>``, never in the repository. A package root ``pkgroot/edgevit_hw`` of
symlinks (the scratch package's entries plus ``hls``, ``rtl``, ``sim``, as setuptools'
package-dir maps them) on ``PYTHONPATH`` makes every import, the cocotb benches' included,
come from the scratch copy rather than the editable install (checked by a probe test before
the baselines; pytest runs as ``python -P``, so the scratch root itself is not on sys.path).
C-simulation and Verilator builds are keyed by source content, so their caches
(``EVH_CSIM_CACHE``, ``EVH_RTL_BUILD``) are shared under ``WORKDIR/cache`` (a few GB after a
whole run: every fault of an RTL or C++ file builds its own binaries; delete it freely).

Per fault, one at a time (``pytest -n JOBS`` inside): (1) the owning selection; if nothing
fails, (2) the whole ``make test`` tier; if still nothing fails, (3) the owning slow tests.
Every selection first runs once without a fault, so a failure is the fault's: tests that fail
there too (a colleague's work in progress) are deselected from that selection's fault runs
and reported; any other baseline failure stops the benchmark. The caught-by column lists the
failing pytest tests (and, for RTL benches, the failing cocotb tests). Results: a table and a
summary on the terminal, ``WORKDIR/faults.json`` and ``WORKDIR/faults.md`` (default WORKDIR:
build/faults).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("hls", "rtl", "sim")  # setuptools package-dir: edgevit_hw.<name> -> <name>/
PROBE = "test_zz_fault_probe.py"
NO_TESTS = 5  # pytest's exit status when the selection collects no test


@dataclass(frozen=True)
class Selection:
    """The tests that own a file: ``files`` run with ``-m 'not slow'`` (the make-test tier),
    ``slow`` with ``-m slow`` (tried only when the make-test tier misses a fault)."""

    files: tuple[str, ...]
    slow: tuple[str, ...]


_CONTRACT = "tests/test_contract.py"
_CSIM_SLOW = ("tests/test_csim_slow.py",)
SELECTIONS = {
    "py-contract": Selection(("tests/test_arithmetic.py", _CONTRACT, "tests/test_golden.py",
                              "tests/test_program.py", "tests/test_quantizer.py"), _CSIM_SLOW),
    "golden": Selection(("tests/test_golden.py", "tests/test_program.py",
                         "tests/test_csim.py"), _CSIM_SLOW),
    "quantizer": Selection(("tests/test_quantizer.py", "tests/test_images.py",
                            "tests/test_golden.py"), _CSIM_SLOW),
    "program": Selection(("tests/test_program.py", "tests/test_csim.py"), _CSIM_SLOW),
    "hls": Selection((_CONTRACT, "tests/test_csim.py", "tests/test_csim_cli.py",
                      "tests/test_derive.py"), _CSIM_SLOW),
    **{f"rtl-{u}": Selection((_CONTRACT, f"tests/test_rtl_{u}.py"), (f"tests/test_rtl_{u}.py",))
       for u in ("compute", "layernorm", "attention", "router")},
}  # fmt: skip


@dataclass(frozen=True)
class Fault:
    """One planted mistake: ``old`` (exactly once in ``file``) becomes ``new``; the two differ
    in exactly one line (``old`` may carry a neighbouring line to be unique)."""

    id: str
    impl: str
    kind: str
    file: str
    old: str
    new: str
    sel: str
    desc: str


_AR, _GD = "edgevit_hw/core/arithmetic.py", "edgevit_hw/core/golden.py"
_QZ, _IM = "edgevit_hw/ml/quantizer.py", "edgevit_hw/ml/images.py"
_CP, _IN = "edgevit_hw/program/compiler.py", "edgevit_hw/program/interpreter.py"
_HA, _HT = "hls/include/evh_arith.h", "hls/include/evh_attention.h"
_HM, _HF = "hls/include/evh_moe.h", "hls/include/evh_frame.h"
PY, GO, QU, PR, HL, RT = "python contract", "golden model", "quantizer", "program", "HLS C++", "RTL"

FAULTS: tuple[Fault, ...] = (
    # ------------------------------------------------------------------ Python contract ----
    Fault("PY01", PY, "rounding at ties", _AR,
       "half = np.where(s > 0, np.left_shift(I64(1), np.maximum(s - 1, 0)), 0)",
       "half = np.where(s > 0, np.left_shift(I64(1), np.maximum(s - 1, 0)) - 1, 0)",
       "py-contract", "round_shift rounds exact ties down (constant 2^(s-1) - 1)"),
    Fault("PY02", PY, "saturation bound", _AR,
       "return np.clip(x, smin(bits), smax(bits))",
       "return np.clip(x, smin(bits) + 1, smax(bits))",
       "py-contract", "clamp saturates symmetrically: lower bound -2^(b-1) + 1"),
    Fault("PY03", PY, "off-by-one bound", _AR,
       "return np.right_shift(table[f], np.minimum(-i, out_bits + 1))",
       "return np.right_shift(table[f], np.minimum(-i, out_bits))",
       "py-contract", "exp2_q caps its shift at out_bits, not out_bits + 1 (tiny values give 1)"),
    Fault("PY04", PY, "key order", _AR,
       "mx = np.maximum.accumulate(c, axis=-1)",
       "mx = np.broadcast_to(c.max(axis=-1, keepdims=True), c.shape)",
       "py-contract", "vectorized online softmax uses the row's final max (two-pass), "
       "not the running max"),
    Fault("PY05", PY, "rounding at ties", _AR,
       "return np.floor_divide(2 * a + b, 2 * b)",
       "return np.floor_divide(2 * a + b - 1, 2 * b)",
       "py-contract", "div_round rounds exact halves down"),
    Fault("PY06", PY, "tie break", _AR,
       'return np.argsort(-np.asarray(t, I64), axis=-1, kind="stable")[..., :k]',
       "return (np.shape(t)[-1] - 1 - np.argsort(-np.asarray(t, I64)[..., ::-1], axis=-1, "
       'kind="stable"))[..., :k]',
       "py-contract", "top-k breaks ties toward the higher expert index"),
    Fault("PY07", PY, "gate semantics", _AR,
       "total = p.sum(axis=-1, keepdims=True)",
       "total = np.take_along_axis(p, idx, axis=-1).sum(axis=-1, keepdims=True)",
       "py-contract", "gate weights renormalized over the k chosen experts, not all experts"),
    Fault("PY08", PY, "off-by-one bound", _AR,
       "m = np.where(m * m * u > lim, m - 1, m)",
       "m = np.where(m * m * u >= lim, m - 1, m)",
       "py-contract", "rsqrt_q rejects m^2 u == 2^62 (the exact power-of-two edge)"),
    Fault("PY09", PY, "saturation bound", _AR,
       "return clamp(np.asarray(x, I64) + requant(acc, m, s, res_bits), res_bits)",
       "return np.asarray(x, I64) + requant(acc, m, s, res_bits)",
       "py-contract", "residual_add drops its final clamp to res_bits"),
    # --------------------------------------------------------------------- golden model ----
    Fault("GD01", GO, "wrong task router", _GD,
       'g = f"{p}.gate.{self.task}"',
       'g = f"{p}.gate.0"',
       "golden", "the golden MoE block always uses task 0's router"),
    Fault("GD02", GO, "key order", _GD,
       "acc, l = A.online_softmax(t, v, ap.exp_frac_bits, ap.exp_out_bits)",
       "acc, l = A.online_softmax(t[..., ::-1], v[..., ::-1, :], ap.exp_frac_bits, "
       "ap.exp_out_bits)",
       "golden", "golden attention consumes keys in reverse order (N-1 .. 0)"),
    Fault("GD03", GO, "saturation bound", _GD,
       'u = A.requant(acc1, qm[f"{p}.efc1.m"][e], qm[f"{p}.efc1.s"][e], ap.gelu_in_bits)',
       'u = A.requant(acc1, qm[f"{p}.efc1.m"][e], qm[f"{p}.efc1.s"][e], ap.act_bits)',
       "golden", "expert fc1 output clamped to act_bits instead of gelu_in_bits"),
    Fault("GD04", GO, "dropped tokens", _GD,
       "for e, queue in enumerate(expert_queues(idx, ap.experts)):",
       "for e, queue in enumerate(expert_queues(idx, ap.experts - 1)):",
       "golden", "golden expert loop stops one short: tokens routed to the last expert dropped"),
    Fault("GD05", GO, "token order", _GD,
       'x = np.concatenate([qm["cls"][None].astype(I64), x])',
       'x = np.concatenate([x, qm["cls"][None].astype(I64)])',
       "golden", "class token appended after the patches instead of before"),
    # ------------------------------------------------------------ quantizer, calibration ----
    Fault("QZ01", QU, "calibration drift", _IM,
       "pixels = np.stack([load_image(n, spec) for n in CALIB_IMAGES])",
       "pixels = np.stack([load_image(n, spec) for n in CALIB_IMAGES[:1]])",
       "quantizer", "default calibration set cut to its first image"),
    Fault("QZ02", QU, "calibration drift", _IM,
       'CALIB_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", '
       '"immunohistochemistry")',
       'CALIB_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", '
       '"immunohistochemistry", EVAL_IMAGE)',
       "quantizer", "the evaluation image added to the default calibration set"),
    Fault("QZ03", QU, "calibration drift", _QZ,
       "for task in range(tasks):",
       "for task in range(1):",
       "quantizer", "calibration runs task 0 only (task 1's activations never seen)"),
    Fault("QZ04", QU, "calibration drift", _IM,
       "out = np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(2, 0, 1)",
       "out = np.clip(out, 0, 255).astype(np.uint8).transpose(2, 0, 1)",
       "quantizer", "fitted images truncated instead of rounded (calibration pixels drift)"),
    Fault("QZ05", QU, "scale", _QZ,
       "logit = s_q * s_k / math.sqrt(dh) / LN2 * (1 << qz.q.exp_frac_bits)",
       "logit = s_q * s_k / LN2 * (1 << qz.q.exp_frac_bits)",
       "quantizer", "logit requantization forgets the 1/sqrt(head_dim) factor"),
    Fault("QZ06", QU, "rounding", _QZ,
       "return np.clip(np.round(w / s), -top - 1, top)",
       "return np.clip(np.trunc(w / s), -top - 1, top)",
       "quantizer", "weights truncated toward zero instead of rounded"),
    # ------------------------------------------------------------------------- program ----
    Fault("PG01", PR, "dropped rows", _CP,
       "for r0 in range(0, n, rows):",
       "for r0 in range(0, n - rows, rows):",
       "program", "compiler drops the last attention row block of every head"),
    Fault("PG02", PR, "wrong task router", _IN,
       "step = m.task * insn.stride if insn.flags & Flag.TASK else 0",
       "step = m.task * insn.stride if insn.flags & Flag.GATHER else 0",
       "program", "interpreter tests the wrong flag: the task stride is never applied"),
    Fault("PG03", PR, "dropped tokens", _IN,
       "for tok, chosen in enumerate(m.gate_idx):",
       "for tok, chosen in enumerate(m.gate_idx[:-1]):",
       "program", "interpreter's QUEUES drops the last token"),
    Fault("PG04", PR, "off-by-one bound", _CP,
       "row0 = int(spec.model.class_token)",
       "row0 = 0",
       "program", "patch embedding written from row 0, over the class token"),
    Fault("PG05", PR, "saturation bound", _IN,
       "out[dst, cols] = A.requant(acc, *q, a.logit_bits)",
       "out[dst, cols] = A.requant(acc, *q, a.act_bits)",
       "program", "interpreter clamps router logits to act_bits"),
    Fault("PG06", PR, "stale state", _IN,
       "m.bufs[Buf.MOE_ACC][:] = 0",
       "pass  # MoE sums kept from the previous MoE block",
       "program", "QUEUES no longer clears the MoE sums between MoE blocks"),
    # ------------------------------------------------------------------------- HLS C++ ----
    Fault("HL01", HL, "rounding at ties", _HA,
       "return T((q >> 1) + (q & 1));",
       "return T(q >> 1);",
       "hls", "C++ round_shift truncates (floor) instead of rounding half up (requant, LayerNorm)"),
    Fault("HL02", HL, "rounding", _HA,
       "if (rem != 0 && num < 0) q = T(q - 1);",
       "if (rem != 0 && q < 0) q = T(q - 1);",
       "hls", "C++ div_round floor fix tests the quotient, not the numerator"),
    Fault("HL03", HL, "off-by-one bound", _HA,
       "const int sh = ni < OUT + 1 ? int(ni) : OUT + 1;",
       "const int sh = ni < OUT ? int(ni) : OUT;",
       "hls", "C++ exp2_q caps its shift at OUT, not OUT + 1"),
    Fault("HL04", HL, "off-by-one bound", _HT,
       "if (i0 + p >= N) break;",
       "if (i0 + p >= N - 1) break;",
       "hls", "attention engine never writes the last token's output row"),
    Fault("HL05", HL, "off-by-one bound", _HA,
       "if (cand <= (m_t(1) << (MB - 1)) && cand_sq <= lim) {",
       "if (cand < (m_t(1) << (MB - 1)) && cand_sq <= lim) {",
       "hls", "C++ rsqrt search excludes m = 2^16 (the exact power-of-two edge)"),
    Fault("HL06", HL, "tie break", _HA,
       "if (!taken[e] && (best < 0 || t[e] > t[best])) best = e;",
       "if (!taken[e] && (best < 0 || t[e] >= t[best])) best = e;",
       "hls", "C++ top-k breaks ties toward the higher expert index"),
    Fault("HL07", HL, "dropped tokens", _HM,
       "for (int n = 0; n < Cfg::N; ++n)\n        for (int k = 0; k < Cfg::TOPK; ++k) {",
       "for (int n = 0; n < Cfg::N - 1; ++n)\n        for (int k = 0; k < Cfg::TOPK; ++k) {",
       "hls", "C++ build_queues never queues the last token"),
    Fault("HL08", HL, "wrong task router", _HF,
       "const uint32_t step = (in.flags & Cfg::FLAG_TASK) ? uint32_t(task) * in.stride : 0u;",
       "const uint32_t step = (in.flags & Cfg::FLAG_TASK) ? 0u * in.stride : 0u;",
       "hls", "C++ MoE block always runs task 0's router"),
    Fault("HL09", HL, "key order", _HT,
       "for (int p = P - 1; p > 0; --p)",
       "for (int p = 1; p < P; ++p)",
       "hls", "attention skew register shifted upward: rows see the newest key, not key t - p"),
    Fault("HL10", HL, "saturation bound", _HA,
       "return clamp<RBITS>(T(T(x) + T(requant<RBITS, PBITS>(acc, m, s))));",
       "return int_t<RBITS>(T(T(x) + T(requant<RBITS, PBITS>(acc, m, s))));",
       "hls", "C++ residual_add drops its clamp (the residual wraps instead of saturating)"),
    Fault("HL11", HL, "index", _HA,
       "w[k] = WT(div_round<NB>(N(N(p[idx[k]]) << W), total));",
       "w[k] = WT(div_round<NB>(N(N(p[k]) << W), total));",
       "hls", "C++ gate weight k uses expert k's probability, not the k-th chosen expert's"),
    Fault("HL12", HL, "off-by-one bound", _HF,
       "j.row0 = in.row0;",
       "j.row0 = 0;",
       "hls", "C++ patch embedding written over the class token row"),
    # ----------------------------------------------------------------------------- RTL ----
    Fault("RT01", RT, "rounding at ties", "rtl/hwmath.py",
       "return (Const(1, 1) << s) >> 1",
       "return ((Const(1, 1) << s) - 1) >> 1",
       "rtl-compute", "RTL round_shift constant 2^(s-1) - 1: exact ties round down"),
    Fault("RT02", RT, "off-by-one bound", "rtl/rsqrt.py",
       "keep = ~hi[-1]  # T >= 0: cand^2 * u <= 2^62",
       "keep = ~hi[-1] & Cat(lo[:SPLIT], hi).any()  # T > 0: cand^2 * u < 2^62",
       "rtl-layernorm", "RTL rsqrt search rejects m^2 u == 2^62 (the power-of-two edge)"),
    Fault("RT03", RT, "key order", "rtl/attention.py",
       "return logit_stages(self._hw.arith.head_dim) + V_LAG",
       "return logit_stages(self._hw.arith.head_dim) + V_LAG - 1",
       "rtl-attention", "attention V tap one stage early: each weight meets the next key's value"),
    Fault("RT04", RT, "key order", "rtl/attention.py",
       'update(acc[i], Mux(v5, pv[i], 0), d5, f"a{i}")',
       'update(acc[i], Mux(v5, pv[i], 0), d4, f"a{i}")',
       "rtl-attention", "attention rescales acc by the next key's shift (pipeline skew)"),
    Fault("RT05", RT, "tie break", "rtl/router.py",
       "terms = [(t[j] > t[i]) if j > i else (t[j] >= t[i]) for j in range(e) if j != i]",
       "terms = [(t[j] >= t[i]) if j > i else (t[j] > t[i]) for j in range(e) if j != i]",
       "rtl-router", "RTL router ranks ties toward the higher expert index"),
    Fault("RT06", RT, "dropped tokens", "rtl/expert_queues.py",
       "with m.If(tok == N):",
       "with m.If(tok == N - 1):",
       "rtl-router", "expert queues treat a frame's last token as overlong and drop it"),
    Fault("RT07", RT, "saturation bound", "rtl/epilogue.py",
       'y7 = sreg(m, adv, clamp(d6["res"] + r6, a.res_bits), a.res_bits, f"y7_{c}")',
       'y7 = sreg(m, adv, d6["res"] + r6, a.res_bits, f"y7_{c}")',
       "rtl-compute", "epilogue residual add wraps instead of saturating"),
    Fault("RT08", RT, "rounding", "rtl/divider.py",
       "m.d.sync += [rem[i].eq(2 * rem[i] + den + bias) for i in range(lanes)]",
       "m.d.sync += [rem[i].eq(2 * rem[i] + bias) for i in range(lanes)]",
       "rtl-attention", "divider drops the + b of div_round (floor instead of round half up)"),
    Fault("RT09", RT, "lost term", "rtl/layernorm.py",
       'v6 = add2(m, dt4, self.eps, vb, "v")',
       'v6 = add2(m, dt4, 0, vb, "v")',
       "rtl-layernorm", "LayerNorm unit forgets eps in the variance"),
    Fault("RT10", RT, "off-by-one bound", "rtl/attention.py",
       "return Mux(neg > out + 1, out + 1, neg)[: (out + 1).bit_length() + 1]",
       "return Mux(neg > out, out, neg)[: (out + 1).bit_length() + 1]",
       "rtl-attention", "RTL exp2_q caps its shift at O, not O + 1"),
    Fault("RT11", RT, "rounding", "rtl/router.py",
       "mx.eq((top >> F) + (top[:F] != 0))",
       "mx.eq(top >> F)",
       "rtl-router", "router's max on the floor grid instead of the ceil grid"),
    Fault("RT12", RT, "rounding", "rtl/epilogue.py",
       "delta = t0 + round_shift(dt * rem, sh)",
       "delta = t0 + ((dt * rem) >> sh)",
       "rtl-compute", "GELU interpolation truncated instead of rounded"),
)  # fmt: skip


# ----------------------------------------------------------------------------- anchors ----


def anchor_problem(tree: Path, f: Fault) -> str | None:
    """Why ``f`` cannot be planted in ``tree`` (None when it can)."""
    path = tree / f.file
    if not path.is_file():
        return f"{f.id}: {f.file} does not exist"
    n = path.read_text().count(f.old)
    if n != 1:
        return f"{f.id}: anchor {f.old.splitlines()[0]!r} occurs {n} times in {f.file}"
    changed = [a != b for a, b in zip(f.old.split("\n"), f.new.split("\n"), strict=False)]
    if f.old.count("\n") != f.new.count("\n") or sum(changed) != 1:
        return f"{f.id}: old and new must differ in exactly one line"
    return None


def plant(tree: Path, f: Fault) -> None:
    path = tree / f.file
    path.write_text(path.read_text().replace(f.old, f.new, 1))


# ------------------------------------------------------------------------ scratch trees ----


def repo_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                         check=True, capture_output=True).stdout  # fmt: skip
    return sorted({p for p in out.decode().split("\0") if p and (root / p).is_file()})


def snapshot(root: Path, dest: Path) -> int:
    """Copy the repository's files (as ``git ls-files -co --exclude-standard``) to ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    files = repo_files(root)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    return len(files)


def scratch_copy(snap: Path, dest: Path) -> Path:
    """A fresh copy of the snapshot plus its package root; returns the package root."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(snap, dest / "repo", symlinks=True)
    pkg = dest / "pkgroot" / "edgevit_hw"
    pkg.mkdir(parents=True)
    for entry in (dest / "repo" / "edgevit_hw").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for name in MAPPED:
        (pkg / name).symlink_to(dest / "repo" / name)
    return dest / "pkgroot"


# ------------------------------------------------------------------------------ pytest ----


@dataclass
class Run:
    """One pytest invocation: exit status, failing tests (node ids, cocotb tests) and time."""

    rc: int
    failed: list[str]
    cocotb: list[str]
    seconds: float
    detail: str = ""
    log: str = ""


def _nodeid(repo: Path, case: ET.Element) -> str:
    parts = case.get("classname", "").split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if (repo / path).is_file():
            return "::".join([path, *parts[i:], case.get("name", "")])
    return "::".join(p for p in (case.get("classname"), case.get("name")) if p)


def junit_failures(repo: Path, xml: Path) -> tuple[list[str], str]:
    """Failing test ids of a junit file and the first failure's message line."""
    if not xml.is_file():
        return [], ""
    failed, detail = [], ""
    for case in ET.parse(xml).iter("testcase"):
        bad = case.find("failure")
        bad = case.find("error") if bad is None else bad
        if bad is not None:
            failed.append(_nodeid(repo, case))
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            detail = detail or (msg[0][:200] if msg else "")
    return failed, detail


def cocotb_failures(build: Path, since: float) -> list[str]:
    """Failing cocotb tests in the results.xml files the RTL benches wrote after ``since``."""
    out = set()
    for xml in build.glob("**/results.xml"):
        if xml.stat().st_mtime < since:
            continue
        for case in ET.parse(xml).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                out.add(case.get("name", "?"))
    return sorted(out)


class Runner:
    """Runs pytest selections in scratch copies with shared build caches."""

    def __init__(self, work: Path, jobs: int, timeout: float):
        self.work, self.jobs, self.timeout = work, jobs, timeout
        self.cache = work / "cache"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def env(self, pkgroot: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
        env.update(PYTHONPATH=str(pkgroot), EVH_CSIM_CACHE=str(self.cache / "csim"),
                   EVH_RTL_BUILD=str(self.cache / "rtl"))  # fmt: skip
        return env

    def pytest(self, tree: Path, args: list[str], tag: str, extra_env=None) -> Run:
        """``pytest -n JOBS`` with ``args`` in ``tree/repo`` (its package root on PYTHONPATH)."""
        repo, xml, log = tree / "repo", self.logs / f"{tag}.xml", self.logs / f"{tag}.log"
        xml.unlink(missing_ok=True)
        cmd = [sys.executable, "-P", "-m", "pytest", "-n", str(self.jobs), "-q",
               "-p", "no:cacheprovider", f"--junitxml={xml}", *args]  # fmt: skip
        env = {**self.env(tree / "pkgroot"), **(extra_env or {})}
        t0 = time.time()
        rc = _run_killable(cmd, repo, env, log, self.timeout)
        rc = 0 if rc == NO_TESTS else rc  # an empty slow selection: nothing ran, nothing failed
        secs = time.time() - t0
        failed, detail = junit_failures(repo, xml)
        if rc == -1:
            failed, detail = failed or [f"timeout after {self.timeout:.0f} s"], "timeout"
        elif rc != 0 and not failed:
            failed, detail = [f"pytest exit status {rc}"], _tail(log)
        cocotb = cocotb_failures(self.cache / "rtl", t0)
        return Run(rc, failed, cocotb, round(secs, 1), detail, str(log))


def _run_killable(cmd, cwd: Path, env, log: Path, timeout: float) -> int:
    """Run ``cmd`` in its own process group; on timeout kill that group and return -1."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -1


def _tail(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def stage_args(sel: Selection, stage: str) -> list[str]:
    """pytest arguments of one stage: the owning selection, the whole make-test tier, or the
    owning slow tests."""
    if stage == "subset":
        return ["-m", "not slow", *sel.files]
    if stage == "make-test":
        return []  # pyproject's addopts: -m 'not slow', testpaths = tests
    return ["-m", "slow", *sel.slow]


# ---------------------------------------------------------------------------- benchmark ----


@dataclass
class Result:
    id: str
    impl: str
    kind: str
    file: str
    description: str
    selection: str
    tier: str | None = None  # subset | make-test | slow | None (survived)
    tests: list[str] = field(default_factory=list)
    cocotb: list[str] = field(default_factory=list)
    detail: str = ""
    stages: list[dict] = field(default_factory=list)

    @property
    def caught(self) -> bool:
        return self.tier is not None


class Bench:
    """Snapshot, probe, baselines (once per selection and stage), then one fault at a time."""

    def __init__(self, work: Path, jobs: int, timeout: float, keep: bool, console: Console):
        self.work, self.keep, self.console = work, keep, console
        self.runner = Runner(work, jobs, timeout)
        self.snap = work / "snapshot"
        self.base_tree = work / "scratch" / "_baseline"
        self.baselines: dict[tuple[str, str], list[str]] = {}

    def prepare(self) -> None:
        n = snapshot(ROOT, self.snap)
        self.console.print(f"snapshot: {n} files of {ROOT} -> {self.snap}")
        scratch_copy(self.snap, self.base_tree)

    def probe(self) -> None:
        """A pytest run in the baseline copy imports the package, its mapped backends
        included, from the scratch copy (not from the editable install)."""
        tests = self.base_tree / "repo" / "tests"
        out = self.work / "probe.json"
        (tests / PROBE).write_text(_PROBE_TEST)
        try:
            run = self.runner.pytest(self.base_tree, [f"tests/{PROBE}"], "probe",
                                     {"EVH_FAULT_PROBE": str(out)})  # fmt: skip
        finally:
            (tests / PROBE).unlink()
        files = json.loads(out.read_text()) if out.is_file() else {}
        inside = str(self.base_tree.resolve())
        bad = [m for m, p in files.items() if not p.startswith(inside)]
        if run.rc != 0 or not files or bad:
            raise SystemExit(f"import probe failed (rc {run.rc}): {bad or run.detail}")
        self.console.print(f"probe: {', '.join(sorted(files))} resolve inside {inside}")

    def baseline(self, sel_name: str, stage: str) -> list[str]:
        """Run a selection once without a fault; returns the tests that fail anyway (a
        colleague's work in progress), which every fault run of it deselects. A baseline that
        fails in any other way (collection error, timeout) stops the benchmark."""
        key = (sel_name, stage)
        if key not in self.baselines:
            tag = f"baseline-{stage}-{sel_name if stage != 'make-test' else 'all'}"
            run = self.runner.pytest(self.base_tree, stage_args(SELECTIONS[sel_name], stage), tag)
            if run.rc not in (0, 1) or any("::" not in t for t in run.failed):
                raise SystemExit(f"baseline {stage} of {sel_name} fails without any fault: "
                                 f"{run.failed[:3]} {run.detail} (log {run.log})")  # fmt: skip
            if run.failed:
                self.console.print(escape(f"WARNING baseline {stage} {sel_name}: "
                                          f"{len(run.failed)} tests fail without any fault, "
                                          f"deselected: {', '.join(run.failed)}"))  # fmt: skip
            self.console.print(f"baseline {stage} {sel_name}: {run.seconds:.0f} s")
            self.baselines[key] = run.failed
            if stage == "make-test":  # one full tier serves every selection
                self.baselines.update({(s, stage): run.failed for s in SELECTIONS})
        return self.baselines[key]

    def deselected(self) -> dict[str, list[str]]:
        return {f"{stage} {sel}": t for (sel, stage), t in self.baselines.items() if t}

    def run_fault(self, f: Fault) -> Result:
        res = Result(f.id, f.impl, f.kind, f.file, f.desc, f.sel)
        tree = self.work / "scratch" / f.id
        scratch_copy(self.snap, tree)
        plant(tree / "repo", f)
        for stage in ("subset", "make-test", "slow"):
            sel = SELECTIONS[f.sel]
            if stage == "slow" and not sel.slow:
                break
            skip = [f"--deselect={t}" for t in self.baseline(f.sel, stage)]
            run = self.runner.pytest(tree, stage_args(sel, stage) + skip, f"{f.id}-{stage}")
            res.stages.append({"stage": stage, **asdict(run)})
            if run.rc != 0:
                res.tier, res.tests, res.cocotb = stage, run.failed, run.cocotb
                res.detail = run.detail
                break
        if not self.keep:
            shutil.rmtree(tree, ignore_errors=True)
        return res


_PROBE_TEST = '''"""Written by benchmarks/fault_injection.py into its scratch copy only."""
import json
import os
from pathlib import Path


def test_imports_come_from_the_scratch_copy():
    import edgevit_hw
    import edgevit_hw.core.arithmetic
    import edgevit_hw.hls
    import edgevit_hw.rtl
    import edgevit_hw.sim

    mods = [edgevit_hw, edgevit_hw.core.arithmetic, edgevit_hw.hls, edgevit_hw.rtl,
            edgevit_hw.sim]
    files = {m.__name__: str(Path(m.__file__).resolve()) for m in mods}
    Path(os.environ["EVH_FAULT_PROBE"]).write_text(json.dumps(files))
'''


# ------------------------------------------------------------------------------ report ----


def summary(results: list[Result]) -> dict:
    n = len(results)
    fast = [r for r in results if r.tier in ("subset", "make-test")]
    slow = [r for r in results if r.tier == "slow"]
    surv = [r for r in results if not r.caught]
    return {
        "faults": n,
        "caught_make_test": len(fast),
        "caught_make_test_pct": round(100.0 * len(fast) / n, 1) if n else 0.0,
        "caught_only_slow": [r.id for r in slow],
        "survivors": {r.id: r.description for r in surv},
    }


def summary_line(s: dict) -> str:
    surv = "; ".join(f"{k} ({v})" for k, v in s["survivors"].items()) or "none"
    slow = ", ".join(s["caught_only_slow"]) or "none"
    n_slow, n_surv = len(s["caught_only_slow"]), len(s["survivors"])
    return (f"{s['faults']} faults, caught by make-test tier {s['caught_make_test']} "
            f"({s['caught_make_test_pct']}%), caught only by slow: {n_slow} ({slow}), "
            f"survivors {n_surv}: {surv}")  # fmt: skip


def _caught_by(r: Result, most: int = 4) -> str:
    """The failing tests, parametrizations folded (``test (x3)``), cocotb tests after."""
    if not r.caught:
        return "SURVIVED"
    count: dict[str, int] = {}
    for t in r.tests:
        base = t.split("[")[0].removeprefix("tests/")
        count[base] = count.get(base, 0) + 1
    names = [b if n == 1 else f"{b} (x{n})" for b, n in count.items()]
    shown = ", ".join(names[:most]) + (f" +{len(names) - most} more" if len(names) > most else "")
    return shown + (f"; cocotb: {', '.join(r.cocotb)}" if r.cocotb else "")


def rich_table(results: list[Result]) -> Table:
    t = Table(title="Fault injection", show_lines=False)
    for col in ("id", "impl", "kind", "description", "caught", "caught by"):
        t.add_column(col, overflow="fold")
    for r in results:
        tier = r.tier or "no"
        t.add_row(*map(escape, (r.id, r.impl, r.kind, r.description, tier, _caught_by(r))))
    return t


def markdown(results: list[Result], s: dict, meta: dict) -> str:
    lines = ["# Fault injection", "", f"{meta['command']} ({meta['wall_s']:.0f} s wall)", "",
             "| id | implementation | kind | description | caught | caught by |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        cells = [r.id, r.impl, r.kind, r.description, r.tier or "no", _caught_by(r, 8)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", summary_line(s)]
    for where, tests in meta.get("deselected", {}).items():
        lines += ["", f"Deselected in {where} (they fail without any fault): {', '.join(tests)}"]
    return "\n".join(lines + [""])


def write_reports(work: Path, results: list[Result], meta: dict) -> dict:
    s = summary(results)
    data = {"meta": meta, "summary": s, "summary_line": summary_line(s),
            "faults": [{**asdict(r), "caught": r.caught} for r in results]}  # fmt: skip
    (work / "faults.json").write_text(json.dumps(data, indent=1) + "\n")
    (work / "faults.md").write_text(markdown(results, s, meta))
    return s


# -------------------------------------------------------------------------------- main ----


def choose(only: str | None) -> list[Fault] | None:
    """The faults ``--only`` names (all by default); None after a one-line error."""
    if not only:
        return list(FAULTS)
    ids = [i.strip().upper() for i in only.split(",") if i.strip()]
    known = {f.id: f for f in FAULTS}
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        named = ", ".join(unknown) or repr(only)
        print(f"fault_injection: --only: unknown fault id(s) {named}", file=sys.stderr)
        return None
    return [known[i] for i in ids]


def list_faults(faults: list[Fault], console: Console) -> None:
    t = Table(title=f"{len(faults)} faults")
    for col in ("id", "impl", "kind", "file", "selection", "description", "anchor"):
        t.add_column(col, overflow="fold")
    for f in faults:
        problem = anchor_problem(ROOT, f)
        cells = (f.id, f.impl, f.kind, f.file, f.sel, f.desc, "MISSING" if problem else "ok")
        t.add_row(*map(escape, cells))
    console.print(t)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated fault ids (default: all)")
    ap.add_argument("--list", action="store_true", help="list the faults and their anchors")
    ap.add_argument("--workdir", default="build/faults", help="work folder (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep each fault's scratch copy")
    ap.add_argument("--jobs", type=int, default=2, help="pytest -n (default %(default)s)")
    killed = "seconds per pytest run before it is killed (default %(default)s)"
    ap.add_argument("--timeout", type=float, default=2400.0, help=killed)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    faults = choose(args.only)
    if faults is None:
        return 2
    if args.list:
        list_faults(faults, console)
        return 0
    problems = [p for p in (anchor_problem(ROOT, f) for f in faults) if p]
    if problems:
        print(f"fault_injection: missing or ambiguous anchor: {'; '.join(problems)}",
              file=sys.stderr)  # fmt: skip
        return 2
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    return run_all(work, faults, args, console)


def run_all(work: Path, faults: list[Fault], args, console: Console) -> int:
    t0 = time.time()
    bench = Bench(work, args.jobs, args.timeout, args.keep, console)
    bench.prepare()
    problems = [p for p in (anchor_problem(bench.snap, f) for f in faults) if p]
    if problems:  # the tree changed between the check and the snapshot
        print(f"fault_injection: missing or ambiguous anchor: {'; '.join(problems)}",
              file=sys.stderr)  # fmt: skip
        return 2
    bench.probe()
    for sel in dict.fromkeys(f.sel for f in faults):
        bench.baseline(sel, "subset")
    results: list[Result] = []
    meta = {"command": "python benchmarks/fault_injection.py " + " ".join(sys.argv[1:]),
            "root": str(ROOT), "jobs": args.jobs}  # fmt: skip
    for f in faults:
        r = bench.run_fault(f)
        results.append(r)
        secs = sum(s["seconds"] for s in r.stages)
        console.print(escape(f"{r.id} {r.tier or 'SURVIVED':9} {secs:6.0f} s  {_caught_by(r)}"))
        meta.update(wall_s=time.time() - t0, deselected=bench.deselected())
        write_reports(work, results, meta)
    s = write_reports(work, results, meta)
    console.print(rich_table(results))
    console.print(escape(summary_line(s)))
    console.print(f"wall {time.time() - t0:.0f} s; reports in {work}/faults.json, faults.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
