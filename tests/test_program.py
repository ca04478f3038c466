"""The program: encoding round trip, the interpreter (bit-exact with the golden model on every
preset and schedule) and the cycle model."""

import dataclasses

import numpy as np
import pytest
from conftest import prepared

from edgevit_hw.core.golden import golden_forward, patchify
from edgevit_hw.core.spec import presets, spec_variant
from edgevit_hw.flow import prepare
from edgevit_hw.ml.images import EVAL_IMAGE, load_image, random_pixels
from edgevit_hw.program import isa
from edgevit_hw.program.compiler import compile_program, read_program
from edgevit_hw.program.image import ImageReader
from edgevit_hw.program.interpreter import Interpreter
from edgevit_hw.program.perf import estimate

SMALL = ["micro_moe", "odd_moe", "digits_moe"]


def _frames(prep, seed, random: bool = True):
    frames = [load_image(EVAL_IMAGE, prep.spec)]
    return frames + [random_pixels(prep.spec, seed)] if random else frames


def _check_all_tasks(prep, frames, image=None):
    interp = Interpreter(prep.program.image if image is None else image, prep.hw)
    for px in frames:
        patches = patchify(px, prep.spec.model.patch)
        for task in range(len(prep.spec.tasks)):
            gold = golden_forward(prep.qmodel, px, task).tokens
            got = interp.run(patches, task)
            assert np.array_equal(got, gold), f"{prep.spec.name} task {task}: {(got != gold).sum()}"


def test_every_preset_is_covered():
    assert set(presets()) == set(SMALL) | {"deit_tiny", "m3vit"}


@pytest.mark.parametrize("name", SMALL)
def test_interpreter_equals_golden_small(name, seed):
    """Every task, the evaluation photograph and a random frame: 0 differing integers."""
    print(f"pixel seed={seed}")
    _check_all_tasks(prepared(name), _frames(prepared(name), seed))


@pytest.mark.parametrize("name", ["deit_tiny", "m3vit"])
def test_interpreter_equals_golden_large(name):
    _check_all_tasks(prepared(name), _frames(prepared(name), 0, random=False))


@pytest.mark.parametrize(
    "hardware",
    [
        {"mac_rows": 3, "mac_cols": 5, "attn_rows": 3, "weight_port_bits": 32},
        {"mac_rows": 16, "mac_cols": 4, "attn_rows": 5, "weight_port_bits": 256},
    ],
)
def test_schedule_never_changes_a_bit(hardware, seed):
    """Other MAC arrays, P and ports compile to other programs and images, same tokens."""
    base = prepared("micro_moe")
    prep = prepare(spec_variant(base.spec, hardware=hardware))
    assert prep.program.image != base.program.image
    px = random_pixels(base.spec, seed)
    patches = patchify(px, base.spec.model.patch)
    for task in range(len(base.spec.tasks)):
        got = Interpreter(prep.program.image, prep.hw).run(patches, task)
        assert np.array_equal(got, golden_forward(base.qmodel, px, task).tokens)


@pytest.mark.parametrize("name", SMALL + ["m3vit"])
def test_encoding_round_trip(name):
    prog = prepared(name).program
    hw = prog.hw
    for insn in prog.insns:
        assert isa.decode(isa.encode(insn, hw), hw) == insn
    assert read_program(prog.image, hw) == prog.insns
    assert len(prog.image) == prog.image_beats * hw.streams.beat_bytes


def test_encoding_rejects_what_does_not_fit(micro):
    hw = micro.hw
    big = 1 << hw.isa.field("k").bits
    with pytest.raises(ValueError, match="field k must fit"):
        isa.encode(dataclasses.replace(micro.program.by_label("blocks.0.qkv"), k=big), hw)
    with pytest.raises(ValueError, match="unknown opcode"):
        isa.decode(15, hw)


@pytest.mark.parametrize("word", [0, 3])  # magic, hash32
def test_a_foreign_image_is_refused(micro, word):
    image = bytearray(micro.program.image)
    image[4 * word] ^= 1
    with pytest.raises(ValueError, match="bad program"):
        read_program(bytes(image), micro.hw)


@pytest.mark.parametrize("label", ["blocks.0.qkv", "blocks.1.efc1.0", "blocks.1.gate"])
def test_interpreter_reads_weights_from_the_image(micro, label):
    """A changed weight in the image changes the tokens: nothing comes from the model."""
    prog, hw = micro.program, micro.hw
    image = bytearray(prog.image)
    at = prog.by_label(label).w * hw.streams.beat_bytes
    image[at : at + 8] = bytes(8 * [0x7F])
    px = load_image(EVAL_IMAGE, micro.spec)
    got = Interpreter(bytes(image), hw).run(patchify(px, micro.spec.model.patch), 0)
    assert not np.array_equal(got, golden_forward(micro.qmodel, px, 0).tokens)


