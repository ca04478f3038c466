"""``python -m edgevit_hw.run``: per-frame lines, tokens bit-exact, pictures, one-line errors,
on the golden backend and the RTL simulation."""

import numpy as np
import pytest
from conftest import prepared

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.ml.images import fit_image
from edgevit_hw.run import main


def _images(folder, seed):
    from skimage.io import imsave

    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(2)]
    for i, img in enumerate(imgs):
        imsave(folder / f"img{i}.png", img, check_contrast=False)
    return imgs


@pytest.mark.parametrize("backend", ["golden", pytest.param("rtl", marks=pytest.mark.rtl)])
def test_run_writes_bit_exact_tokens_and_pictures(backend, tmp_path, capsys, seed):
    print(f"seed={seed}")
    micro = prepared("micro_moe")
    (tmp_path / "in").mkdir()
    imgs = _images(tmp_path / "in", seed)
    out = tmp_path / "out"
    assert main(["--config", "micro_moe", "--backend", backend, "--task", "depth",
                 "--images", str(tmp_path / "in"), "--out", str(out)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert sum(": ok" in line for line in lines) == 2
    assert sum(" cycles = " in line for line in lines) == (2 if backend == "rtl" else 0)
    with np.load(out / "tokens.npz") as z:
        for i, img in enumerate(imgs):
            gold = golden_forward(micro.qmodel, fit_image(img, micro.spec), 1).tokens
            assert np.array_equal(z[f"{i:04d}"], gold)
    assert len(list(out.glob("*.png"))) == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["--backend", "fpga"], "backend must be one of"),
        (["--task", "normals"], "task must be an index"),
        (["--images", "/no/such"], "neither a file nor a folder"),
    ],
)
def test_run_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    base = {"--config": "micro_moe", "--images": str(tmp_path)}
    (tmp_path / "x.png").write_bytes(b"")
    argv = [x for k, v in {**base, **dict(zip(args[::2], args[1::2], strict=True))}.items()
            for x in (k, v)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.rtl
@pytest.mark.parametrize(
    "images,task,message",
    [
        ("/no/such", "0", "neither a file nor a folder"),
        ("wrong.npy", "0", "an array must be a frame"),
        ("ok.npy", "normals", "task must be an index"),
    ],
)
def test_run_rtl_bad_input_is_one_line_and_exit_2(images, task, message, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((5, 32, 33), np.uint8))
    np.save(tmp_path / "ok.npy", np.zeros((32, 32, 3), np.uint8))
    argv = ["--config", "micro_moe", "--backend", "rtl", "--task", task,
            "--images", str(tmp_path / images)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
