"""Structural facts of the HLS kernels (hls/include) that Vitis relies on and C-simulation
cannot see: the compute unit's dataflow region is in canonical form, the programs keep the
anti-dependency that form leaves to the design, and no 64-bit C type sits in a per-MAC,
per-lane or per-row path (every intermediate has its derived width).

The C++ is read as text (comments stripped): a function is found by its definition at column
0, a variable's uses in a function are classified as reads or writes, following it into the
kernel functions it is passed to."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import prepared

from edgevit_hw.program import isa

PRESETS = ["micro_moe", "odd_moe", "digits_moe", "m3vit", "deit_tiny"]


def _kernels() -> dict[str, str]:
    from edgevit_hw.hls.emit import kernel_sources

    return {n: _strip(d.decode()) for n, d in kernel_sources().items()}


def _strip(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def _split_args(text: str) -> list[str]:
    """Comma-separated items at bracket depth 0 (parentheses, brackets, braces)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*out, cur.strip()] if cur.strip() else out


def _closing(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket matching the one at ``i``."""
    depth = 0
    for j in range(i, len(text)):
        depth += (text[j] == open_) - (text[j] == close)
        if depth == 0:
            return j + 1
    raise AssertionError("unbalanced brackets")


def _definition(texts: dict[str, str], name: str) -> tuple[list[str], str]:
    """(parameter names, body) of the kernel function ``name``, defined at column 0."""
    for text in texts.values():
        for m in re.finditer(rf"^[A-Za-z_][^\n;]*?\b{name}\(", text, re.M):
            end = _closing(text, m.end() - 1, "(", ")")
            rest = text[end:].lstrip()
            if not rest.startswith("{"):
                continue  # a declaration
            start = text.index("{", end)
            params = _split_args(text[m.end() : end - 1])
            names = [re.findall(r"\w+", p.split("[")[0])[-1] for p in params]
            return names, text[start + 1 : _closing(text, start, "{", "}") - 1]
    raise KeyError(name)


def _call_of(body: str, at: int) -> tuple[str, int] | None:
    """(callee, argument index) when the word at ``at`` is a whole argument of a call."""
    depth, commas = 0, 0
    for j in range(at - 1, -1, -1):
        ch = body[j]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                m = re.search(r"(\w+)(?:<[^()]*>)?\s*$", body[:j])
                if ch != "(" or not m:
                    return None
                arg = _split_args(body[j + 1 : _closing(body, j, "(", ")") - 1])[commas]
                return (m.group(1), commas) if re.fullmatch(r"\w+", arg) else None
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        elif ch == ";" and depth == 0:
            return None
    return None


def _uses(texts: dict[str, str], fn: str, var: str) -> set[str]:
    """How function ``fn`` uses its variable ``var``: "r" (read), "w" (written), through the
    kernel functions it passes ``var`` to."""
    _, body = _definition(texts, fn)
    out: set[str] = set()
    for m in re.finditer(rf"(?<![\w.]){var}\b", body):
        tail = body[m.end() :]
        if tail.startswith(".write("):
            out.add("w")
        elif tail.startswith(".read("):
            out.add("r")
        elif w := re.match(r"(?:\[[^\]]*\])+\s*([-+*/|&^]?)=(?!=)", tail):
            out |= {"w", "r"} if w.group(1) else {"w"}
        elif (call := _call_of(body, m.start())) and _defined(texts, call[0]):
            out |= _uses(texts, call[0], _definition(texts, call[0])[0][call[1]])
        else:
            out.add("r")
    return out


def _defined(texts: dict[str, str], name: str) -> bool:
    try:
        _definition(texts, name)
    except KeyError:
        return False
    return True


def _region(texts: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """The dataflow region of linear(): its local streams {name: type} and process calls."""
    _, body = _definition(texts, "linear")
    assert "HLS DATAFLOW" in body
    streams, calls = {}, []
    for stmt in re.sub(r"EVH_PRAGMA\([^\n]*", "", body).split(";"):
        stmt = " ".join(stmt.split())
        if not stmt:
            continue
        if m := re.fullmatch(r'(\w+)<Cfg> (\w+)\("(\w+)"\)', stmt):
            streams[m.group(2)] = m.group(1)
        elif m := re.fullmatch(r"(\w+)<Cfg>\((.*)\)", stmt):
            calls.append((m.group(1), _split_args(m.group(2))))
        else:
            raise AssertionError(f"not canonical: {stmt!r} in the dataflow region")
    return streams, calls


def test_dataflow_region_is_canonical():
    """The compute unit's region in UG1399's canonical form ("Canonical Forms", "Dataflow
    Optimization Limitations"; UG1448 "Dataflow Canonical Rules"), without which Vitis
    serializes the processes (and, with shallow streams, a board can deadlock where
    C-simulation passes): only stream declarations and process calls; every stream has one
    writing and one reading process, the reader later (no feedback) and no channel bypassing
    a process that lies on another path between the same two; every array argument read only
    by processes with no input stream and written only by processes with no output stream,
    one reader and one writer at most, read before written."""
    texts = _kernels()
    streams, calls = _region(texts)
    names = [fn for fn, _ in calls]
    reads: dict[str, set[int]] = {}
    writes: dict[str, set[int]] = {}
    for i, (fn, args) in enumerate(calls):
        params, _ = _definition(texts, fn)
        assert len(params) == len(args), fn
        for param, arg in zip(params, args, strict=True):
            if arg == "j":
                continue  # the job's scalars: any process may read them
            assert arg in streams or arg == "port" or re.fullmatch(r"a\.\w+", arg), arg
            uses = _uses(texts, fn, param)
            assert uses, f"{fn} never uses {param}"
            for kind, table in (("r", reads), ("w", writes)):
                if kind in uses:
                    table.setdefault(arg, set()).add(i)
    edges = set()
    for s in streams:
        wr, rd = writes.get(s, set()), reads.get(s, set())
        assert len(wr) == 1 and len(rd) == 1, f"stream {s}: written by {wr}, read by {rd}"
        (w,), (r,) = wr, rd
        assert w < r, f"stream {s}: {names[r]} reads what the later {names[w]} writes"
        edges.add((w, r))
    for w, r in edges:
        for k in range(w + 1, r):
            assert not ((w, k) in edges and (k, r) in edges), (
                f"{names[w]} -> {names[r]} bypasses {names[k]}"
            )
    sources = set(range(len(calls))) - {r for _, r in edges}
    sinks = set(range(len(calls))) - {w for w, _ in edges}
    for arg in (set(reads) | set(writes)) - set(streams):
        rd, wr = reads.get(arg, set()), writes.get(arg, set())
        assert len(rd) <= 1 and len(wr) <= 1, f"{arg}: read by {rd}, written by {wr}"
        assert rd <= sources, f"{arg} read in the middle of the region ({names[min(rd)]})"
        assert wr <= sinks, f"{arg} written before the end of the region ({names[min(wr)]})"
        assert not (rd and wr) or min(rd) < min(wr), f"{arg} written before it is read"


def test_process_buffers_are_declared_by_one_process():
    """A buffer of derive that a dataflow process owns (emit.PROCESS_BUFFERS: its memory is
    that process's, not an argument of the region) is declared in exactly one function, a
    process of the region."""
    from edgevit_hw.hls.emit import PROCESS_BUFFERS

    texts = _kernels()
    _, calls = _region(texts)
    for buf in PROCESS_BUFFERS:
        owners = [
            fn for fn, _ in calls if re.search(rf"Act::{buf}_t \w+;", _definition(texts, fn)[1])
        ]
        assert len(owners) == 1, (buf, owners)
        assert not any(re.search(rf"\b{buf}\b", t) for t in texts.values()), (
            f"{buf} used as an array"
        )


def _hls_job_map(texts: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """The buffers the gather reads operands from (read_segment's cases) and the buffer the
    epilogue writes for each epilogue kind (its dispatch, through linear()'s arguments)."""
    sources = {
        b.lower()
        for b in re.findall(r"j\.src == Cfg::BUF_(\w+)", _definition(texts, "read_segment")[1])
    }
    params, body = _definition(texts, "epilogue")
    _, calls = _region(texts)
    args = dict(zip(params, dict(calls)["epilogue"], strict=True))
    cases = re.findall(
        r"(?:if \(j\.epi == Cfg::EPI_(\w+)\)|else)\s*epi_\w+<[^>]*>\(j, hs, as, (\w+)\)", body
    )
    named = {e for e, _ in cases if e}
    rest = [e.name for e in isa.Epi if e.name not in named]
    epi_dst = {(e or rest.pop()): args[p].removeprefix("a.") for e, p in cases}
    assert not rest and len(epi_dst) == len(isa.Epi), epi_dst
    return sources, epi_dst


def _job_hazards(program, sources: set[str], epi_dst: dict[str, str]) -> list[str]:
    """Every MATMUL whose job would read what its epilogue writes in the same region, or whose
    buffers are not the ones the HLS gather and epilogue use."""
    bad = []
    for label, insn in zip(program.labels, program.insns, strict=True):
        if insn.OP != isa.Op.MATMUL:
            continue
        src, dst = insn.src.buffer_name, insn.dst.buffer_name
        if src == dst or src not in sources or epi_dst[insn.epi.name] != dst:
            bad.append(f"{label}: {insn.epi.name} {src} -> {dst}")
    return bad


@pytest.mark.parametrize("name", PRESETS)
def test_no_job_reads_what_it_writes(name):
    """The anti-dependency the canonical region leaves to the design (UG1448 "Dataflow
    Canonical Rules": function arguments read before written, "intra-body anti-dependencies
    must be preserved by the design"): in every compiled program, a MATMUL's source buffer is
    never its destination, its source is one the gather reads and its destination the one the
    HLS epilogue writes for its kind; so the gather, running ahead of the epilogue, never
    reads an element the same job writes (the old values of a residual add or MoE sum are
    read once, by the gather, before the epilogue writes them)."""
    texts = _kernels()
    sources, epi_dst = _hls_job_map(texts)
    program = prepared(name).program
    assert any(i.OP == isa.Op.MATMUL for i in program.insns)
    assert _job_hazards(program, sources, epi_dst) == []


def test_job_hazards_are_found(micro):
    """The program check flags a MATMUL that reads its destination or whose destination is
    not the epilogue's."""
    sources, epi_dst = _hls_job_map(_kernels())
    insns = list(micro.program.insns)
    at = next(j for j, i in enumerate(insns) if i.OP == isa.Op.MATMUL and i.epi == isa.Epi.GELU)
    for change in ({"src": insns[at].dst}, {"dst": isa.Buf.QKV}):
        bad = list(insns)
        bad[at] = dataclasses.replace(insns[at], **change)
        program = dataclasses.replace(micro.program, insns=tuple(bad))
        src, dst = bad[at].src.buffer_name, bad[at].dst.buffer_name
        assert _job_hazards(program, sources, epi_dst) == [
            f"{micro.program.labels[at]}: GELU {src} -> {dst}"
        ]


# Where a 64-bit C type may appear in the HLS sources, and why: (file, function or type) ->
# the tokens allowed there. Everywhere else (every per-MAC, per-lane and per-row path) the
# types are derived widths (evh_types.h int_t / uint_t).
WIDE_ALLOWED = {
    ("evh_types.h", "native_int"): {"int64_t", "uint64_t"},  # C-sim stand-in for N > 32 bits
    ("evh_debug.h", "*"): {"int64_t"},  # C-simulation dumps (never synthesized)
    ("evh_model.h", "*"): {"uint64_t"},  # the cycle model: frame-level cycle counts
    ("evh_frame.h", "read_frame"): {"uint64_t"},  # the frame's cycle counter
    ("evh_frame.h", "run_program"): {"uint64_t"},
    ("evh_frame.h", "frame_controller"): {"uint64_t"},
    ("evh_top.h", "evh_top"): {"uint64_t"},  # the model_cycles register
    ("evh_top.cpp", "evh_top"): {"uint64_t"},
}
WIDE = re.compile(r"\b(i64|u64|u?int64_t|long\s+long|to_u?int64)\b")
OWNER = re.compile(r"^(?:(?:struct|class)\s+(\w+)|typedef\b[^;]*?\b(\w+)\s*;|using\s+(\w+)"
                   r"|(?!EVH_PRAGMA|template\b)[A-Za-z_][^;(]*?\b(\w+)\s*\()")  # fmt: skip


def _owner(lines: list[str], i: int) -> str | None:
    """The function, type or typedef defined at column 0 that line ``i`` belongs to."""
    for line in reversed(lines[: i + 1]):
        if m := OWNER.match(line):
            return next(g for g in m.groups() if g)
    return None


def _wide_uses(files: dict[str, str]) -> list[str]:
    """Every 64-bit C type outside WIDE_ALLOWED, as file:line: owner: token."""
    bad = []
    for name, text in files.items():
        lines = _strip(text).splitlines()
        for i, line in enumerate(lines):
            for tok in WIDE.findall(line):
                owner = _owner(lines, i)
                ok = WIDE_ALLOWED.get((name, owner), set()) | WIDE_ALLOWED.get((name, "*"), set())
                if tok not in ok:
                    bad.append(f"{name}:{i + 1}: {owner}: {tok}")
    return bad


@pytest.mark.parametrize("name", ["micro_moe", "odd_moe", "m3vit"])
def test_no_64_bit_type_in_per_lane_paths(name):
    """The kernels and the generated sources (not the C-simulation testbench) hold no 64-bit C
    type (int64_t, i64, long long, ...) outside the frame-level and C-simulation-only places
    of WIDE_ALLOWED; the native typedefs of the fast C-simulation build live in one place."""
    from edgevit_hw.hls.emit import kernel_sources, render_sources

    files = {n: d.decode() for n, d in kernel_sources().items()}
    gen = render_sources(prepared(name).program)
    files.update({n: t for n, t in gen.items() if n not in ("evh_tb.cpp", "run_hls.tcl")})
    assert "evh_params.h" in files and "evh_arith.h" in files
    assert _wide_uses(files) == []


def test_wide_types_are_found():
    """The grep flags a 64-bit type in a per-lane function, and in a generated typedef."""
    files = {
        "evh_mac.h": "template <class Cfg>\nvoid epi_gelu(int x) {\n    const i64 u = x;\n}\n",
        "evh_params.h": "struct EvhCfgT {\n    typedef int64_t acc_t;\n};\n",
        "evh_frame.h": "uint64_t run_program(int a,\n    uint64_t& b) {\n    int64_t c;\n}\n",
    }
    assert _wide_uses(files) == [
        "evh_mac.h:3: epi_gelu: i64",
        "evh_params.h:2: EvhCfgT: int64_t",
        "evh_frame.h:3: run_program: int64_t",
    ]
