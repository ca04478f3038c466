"""HLS C-simulation (g++) of the generated project against the golden model, on micro_moe.

Each binary is compiled once per spec (cached by source hash in build/csim_cache) and reused.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess

import numpy as np
import pytest
from conftest import prepared
from edgevit_hw.hls import csim

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import spec_variant
from edgevit_hw.flow import prepare
from edgevit_hw.ml.images import EVAL_IMAGE, load_image, random_pixels
from edgevit_hw.program.streams import frame_beats

pytestmark = pytest.mark.csim


@pytest.fixture(scope="module")
def binary(micro):
    return csim.build(micro.qmodel, micro.hw)


@pytest.fixture(scope="module")
def dump_binary(micro):
    return csim.build(micro.qmodel, micro.hw, ("EVH_DUMP",))


def _check(res: csim.CsimResult, prep, px: np.ndarray, task: int, label: str) -> None:
    """Tokens equal the golden model's; on a difference, the debug build names the first
    differing intermediate tensor."""
    gold = golden_forward(prep.qmodel, px, task).tokens
    assert res.status == 0 and res.frames_ok == 1 and res.frames_bad == 0, label
    assert len(res.frames) == 1, label
    got = res.frames[0]
    bad = np.argwhere(got != gold)
    if len(bad):
        where = csim.diagnose(prep.qmodel, prep.hw, px, task)
        pytest.fail(
            f"{label}: {len(bad)} tokens differ, first at {tuple(bad[0])}:"
            f" csim {got[tuple(bad[0])]} golden {gold[tuple(bad[0])]}; {where}"
        )


@pytest.mark.parametrize("task", [0, 1])
def test_real_image_bit_exact(micro, binary, task):
    px = load_image(EVAL_IMAGE, micro.spec)
    res = csim.run_frame(binary, micro.qmodel, px, task)
    _check(res, micro, px, task, f"{EVAL_IMAGE} task {task}")
    assert res.spec_id == micro.hw.hash32
    assert res.cycles > 0


@pytest.mark.parametrize("task", [0, 1])
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_random_pixels_bit_exact(micro, binary, seed, task, offset):
    s = seed + offset
    print(f"pixel seed={s}")
    px = random_pixels(micro.spec, s)
    res = csim.run_frame(binary, micro.qmodel, px, task)
    _check(res, micro, px, task, f"seed {s} task {task}")


def test_malformed_frames_dropped_and_next_frames_correct(micro, binary, seed):
    """short frame, good, long frame, good, frame without any pixel but tlast, good."""
    print(f"pixel seed={seed}")
    m = micro.spec.model
    pxs = [random_pixels(micro.spec, seed + i) for i in range(3)]
    good = [frame_beats(p, micro.hw) for p in pxs]
    short = good[0][:-5].copy()
    short[-1, -1] = 1
    long = np.concatenate([good[1], good[1][:7]])
    long[len(good[1]) - 1, -1] = 0  # the expected last beat carries no tlast
    long[-1, -1] = 1
    lone = np.zeros((1, good[0].shape[1]), np.uint8)
    lone[0, -1] = 1
    stream = np.concatenate([short, good[0], long, good[1], lone, good[2]])
    res = csim.run_beats(binary, stream, 1, 6, (m.tokens, m.embed_dim))
    assert res.frames_ok == 3 and res.frames_bad == 3
    assert res.status == 0b0111, f"status 0x{res.status:x}"  # error | short | long
    assert len(res.frames) == 3
    for i, p in enumerate(pxs):
        assert np.array_equal(res.frames[i], golden_forward(micro.qmodel, p, 1).tokens), i


def test_bad_task_sets_error_and_outputs_nothing(micro, binary):
    m = micro.spec.model
    px = load_image(EVAL_IMAGE, micro.spec)
    beats = np.concatenate([frame_beats(px, micro.hw)] * 2)
    res = csim.run_beats(binary, beats, len(micro.spec.tasks), 2, (m.tokens, m.embed_dim))
    assert res.frames == [] and res.frames_bad == 2 and res.frames_ok == 0
    assert res.status == 0b1001, f"status 0x{res.status:x}"  # error | bad task


def test_hardware_sections_give_identical_outputs(micro, binary, seed):
    """MAC array 8x8 vs 16x16 and P = 2 vs 4 (separately compiled binaries)."""
    other = spec_variant(micro.spec, hardware={"mac_rows": 16, "mac_cols": 16, "attn_rows": 4})
    prep2 = prepare(other)
    assert prep2.hw.mac_rows == 16 and prep2.hw.attn_rows == 4 and micro.hw.mac_rows == 8
    assert prep2.qmodel.tensors.keys() == micro.qmodel.tensors.keys()
    assert all(np.array_equal(prep2.qmodel[k], micro.qmodel[k]) for k in micro.qmodel.tensors)
    other_bin = csim.build(prep2.qmodel, prep2.hw)
    print(f"pixel seed={seed}")
    for px in (load_image(EVAL_IMAGE, micro.spec), random_pixels(micro.spec, seed)):
        for task in range(len(micro.spec.tasks)):
            a = csim.run_frame(binary, micro.qmodel, px, task).frames[0]
            b = csim.run_frame(other_bin, prep2.qmodel, px, task).frames[0]
            assert np.array_equal(a, b)
            assert np.array_equal(a, golden_forward(micro.qmodel, px, task).tokens)


def test_debug_dumps_match_every_golden_tensor(micro, dump_binary, seed, tmp_path):
    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    res = csim.run_frame(dump_binary, micro.qmodel, px, 0, dump_dir=tmp_path)
    gold = golden_forward(micro.qmodel, px, 0, trace=True)
    assert set(gold.trace) <= set(res.dumps), set(gold.trace) - set(res.dumps)
    assert csim.first_difference(gold.trace, res.dumps) is None
    assert np.array_equal(res.frames[0], gold.tokens)


def test_debug_dumps_name_first_differing_tensor(micro, dump_binary, seed, tmp_path):
    """A corrupted projection weight of block 1 must be reported at blocks.1.res1."""
    program = micro.program
    blob = bytearray(program.image)
    at = program.by_label("blocks.1.proj").w * micro.hw.streams.beat_bytes + 3
    blob[at] = (blob[at] + 77) % 256
    bad = tmp_path / "bad_weights.bin"
    bad.write_bytes(bytes(blob))
    px = random_pixels(micro.spec, seed)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    res = csim.run_frame(dump_binary, micro.qmodel, px, 0, dump_dir=dumps, weights=bad)
    gold = golden_forward(micro.qmodel, px, 0, trace=True)
    msg = csim.first_difference(gold.trace, res.dumps)
    print(msg)
    assert msg is not None and msg.startswith("blocks.1.res1: first difference at index")


def test_weight_image_layout_roundtrip(micro):
    """8-bit weights on a 64-bit port with C = 8: each beat is one k-row of a column slab,
    w[j*C .. j*C + 7][k], slab after slab, at the job's weight beat."""
    program, hw = micro.program, micro.hw
    assert hw.mac_cols == hw.streams.weights_per_beat == 8 and hw.streams.slab_row_beats == 1
    blob = np.frombuffer(program.image, np.uint8)
    w = micro.qmodel["blocks.0.qkv.w"]  # [O, K]
    start = program.by_label("blocks.0.qkv").w * hw.streams.beat_bytes
    got = blob[start : start + w.size].view(np.int8).reshape(-1, w.shape[1], 8)  # [slab, k, c]
    assert np.array_equal(got.transpose(0, 2, 1).reshape(w.shape), w)
    assert program.image_beats * micro.hw.streams.beat_bytes == len(blob)


