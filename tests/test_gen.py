"""The generator CLI: files written (spec, model, vectors, HLS, RTL, README), ``--calib`` and
``--image`` honoured and recorded, and each bad input exits 2 with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import SYNTHETIC_SEED, prepare
from edgevit_hw.gen import main
from edgevit_hw.ml.images import load_image
from edgevit_hw.ml.quantizer import quantize
from edgevit_hw.ml.weights import synthetic_weights


def test_gen_writes_spec_params_model_and_vectors(tmp_path, capsys):
    assert main(["--config", "micro_moe", "--out", str(tmp_path)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    spec = load_spec("micro_moe")
    first = (tmp_path / "spec.yaml").read_text().splitlines()[0]
    assert first.startswith("# generated from spec ") and first.endswith("do not edit")
    assert yaml.safe_load((tmp_path / "spec.yaml").read_text()) == spec.to_dict()
    derived = json.loads((tmp_path / "derived.json").read_text())
    assert derived["spec_hash"] == spec.spec_hash() and derived["arith"]["tokens"] == 17
    qm = QuantModel.load(tmp_path / "model.safetensors")
    px = np.load(tmp_path / "vectors" / "input.npy", allow_pickle=False)
    for t, task in enumerate(spec.tasks):
        want = golden_forward(qm, px, t).tokens
        assert np.array_equal(np.load(tmp_path / "vectors" / f"golden_{task}.npy"), want)


def _spec_file(tmp_path, **changes):
    data = load_spec("micro_moe").to_dict()
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


BAD_SPECS = [
    ({"model": {"colour": 3}}, "model.colour: unknown key"),
    ({"model": {"embed_dim": "wide"}}, "model.embed_dim: Input should be a valid integer"),
    ({"model": {"heads": 3}}, "model.heads must divide model.embed_dim (64), not 3"),
    ({"moe": {"top_k": 9}}, "moe.top_k must be at most moe.experts (4), not 9"),
    ({"model": {"patch": 5}}, "model.image.height (32) must be a multiple of model.patch (5)"),
    ({"quant": {"weight_bits": 3}}, "quant.weight_bits: Input should be greater than or equal"),
]


@pytest.mark.parametrize("change,message", BAD_SPECS)
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, change, message):
    assert main(["--config", _spec_file(tmp_path, **change), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert not (tmp_path / "o").exists()


def test_weights_with_wrong_shapes_exit_2(tmp_path, capsys):
    w = synthetic_weights(load_spec("micro_moe"))
    w["blocks.0.attn.qkv.weight"] = np.zeros((10, 64), np.float32)
    path = tmp_path / "w.npz"
    np.savez(path, **w)
    assert main(["--config", "micro_moe", "--weights", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "blocks.0.attn.qkv.weight must have shape [192, 64] for spec micro_moe, not [10, 64]" in err
    )


def test_weights_file_loads_with_prefixes(tmp_path):
    from safetensors.numpy import save_file

    spec = load_spec("micro_moe")
    w = synthetic_weights(spec, seed=3)
    path = tmp_path / "ckpt.safetensors"
    save_file({f"module.backbone.{k}": v for k, v in w.items()}, str(path))
    assert (
        main(["--config", "micro_moe", "--weights", str(path), "--out", str(tmp_path / "o")]) == 0
    )
    assert QuantModel.load(tmp_path / "o" / "model.safetensors").synthetic is False


def test_real_entry_point_no_traceback(tmp_path):
    bad = _spec_file(tmp_path, moe={"top_k": 9})
    proc = subprocess.run(
        [sys.executable, "-m", "edgevit_hw.gen", "--config", bad, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: moe.top_k must be at most moe.experts (4), not 9"
    ]


# ------------------------------------------------------------- inputs of issue 8 ----


def _png(path, name: str):
    """A scikit-image photograph saved losslessly at its own size."""
    from skimage import data, io

    io.imsave(path, getattr(data, name)(), check_contrast=False)
    return path


def _one_line(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err


def test_out_pointing_at_a_file_exits_2(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep")
    assert main(["--config", "micro_moe", "--out", str(taken)]) == 2
    _one_line(capsys, f"--out must be a folder, not the existing file '{taken}'")
    assert main(["--config", "micro_moe", "--out", str(taken / "sub")]) == 2
    _one_line(capsys, f"--out '{taken / 'sub'}' must be a folder, but '{taken}' is a file")
    assert taken.read_text() == "keep"


BAD_INPUTS = [
    (["--calib", "x.txt"], "--calib must be a folder of images or an .npz of pixels, not 'x.txt'"),
    (["--calib", "missing_dir"], "--calib must be a folder of images or an .npz of pixels"),
    (["--image", "nosuch"], "--image must be an image file or a scikit-image photograph"),
    (["--image", "lfw_subset"], "--image must be an image file or a scikit-image photograph"),
    (["--bogus"], "python -m edgevit_hw.gen: unrecognized arguments: --bogus"),
    (["--config", "nosuch"], "--config must be a preset"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, args, message):
    argv = ["--config", "micro_moe", "--out", str(tmp_path / "o"), *args]
    assert main(argv) == 2
    _one_line(capsys, message)
    assert not (tmp_path / "o").exists()


def test_calib_folder_problems_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--config", "micro_moe", "--calib", str(empty), "--out", str(tmp_path)]) == 2
    _one_line(capsys, f"--calib folder '{empty}' holds no images")
    (empty / "broken.png").write_text("not a png")
    assert main(["--config", "micro_moe", "--calib", str(empty), "--out", str(tmp_path)]) == 2
    _one_line(capsys, f"--calib: cannot read image '{empty / 'broken.png'}'")


def test_calib_holding_the_evaluation_image_is_refused(tmp_path, capsys):
    folder = tmp_path / "calib"
    folder.mkdir()
    _png(folder / "a.png", "coffee")
    _png(folder / "b.png", "astronaut")
    assert main(["--config", "micro_moe", "--calib", str(folder), "--out", str(tmp_path)]) == 2
    _one_line(capsys, f"calibration set 2 images in {folder}: b.png is the evaluation image")


def test_calib_folder_is_used_and_recorded(tmp_path, capsys):
    folder = tmp_path / "calib"
    folder.mkdir()
    _png(folder / "1.png", "camera")
    _png(folder / "2.png", "coins")
    out = tmp_path / "o"
    assert main(["--config", "micro_moe", "--calib", str(folder), "--out", str(out)]) == 0
    label = f"2 images in {folder}"
    assert f"calibration: {label};" in capsys.readouterr().out
    qm = QuantModel.load(out / "model.safetensors")
    assert qm.calibration == label
    assert label in (out / "README.md").read_text()
    spec = load_spec("micro_moe")
    pixels = np.stack([load_image(n, spec) for n in ("camera", "coins")])
    want = quantize(spec, synthetic_weights(spec, SYNTHETIC_SEED), pixels, True)
    assert want.tensors.keys() == qm.tensors.keys()
    assert all(np.array_equal(want.tensors[k], qm.tensors[k]) for k in want.tensors)


def test_calib_npz_at_input_size_is_used_as_is(tmp_path):
    spec = load_spec("micro_moe")
    pixels = np.stack([load_image(n, spec) for n in ("camera", "moon", "page")])
    np.savez(tmp_path / "cal.npz", pixels=pixels)
    prep = prepare(spec, calib=str(tmp_path / "cal.npz"))
    want = quantize(spec, prep.weights, pixels, True)
    assert all(np.array_equal(want.tensors[k], prep.qmodel.tensors[k]) for k in want.tensors)
    assert prep.qmodel.calibration == f"3 images in {tmp_path / 'cal.npz'}"


def test_image_chooses_the_golden_frame(tmp_path):
    spec = load_spec("micro_moe")
    for image in ("camera", str(_png(tmp_path / "cam.png", "camera"))):
        out = tmp_path / "o"
        assert main(["--config", "micro_moe", "--image", image, "--out", str(out)]) == 0
        px = np.load(out / "vectors" / "input.npy", allow_pickle=False)
        assert np.array_equal(px, load_image("camera", spec))
        qm = QuantModel.load(out / "model.safetensors")
        for t, task in enumerate(spec.tasks):
            gold = np.load(out / "vectors" / f"golden_{task}.npy", allow_pickle=False)
            assert np.array_equal(gold, golden_forward(qm, px, t).tokens)
        assert f"golden-vector frame: {image}" in (out / "README.md").read_text()


def test_readme_describes_every_file_and_rtl_holds_every_unit(tmp_path):
    from edgevit_hw.rtl.export import UNIT_CLASSES

    from edgevit_hw.readme import UNKNOWN, describe

    assert main(["--config", "micro_moe", "--out", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    for f in (p for p in tmp_path.rglob("*") if p.is_file()):
        parts = f.relative_to(tmp_path).parts
        row = "/".join(parts[:2]) + "/" if len(parts) > 2 else "/".join(parts)
        assert f"| `{row}` | {describe(row)}" in readme, row
        assert describe(row) != UNKNOWN, f"{row} has no description in edgevit_hw.readme"
    for unit, _, _ in UNIT_CLASSES:
        first = (tmp_path / "rtl" / f"evh_{unit}.v").read_text().splitlines()[0]
        assert first.startswith("// generated from spec ") and first.endswith("do not edit")


def test_entry_point_bad_input_no_traceback(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    for args in (["--out", str(taken)], ["--calib", "x.txt"], ["--image", "nosuch"]):
        proc = subprocess.run(
            [sys.executable, "-m", "edgevit_hw.gen", "--config", "micro_moe", *args],
            capture_output=True, text=True, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option,name,message", [
    ("--weights", "w.safetensors", "w.safetensors: cannot read weights"),
    ("--weights", "w.npz", "w.npz: cannot read weights"),
    ("--calib", "c.npz", "--calib: cannot read"),
])  # fmt: skip
def test_corrupt_files_are_one_line(tmp_path, capsys, option, name, message):
    (tmp_path / name).write_bytes(b"not what it claims to be")
    argv = ["--config", "micro_moe", option, str(tmp_path / name), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
