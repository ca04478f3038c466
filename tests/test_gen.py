"""The generator CLI: files written, and each bad input exits 2 with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from edgevit_hw.core.golden import golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import load_spec
from edgevit_hw.gen import main
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