def test_qmodel_spec_matches_hw(micro):
    assert isinstance(micro.qmodel, QuantModel) and micro.hw.spec_name == micro.spec.name


def test_exact_width_ap_types_build_bit_exact(micro, seed):
    """-DEVH_AP_TYPES: every buffer and accumulator as ap_int of exactly its derived width (the
    types synthesis uses) gives the same bits as the native-type C-simulation build."""
    ap_bin = csim.build(micro.qmodel, micro.hw, ("EVH_AP_TYPES",))
    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    for task in range(len(micro.spec.tasks)):
        res = csim.run_frame(ap_bin, micro.qmodel, px, task)
        _check(res, micro, px, task, f"ap types task {task}")


def test_no_final_norm_preset_bit_exact(seed):
    """digits_moe: no final LayerNorm (16-bit residual tokens out), 1 channel, 2 MoE blocks."""
    prep = prepared("digits_moe")
    assert not prep.spec.model.final_norm
    binary = csim.build(prep.qmodel, prep.hw)
    print(f"pixel seed={seed}")
    for px in (load_image(EVAL_IMAGE, prep.spec), random_pixels(prep.spec, seed)):
        for task in range(len(prep.spec.tasks)):
            res = csim.run_frame(binary, prep.qmodel, px, task)
            _check(res, prep, px, task, f"digits task {task}")


