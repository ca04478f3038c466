"""Quantization quality report: SQNR per layer, output cosine, accuracy, table and plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import prepare
from edgevit_hw.ml.quality import (
    measure,
    print_report,
    sqnr_db,
    trace_points,
    write_report,
)

SEED = 0


@pytest.fixture(scope="module")
def micro():
    prep = prepare(load_spec("micro_moe"))
    from edgevit_hw.ml.quality import eval_images

    return prep, eval_images(prep.spec)[:3]


def test_sqnr_formula():
    assert sqnr_db(100.0, 1.0) == pytest.approx(20.0)
    assert sqnr_db(1.0, 0.0) == math.inf


def test_trace_points_cover_every_block(micro):
    prep, _ = micro
    names = [n for n, _ in trace_points(prep.spec)]
    assert names[0] == "embed" and names[-1] == "norm"
    assert "blocks.0.hidden" in names and "blocks.1.hidden" not in names  # block 1 is MoE
    assert all(f"blocks.{i}.res2" in names for i in range(prep.spec.model.depth))


def test_measure_micro_moe(micro, tmp_path):
    prep, images = micro
    rep = measure(prep.qmodel, prep.weights, images)
    print(json.dumps(rep.blocks))
    assert all(15.0 < v < 80.0 for v in rep.layers.values()), rep.layers
    for lo, hi, res in rep.blocks.values():
        assert lo <= res <= hi
    assert 0.99 < rep.cosine_min <= rep.cosine_mean <= 1.0
    print_report(rep)
    png, js = write_report(rep, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(js.read_text())["layers"]["embed"] == pytest.approx(rep.layers["embed"])


def test_measure_detects_a_broken_layer(micro):
    """A corrupted weight must show up as an SQNR drop at its own layer and after."""
    prep, images = micro
    from dataclasses import replace

    tensors = dict(prep.qmodel.tensors)
    rng = np.random.default_rng(SEED)
    w = tensors["blocks.1.proj.w"]
    tensors["blocks.1.proj.w"] = rng.permutation(w.ravel()).reshape(w.shape).astype(w.dtype)
    broken = replace(prep.qmodel, tensors=tensors)
    good = measure(prep.qmodel, prep.weights, images[:1])
    bad = measure(broken, prep.weights, images[:1])
    assert bad.layers["blocks.0.res2"] == pytest.approx(good.layers["blocks.0.res2"])
    assert bad.layers["blocks.1.res1"] < good.layers["blocks.1.res1"] - 3.0
    assert bad.cosine_min < good.cosine_min


def test_accuracy_with_labels(micro):
    prep, images = micro

    class FirstFeatureSign:
        def predict(self, tokens):
            return (np.asarray(tokens)[..., 0, 0] > 0).astype(int)

    heads = [FirstFeatureSign()] * len(prep.spec.tasks)
    labels = np.array([1, 0, 1])
    rep = measure(prep.qmodel, prep.weights, images, labels, heads)
    assert set(rep.accuracy) == set(prep.spec.tasks)
    for f, q in rep.accuracy.values():
        assert 0.0 <= f <= 100.0 and 0.0 <= q <= 100.0


def test_report_names_its_calibration(micro, tmp_path):
    prep, images = micro
    rep = measure(prep.qmodel, prep.weights, images[:1])
    assert rep.calibration == prep.qmodel.calibration
    assert rep.calibration.startswith("5 scikit-image photographs")
    _, js = write_report(rep, tmp_path)
    assert json.loads(js.read_text())["calibration"] == rep.calibration


def test_cli_refuses_a_calibration_holding_an_evaluation_image(tmp_path, capsys):
    from skimage import data, io

    from edgevit_hw.ml.quality import main

    (tmp_path / "cal").mkdir()
    io.imsave(tmp_path / "cal" / "c.png", data.camera(), check_contrast=False)
    assert main(["--config", "micro_moe", "--calib", str(tmp_path / "cal")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "c.png is the evaluation image 'camera'" in err
