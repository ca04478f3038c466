"""The host driver over the golden, C-simulation and RTL-simulation backends: identical tokens,
dropped frames that never shift the others, typed one-line errors, frames that stream in
while the previous one computes, and every kind of frame source."""

from itertools import pairwise

import numpy as np
import pytest
from conftest import prepared

from edgevit_hw.core.errors import InputError
from edgevit_hw.core.golden import golden_forward
from edgevit_hw.driver import (
    Accelerator,
    Artifacts,
    BadTask,
    Beats,
    DeviceTimeout,
    Frame,
    MalformedFrame,
    SpecHashMismatch,
)
from edgevit_hw.driver.backends import CsimBackend, GoldenBackend
from edgevit_hw.ml.images import EVAL_IMAGE, fit_image, load_image, random_pixels
from edgevit_hw.program.streams import frame_beats, pixel_beats


def _good_frames(prep, seed):
    return [load_image(EVAL_IMAGE, prep.spec)] + [random_pixels(prep.spec, seed + i)
                                                   for i in range(3)]  # fmt: skip


def _bad(prep, px, kind):
    beats = frame_beats(px, prep.hw)
    if kind == "short":
        beats = beats[5:]
    else:
        beats = np.concatenate([beats[:-1], beats[-8:]])  # tlast 7 beats late
    return Beats(beats, kind)


@pytest.mark.csim
@pytest.mark.rtl
@pytest.mark.parametrize("name", ["micro_moe", "odd_moe"])
def test_golden_csim_and_rtl_agree_through_task_switch_and_bad_frames(name, seed):
    """4 frames, task switch after frame 2, a short and a long frame between good ones: every
    good frame's tokens equal the golden model's on every backend, in place."""
    print(f"pixel seed={seed}")
    prep = prepared(name)
    px = _good_frames(prep, seed)
    tasks = (0, len(prep.spec.tasks) - 1)
    for backend in ("golden", "csim", "rtl"):
        with Accelerator.open(prep, backend=backend) as acc:
            first = acc.run([px[0], _bad(prep, px[0], "short"), px[1]], task=tasks[0])
            second = acc.run([px[2], _bad(prep, px[2], "long"), px[3]], task=tasks[1])
        for results, frames, task in ((first, px[:2], tasks[0]), (second, px[2:], tasks[1])):
            assert [r.ok for r in results] == [True, False, True], backend
            assert isinstance(results[1].error, MalformedFrame) and results[1].tokens is None
            for r, frame in zip((results[0], results[2]), frames, strict=True):
                gold = golden_forward(prep.qmodel, frame, task).tokens
                assert np.array_equal(r.tokens, gold), (backend, name, r.index)


@pytest.mark.csim
def test_csim_reports_cycles_and_fps(micro):
    acc = Accelerator.open(micro, backend="csim")
    (res,) = acc.run(EVAL_IMAGE, task="depth", dequantize=True)
    assert res.ok and res.cycles > 0 and acc.fps(res) > 0
    assert np.array_equal(res.floats, micro.qmodel.dequantize(res.tokens))


@pytest.mark.csim
def test_spec_hash_mismatch_is_refused_naming_both(micro):
    other = prepared("odd_moe")
    acc = Accelerator(Artifacts(micro.qmodel, micro.hw), CsimBackend(other.qmodel, other.hw))
    with pytest.raises(SpecHashMismatch) as err:
        acc.check_spec_id()
    assert f"0x{other.hw.hash32:08x}" in str(err.value)
    assert f"0x{micro.hw.hash32:08x}" in str(err.value)


@pytest.mark.csim
def test_timeout_raises_with_the_status(micro):
    acc = Accelerator(Artifacts.load(micro), CsimBackend(micro.qmodel, micro.hw, timeout=1e-4))
    with pytest.raises(DeviceTimeout, match="did not finish within"):
        acc.run(EVAL_IMAGE)