def test_task_stride_selects_each_router(micro):
    """The program is the same for every task: task t's router sits at w + t * stride."""
    prog, qm = micro.program, micro.qmodel
    gate = prog.by_label("blocks.1.gate")
    assert gate.flags & isa.Flag.TASK and gate.stride > 0
    mem = ImageReader(prog.image, micro.hw)
    for t in range(len(micro.spec.tasks)):
        w = mem.weights(gate.w + t * gate.stride, gate.out, gate.k)
        m, s = mem.requant(gate.q + t * gate.stride, gate.out)
        assert np.array_equal(w, qm[f"blocks.1.gate.{t}.w"])
        assert np.array_equal(m, qm[f"blocks.1.gate.{t}.m"])
        assert np.array_equal(s, qm[f"blocks.1.gate.{t}.s"])


def test_compile_refuses_a_model_of_another_spec(micro):
    other = prepared("odd_moe")
    with pytest.raises(ValueError, match="different specs"):
        compile_program(micro.qmodel, other.hw)


@pytest.mark.parametrize("name", ["micro_moe", "m3vit"])
def test_cycle_model_accounts_for_every_cycle(name):
    prep = prepared(name)
    rep = estimate(prep.program)
    assert sum(rep.by_layer().values()) == rep.total
    assert sum(rep.by_unit().values()) + rep.frame_in == rep.total
    assert 0 < rep.mac_utilization <= rep.mac_busy_fraction <= 1
    assert rep.memory_floor >= prep.program.image_beats - _unused_beats(prep)


def _unused_beats(prep) -> int:
    """Beats of the image a frame need not read: the routers of the other tasks."""
    pairs = zip(prep.program.labels, prep.program.insns, strict=True)
    gates = [i for lab, i in pairs if lab.endswith("gate")]
    return sum(g.stride * (len(prep.spec.tasks) - 1) for g in gates)


def test_cycle_model_follows_the_measured_routing(micro):
    """Queue lengths measured by the interpreter set the expert jobs' rows: a frame whose
    tokens crowd onto few experts skips the others' weights entirely."""
    interp = Interpreter(micro.program.image, micro.hw)
    px = load_image(EVAL_IMAGE, micro.spec)
    interp.run(patchify(px, micro.spec.model.patch), 0)
    counts = interp.queue_counts
    assert len(counts) == 1 and sum(counts[0]) == micro.hw.arith.tokens * micro.hw.arith.top_k
    skewed = [[micro.hw.arith.tokens * micro.hw.arith.top_k] + [0] * (len(counts[0]) - 1)]
    measured, crowded = estimate(micro.program, counts), estimate(micro.program, skewed)
    assert crowded.memory_floor < measured.memory_floor or min(counts[0]) == 0
    idle = [c for c in crowded.costs if c.label.startswith("blocks.1.efc") and c.cycles == 0]
    assert len(idle) == 2 * (micro.hw.arith.experts - 1)


def test_a_wider_port_is_never_slower(micro):
    wide = prepare(spec_variant(micro.spec, hardware={"weight_port_bits": 512}))
    assert estimate(wide.program).total <= estimate(micro.program).total


def test_one_epilogue_enumeration_for_hls_and_rtl(micro):
    """Every epilogue kind of the program reaches the HLS as an emitted constant and the RTL
    as a compute-unit mode."""
    from edgevit_hw.hls.emit import render_sources
    from edgevit_hw.rtl.layouts import EPI_MODES

    params = render_sources(micro.program)["evh_params.h"]
    for epi in isa.Epi:
        assert f"EPI_{epi.name} = {int(epi)};" in params
    assert set(EPI_MODES) == set(isa.Epi)


@pytest.mark.parametrize("name", SMALL)
def test_every_weight_segment_reads_back(name):
    """Each matrix job's pre-tiled weights, biases and constants decode to the model's."""
    prog, qm = prepared(name).program, prepared(name).qmodel
    mem = ImageReader(prog.image, prog.hw)
    for label, insn in zip(prog.labels, prog.insns, strict=True):
        if insn.OP != isa.Op.MATMUL or "gate" in label:
            continue
        w = mem.weights(insn.w, insn.out, insn.k)
        name_w = {"embed.patch": "patch.w"}.get(label, label + ".w")
        if ".efc" in label:
            block, kind, e = label.rsplit(".", 2)[0], label.split(".")[2], int(label[-1])
            assert np.array_equal(w, qm[f"{block}.{kind}.w"][e])
        else:
            assert np.array_equal(w, qm[name_w])


def test_run_hls_cosimulates_only_frames_xsim_can_finish(micro):
    """micro_moe's project co-simulates its frame; m3vit's (millions of cycles) does not."""
    from edgevit_hw.hls.emit import COSIM_MAX_CYCLES, render_sources

    big = prepared("m3vit")
    assert estimate(micro.program).total <= COSIM_MAX_CYCLES < estimate(big.program).total
    assert "\ncosim_design" in render_sources(micro.program)["run_hls.tcl"]
    tcl = render_sources(big.program)["run_hls.tcl"]
    assert "\ncosim_design" not in tcl and "csim_design" in tcl