# Both C-simulation builds: native types, and ap_int of exactly each derived width (the types
# synthesis uses: every intermediate at its derived width, evh_types.h).
BUILDS = [(), ("EVH_AP_TYPES",)]


@pytest.mark.parametrize("defines", BUILDS)
def test_odd_widths_and_schedule_bit_exact(seed, defines):
    """6-bit weights (5 lanes per 32-bit beat), 40-bit biases (two words each), a 3x5 MAC
    array and P = 3: packing, tiling and skew edge cases all still match the golden model."""
    spec = spec_variant(
        "micro_moe",
        hardware={"weight_port_bits": 32, "mac_rows": 3, "mac_cols": 5, "attn_rows": 3},
        quant={"weight_bits": 6, "bias_bits": 40},
    )
    prep = prepare(spec)
    assert prep.hw.weights_per_beat == 5
    binary = csim.build(prep.qmodel, prep.hw, defines)
    print(f"pixel seed={seed}")
    px = random_pixels(spec, seed)
    for task in range(len(spec.tasks)):
        _check(csim.run_frame(binary, prep.qmodel, px, task), prep, px, task, f"task {task}")


@pytest.mark.parametrize("defines", BUILDS)
def test_every_stream_drains_each_job(micro, seed, monkeypatch, defines):
    """Each stream of the compute unit's dataflow region is read exactly as often as it is
    written, job by job: C-simulation's hls::stream reports leftover data and reads of an
    empty stream (on a board, a process blocked forever while C-simulation goes on with a
    default value), and no run prints either, on every task."""
    printed = []
    real = subprocess.run

    def run(*args, **kwargs):
        res = real(*args, **kwargs)
        printed.append(f"{res.stdout}{res.stderr}")
        return res

    binary = csim.build(micro.qmodel, micro.hw, defines)
    monkeypatch.setattr(csim.subprocess, "run", run)
    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    for task in range(len(micro.spec.tasks)):
        _check(csim.run_frame(binary, micro.qmodel, px, task), micro, px, task, f"task {task}")
    assert len(printed) == len(micro.spec.tasks)
    assert not [line for text in printed for line in text.splitlines() if "Hls::stream" in line]