def test_bad_task_and_backend_are_refused(micro):
    acc = Accelerator.open(micro)
    for task in (2, -1, "normals"):
        with pytest.raises(BadTask, match="task must be an index 0..1"):
            acc.run(EVAL_IMAGE, task=task)
    with pytest.raises(InputError, match="backend must be one of"):
        Accelerator.open(micro, backend="fpga")


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((3, 32, 32), np.float32), "must be uint8 pixels, not float32"),
        (np.zeros((2, 2, 2, 2, 2), np.uint8), "an array must be a frame"),
        (np.zeros((5, 32, 33), np.uint8), "an array must be a frame"),
        ("no/such/file.png", "is neither a file nor a folder"),
    ],
)
def test_wrong_frames_are_refused_with_one_line(micro, bad, message):
    with pytest.raises(InputError, match=message) as err:
        Accelerator.open(micro).run(bad)
    assert "\n" not in str(err.value)


def test_every_frame_source_gives_the_same_tokens(micro, tmp_path, seed):
    """Folder of images, .npy stack, .npz, an HWC image of another size: each fitted by the
    one policy, then the same tokens as the golden model on the fitted frame."""
    from skimage.io import imsave

    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    for i, img in enumerate(images):
        imsave(tmp_path / f"f{i}.png", img, check_contrast=False)
    fitted = np.stack([fit_image(img, micro.spec) for img in images])
    np.save(tmp_path / "stack.npy", fitted)
    np.savez(tmp_path / "stack.npz", a=fitted)
    acc = Accelerator.open(micro)
    want = [golden_forward(micro.qmodel, f, 0).tokens for f in fitted]
    for source in (tmp_path, tmp_path / "stack.npy", tmp_path / "stack.npz", images):
        got = [r.tokens for r in acc.run(source)]
        assert len(got) == 2 and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_stream_is_lazy_and_in_order(micro, seed):
    """stream() takes frames one by one from a generator and yields each result at once."""
    taken = []

    def source():
        for i in range(3):
            taken.append(i)
            yield random_pixels(micro.spec, seed + i)

    acc = Accelerator(Artifacts.load(micro), GoldenBackend(micro.qmodel, micro.hw))
    for i, res in enumerate(acc.stream(source(), task=1)):
        assert taken == list(range(i + 1)) and res.index == i and res.ok


def test_a_gen_folder_opens(micro, tmp_path):
    micro.qmodel.save(tmp_path / "model.safetensors")
    acc = Accelerator.open(tmp_path)
    px = random_pixels(micro.spec, 1)
    assert np.array_equal(acc.run(px)[0].tokens, golden_forward(micro.qmodel, px, 0).tokens)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="not a gen output folder"):
        Accelerator.open(empty)


def test_pynq_backend_imports_pynq_only_when_chosen(micro, monkeypatch):
    import sys

    from edgevit_hw.driver import TransportError

    Accelerator.open(micro, backend="golden").run(EVAL_IMAGE)
    assert "pynq" not in sys.modules
    monkeypatch.setitem(sys.modules, "pynq", None)  # as on a host without pynq (import fails)
    with pytest.raises(TransportError, match="needs the pynq package"):
        Accelerator.open(micro, backend="pynq")


# ------------------------------------------------------------------ rtl backend ----


def _rtl(prep, **options) -> Accelerator:
    return Accelerator.open(prep, backend="rtl", **options)


@pytest.mark.rtl
def test_rtl_refuses_another_specs_device():
    """The device (odd_moe's top) reports its SPEC_ID; the artifacts are micro_moe's."""
    from edgevit_hw.sim.transport import RtlTransport

    from edgevit_hw.driver.protocol import RegisterProtocol

    micro, other = prepared("micro_moe"), prepared("odd_moe")
    device = RegisterProtocol(RtlTransport(other.hw), micro.qmodel, micro.hw)
    acc = Accelerator(Artifacts(micro.qmodel, micro.hw), device)
    with pytest.raises(SpecHashMismatch) as err:
        acc.connect()
    msg = str(err.value)
    assert f"0x{other.hw.hash32:08x}" in msg and f"0x{micro.hw.hash32:08x}" in msg
    assert "rtl" in msg and "\n" not in msg
    assert device.t.proc is None, "a refused device is closed"


