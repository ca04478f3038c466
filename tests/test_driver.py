"""The host driver over the golden and C-simulation backends: identical tokens, dropped frames
that never shift the others, typed one-line errors, and every kind of frame source."""

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
    MalformedFrame,
    SpecHashMismatch,
)
from edgevit_hw.driver.backends import CsimBackend, GoldenBackend
from edgevit_hw.ml.images import EVAL_IMAGE, fit_image, load_image, random_pixels
from edgevit_hw.program.streams import frame_beats


def _good_frames(prep, seed):
    return [load_image(EVAL_IMAGE, prep.spec)] + [random_pixels(prep.spec, seed + i)
                                                   for i in range(3)]  # fmt: skip


def _bad(prep, px, kind):
    beats = frame_beats(px, prep.spec.model.patch)
    if kind == "short":
        beats = beats[5:]
    else:
        beats = np.concatenate([beats[:-1], beats[-8:]])  # tlast 7 beats late
    return Beats(beats, kind)


@pytest.mark.csim
@pytest.mark.parametrize("name", ["micro_moe", "odd_moe"])
def test_golden_and_csim_agree_through_task_switch_and_bad_frames(name, seed):
    """4 frames, task switch after frame 2, a short and a long frame between good ones: every
    good frame's tokens equal the golden model's on both backends, in place."""
    print(f"pixel seed={seed}")
    prep = prepared(name)
    px = _good_frames(prep, seed)
    tasks = (0, len(prep.spec.tasks) - 1)
    for backend in ("golden", "csim"):
        acc = Accelerator.open(prep, backend=backend)
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
    with pytest.raises(InputError, match="needs the RTL top"):
        Accelerator.open(micro, backend="rtl")
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