def _flipped(qm: QuantModel, name: str) -> QuantModel:
    """``qm`` with the weight tensor ``name`` negated (saturated): same sources, other image."""
    w, bits = qm[name], qm.spec.quant.weight_bits
    flipped = np.clip(-w, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(w.dtype)
    return dataclasses.replace(qm, tensors={**qm.tensors, name: flipped})


def _run_bit_exact(qm: QuantModel, hw, px: np.ndarray) -> csim.Binary:
    """Build (cached) for ``qm`` and run one frame: bit-exact with ``qm``'s golden model."""
    binary = csim.build(qm, hw)
    res = csim.run_frame(binary, qm, px, 0)
    assert len(res.frames) == 1, res.status
    bad = np.argwhere(res.frames[0] != golden_forward(qm, px, 0).tokens)
    assert not len(bad), f"{len(bad)} tokens differ, weights {binary.weights.name}"
    return binary


def test_model_change_and_back_runs_its_own_weights(micro, seed):
    """A model change that keeps the sources (one weight tensor negated) gets its own weight
    image in the same cached project; changing back runs the original image again. Every
    run is bit-exact with the golden model of the model it was built from."""
    other = _flipped(micro.qmodel, "blocks.0.proj.w")
    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    before = golden_forward(micro.qmodel, px, 0).tokens
    assert not np.array_equal(before, golden_forward(other, px, 0).tokens), "invisible change"
    first = _run_bit_exact(micro.qmodel, micro.hw, px)
    changed = _run_bit_exact(other, micro.hw, px)
    assert changed.project == first.project and changed.weights != first.weights
    back = _run_bit_exact(micro.qmodel, micro.hw, px)
    assert back.weights == first.weights
    assert back.weights.read_bytes() != changed.weights.read_bytes()


def _saturating(qm: QuantModel) -> QuantModel:
    """``qm`` with the position embedding pushed next to the residual bounds (each entry keeps
    its sign): the embedding and every residual add then saturate at both bounds."""
    pos, top = qm["pos"], (1 << (qm.spec.quant.residual_bits - 1)) - 1
    pushed = np.where(pos >= 0, top - 3, -top + 2).astype(pos.dtype)
    return dataclasses.replace(qm, tensors={**qm.tensors, "pos": pushed})


@pytest.mark.parametrize("defines", BUILDS)
def test_saturating_residual_bit_exact(micro, seed, defines):
    """Residual adds that saturate at both bounds (patch embedding, attention and MLP / MoE
    branches): the C-simulation clamps exactly like the golden model, on both tasks."""
    qm = _saturating(micro.qmodel)
    top = (1 << (qm.spec.quant.residual_bits - 1)) - 1
    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    binary = csim.build(qm, micro.hw, defines)
    for task in range(len(micro.spec.tasks)):
        trace = golden_forward(qm, px, task, trace=True).trace
        for name in [k for k in trace if k == "embed" or k.endswith((".res1", ".res2"))]:
            assert trace[name].max() == top and trace[name].min() == -top - 1, name
        res = csim.run_frame(binary, qm, px, task)
        _check(res, dataclasses.replace(micro, qmodel=qm), px, task, f"saturating task {task}")


@pytest.mark.parametrize("task", [0, 1])
def test_model_cycles_are_the_hls_loop_table(micro, binary, seed, task):
    """The C-simulation's model_cycles (evh_model.h) equal the per-loop HLS estimate of
    edgevit_hw.program.perf with the frame's measured queue lengths."""
    from edgevit_hw.core.golden import patchify
    from edgevit_hw.program.interpreter import Interpreter
    from edgevit_hw.program.perf import hls_estimate

    print(f"pixel seed={seed}")
    px = random_pixels(micro.spec, seed)
    interp = Interpreter(micro.program.image, micro.hw)
    interp.run(patchify(px, micro.spec.model.patch), task)
    res = csim.run_frame(binary, micro.qmodel, px, task)
    assert res.cycles == hls_estimate(micro.program, interp.queue_counts)["total"]


@pytest.mark.parametrize("name", ["odd_moe", "m3vit"])
@pytest.mark.parametrize("defines", [(), ("EVH_AP_TYPES",), ("EVH_DUMP",)])
def test_generated_project_compiles_strict(name, defines, tmp_path):
    """The generated project (sources and kernels) compiles with g++ -std=c++14 -Wall -Wextra
    -Werror, with native types, with ap_int types of exactly the derived widths, and with the
    debug dumps (-fsyntax-only: every template instantiated, nothing linked)."""
    from edgevit_hw.hls.emit import kernel_sources, render_sources

    prep = prepared(name)
    (tmp_path / "include").mkdir()
    for rel, text in render_sources(prep.program).items():
        (tmp_path / rel).write_text(text)
    for rel, data in kernel_sources().items():
        (tmp_path / "include" / rel).write_bytes(data)
    cmd = [csim.CXX, *csim.CXXFLAGS, "-fsyntax-only", *(f"-D{d}" for d in defines),
           "-isystem", str(csim.ap_types_dir()), f"-I{tmp_path}", f"-I{tmp_path / 'include'}",
           str(tmp_path / "evh_top.cpp"), str(tmp_path / "evh_tb.cpp")]  # fmt: skip
    assert "-std=c++14" in cmd and "-Werror" in cmd and "-Wextra" in cmd
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


def _function(text: str, name: str) -> str:
    """The text of the kernel function ``name`` (from its signature to the next one)."""
    start = text.index(f" {name}(")
    nxt = re.search(r"\n(template <|// )", text[start:])
    return text[start : start + (nxt.start() if nxt else len(text))]


def test_grep_facts_of_the_hls_kernels():
    """One linear() call site; every ARRAY_PARTITION names an array defined in its function
    (never a parameter); no int64_t / i64 on the MAC array's per-MAC path (gather, mac)."""
    from edgevit_hw.hls.emit import kernel_sources

    src = {n: d.decode() for n, d in kernel_sources().items()}
    calls = [line for text in src.values() for line in text.splitlines()
             if re.search(r"\blinear<Cfg>\(", line) and "void linear" not in line]  # fmt: skip
    assert len(calls) == 1, calls
    for name, text in src.items():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"ARRAY_PARTITION variable = (\w+)", line)
            if not m:
                continue
            var = m.group(1)
            window = lines[max(0, i - 20) : i]
            defined = re.compile(rf"\b{var}(\[|;)")
            decl = [
                ln for ln in window if defined.search(ln) and not re.search(r"[(),]\s*$|\)", ln)
            ]
            assert decl, f"{name}:{i + 1}: {var} is not an array defined in its function"
    mac = src["evh_mac.h"]
    for fn in ("gather", "mac", "read_segment"):
        body = _function(mac, fn)
        assert "i64" not in body and "int64_t" not in body, fn