@pytest.mark.rtl
def test_rtl_errors_are_typed_and_never_shift_frames(micro, seed):
    """A bad task id reaches the device (STATUS.bad_task drops the frame), a DRAM read error
    drops the frames that read the faulty beat (STATUS.axi_read_error), a wrong image shape
    is refused before anything is sent; the good frames after each are unchanged."""
    from edgevit_hw.driver.errors import AxiReadError
    from edgevit_hw.program.isa import Op

    print(f"pixel seed={seed}")
    px = [random_pixels(micro.spec, seed + i) for i in range(2)]
    gold = [golden_forward(micro.qmodel, p, 1).tokens for p in px]
    with _rtl(micro) as acc:
        with pytest.raises(BadTask, match="task must be an index"):
            acc.run(px[0], task=2)  # the host refuses it first
        (bad,) = list(acc.backend.results(iter([Frame(px[0], "f0")]), 2))
        assert isinstance(bad.error, BadTask) and "bad_task" in str(bad.error)
        with pytest.raises(InputError, match="an array must be a frame"):
            acc.run(np.zeros((5, 32, 33), np.uint8))
        insns = micro.program.insns
        mm = next(i for i in insns if i.OP == Op.MATMUL)
        acc.backend.t.inject_read_error(acc.backend.base + mm.w * micro.hw.streams.beat_bytes)
        faulty = acc.run(px[0], task=1)[0]
        acc.backend.t.inject_read_error(None)
        assert isinstance(faulty.error, AxiReadError) and faulty.tokens is None
        assert "axi_read_error" in str(faulty.error) and "\n" not in str(faulty.error)
        res = acc.run(px, task=1)
    assert all(np.array_equal(r.tokens, g) for r, g in zip(res, gold, strict=True))


@pytest.mark.rtl
def test_rtl_timeout_names_status_and_ctrl(micro):
    with _rtl(micro, max_cycles=2_000) as acc:
        with pytest.raises(DeviceTimeout) as err:
            acc.run(EVAL_IMAGE)
        msg = str(err.value)
        assert "within 2,000 cycles" in msg and "STATUS 0x0" in msg and "CTRL 0x" in msg, msg
        assert "\n" not in msg
        with pytest.raises(DeviceTimeout, match="unknown state"):
            acc.run(EVAL_IMAGE)


@pytest.mark.rtl
def test_rtl_streams_frames_while_the_previous_one_computes(micro, seed):
    """4 frames back to back: frame n + 1's pixels are all in before frame n's last token, the
    cycles between last tokens are a lone run of the same frame less its pixel beats (the input
    is hidden and no cycle is lost between programs; frames differ in cycles since their
    expert queues do), and every frame is bit-exact."""
    print(f"pixel seed={seed}")
    px = [random_pixels(micro.spec, seed + i) for i in range(4)]
    with _rtl(micro) as acc:
        res = list(acc.stream(iter(px), task=0))
        alone = [acc.run(p)[0] for p in px]
    for r, p in zip(res, px, strict=True):
        assert np.array_equal(r.tokens, golden_forward(micro.qmodel, p, 0).tokens), r.index
    gaps = [b.tokens_out - a.tokens_out for a, b in pairwise(res)]
    print(f"lone frames {[f.cycles for f in alone]} cycles; between streamed frames: {gaps}")
    for a, b in pairwise(res):
        assert b.pixels_in[1] < a.tokens_out, f"frame {b.index} waited for frame {a.index}"
    beats = pixel_beats(micro.hw)
    for f in alone:
        assert f.cycles == f.tokens_out - f.pixels_in[0] + 1
        assert f.pixels_in[1] - f.pixels_in[0] + 1 == beats
    for gap, lone in zip(gaps, alone[1:], strict=True):
        assert gap <= lone.cycles - beats, (gap, lone.cycles)
