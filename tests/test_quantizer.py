"""Quantizer: constants within derived ranges, safe round trip, fidelity against float."""

import hashlib

import numpy as np
import pytest
import torch
from conftest import prepared

from edgevit_hw.core.derive import derive_arith
from edgevit_hw.core.errors import WeightsError
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.ml.fidelity import measure
from edgevit_hw.ml.images import EVAL_IMAGE, default_calibration, load_image
from edgevit_hw.ml.quantizer import calibrate
from edgevit_hw.ml.weights import build_reference


def test_constants_respect_derived_bounds(micro):
    ap = derive_arith(micro.spec)
    t = micro.qmodel.tensors
    for name, val in t.items():
        if name.endswith(".m"):
            assert val.min() >= 1 and val.max() < 1 << ap.mult_bits, name
        if name.endswith(".s"):
            assert val.min() >= 1 and val.max() <= 62, name
        if name.endswith(".w"):
            assert -(1 << (ap.weight_bits - 1)) <= val.min() and val.max() < 1 << (
                ap.weight_bits - 1
            )
    for name, lin in (("blocks.0.fc2.b", "fc2"), ("blocks.1.efc2.b", "expert_fc2")):
        assert np.abs(t[name]).max() <= ap.linears[lin].bias_max


def test_save_load_round_trip(micro, tmp_path):
    path = tmp_path / "q.safetensors"
    micro.qmodel.save(path)
    back = QuantModel.load(path)
    assert back.spec == micro.spec and back.scales == micro.qmodel.scales
    assert back.synthetic is True
    assert back.tensors.keys() == micro.qmodel.tensors.keys()
    for k, v in micro.qmodel.tensors.items():
        assert back.tensors[k].dtype == v.dtype and np.array_equal(back.tensors[k], v), k
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle


def test_load_rejects_foreign_file(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a quantized edgevit_hw model"):
        QuantModel.load(bad)


# The SHA-256 of micro_moe's quantized tensors (synthetic weights, default calibration).
# Changing it is a deliberate act: a change of the quantizer, the synthetic weights or the
# calibration set moves it, and the commit that updates it must say why.
MICRO_MOE_DIGEST = "e51b27ec97e85f06ffc0899615de48a814b954e8f8213aed5ccc3d0a97fef20e"


def qmodel_digest(qm: QuantModel) -> str:
    """SHA-256 over every tensor in name order: name, dtype, shape, then its bytes."""
    h = hashlib.sha256()
    for name in sorted(qm.tensors):
        t = np.ascontiguousarray(qm.tensors[name])
        h.update(f"{name}\0{t.dtype.str}\0{t.shape}\0".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def test_micro_moe_quantized_tensors_are_frozen(micro):
    assert micro.qmodel.synthetic
    got = qmodel_digest(micro.qmodel)
    assert got == MICRO_MOE_DIGEST, (
        f"micro_moe's quantized tensors changed (digest {got}); if deliberate, update"
        " MICRO_MOE_DIGEST and say why in the commit"
    )


def test_digest_sees_one_changed_value_dtype_and_name(micro):
    tensors = micro.qmodel.tensors
    base = qmodel_digest(micro.qmodel)
    name = "blocks.0.qkv.m"
    bumped = {**tensors, name: tensors[name] + 1}
    wider = {**tensors, name: tensors[name].astype(np.int32)}
    renamed = {("x" + k if k == name else k): v for k, v in tensors.items()}
    for changed in (bumped, wider, renamed):
        other = QuantModel(micro.qmodel.spec, changed)
        assert qmodel_digest(other) != base


@pytest.mark.parametrize("task", [0, 1])
def test_m3vit_fidelity_on_a_photograph(task):
    prep = prepared("m3vit")
    model = build_reference(prep.spec, prep.weights)
    fid = measure(prep.qmodel, model, load_image(EVAL_IMAGE, prep.spec), task)
    print(f"m3vit task {task}: cosine {fid.cosine:.5f}, block SQNR {fid.block_sqnr}")
    assert fid.cosine >= 0.99
    assert min(fid.block_sqnr) > 25.0


@pytest.mark.parametrize("name", ["micro_moe", "odd_moe"])
def test_calibration_ranges_cover_every_task(name):
    """Each activation range is the max over the calibration images AND every task (each
    task's router sends tokens to other experts): recomputed task by task from the float
    reference. odd_moe has tensors whose range only task 1 reaches."""
    prep = prepared(name)
    model = build_reference(prep.spec, prep.weights)
    images = default_calibration(prep.spec).pixels
    per_task = []
    with torch.no_grad():
        for task in range(len(prep.spec.tasks)):
            rec: dict = {}
            model(torch.from_numpy(images), task, rec)
            per_task.append({k: float(v.abs().max()) for k, v in rec.items()
                             if v.is_floating_point()})  # fmt: skip
    want = {k: max(p[k] for p in per_task) for k in per_task[0]}
    assert calibrate(model, images, len(prep.spec.tasks)) == want
    if name == "odd_moe":
        assert any(per_task[1][k] > per_task[0][k] for k in want), "task 1 reaches no new range"
