"""Host-side heads: classifier equals timm's own head; dense heads and the frame figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgevit_hw.apps.heads import ClassifierHead, DenseHead, fit_dense_heads, frame_figure
from edgevit_hw.core.spec import load_spec
from edgevit_hw.ml.importers import import_timm, load_timm
from edgevit_hw.ml.weights import build_reference

SEED = 0


@pytest.mark.parametrize("pool", ["token", "avg", "max", "avgmax"])
def test_classifier_head_matches_timm_head(pool):
    print(f"seed {SEED}")
    torch.manual_seed(SEED)
    model = load_timm().models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=6,
        global_pool=pool,
    ).eval()  # fmt: skip
    imp = import_timm(model, "h")
    head = ClassifierHead.from_tensors(imp.head, imp.head_info)
    ref = build_reference(imp.spec, imp.weights)
    x = torch.from_numpy(np.random.default_rng(SEED).integers(0, 256, (3, 3, 32, 32), np.uint8))
    with torch.no_grad():
        tokens = ref(x)
        want = model.forward_head(model.forward_features(ref.normalize(x))).numpy()
    got = head.logits(tokens.numpy())
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    assert (head.predict(tokens.numpy()) == want.argmax(-1)).all()


def test_dense_head_grid_and_upsampling():
    spec = load_spec("micro_moe")  # 4x4 grid of 8x8 patches, class token first
    d = spec.model.embed_dim
    rng = np.random.default_rng(SEED)
    tokens = rng.standard_normal((spec.model.tokens, d)).astype(np.float32)
    w = np.zeros((2, d), np.float32)
    w[0, 0], w[1, 1] = 1.0, -2.0
    head = DenseHead(w, np.array([0.5, 0.0], np.float32), spec.model.grid, (32, 32))
    out = head(tokens)
    assert out.shape == (2, 32, 32)
    # Constant tokens give constant maps; the map follows the row-major patch grid.
    const = DenseHead(w, np.zeros(2, np.float32), spec.model.grid, (32, 32))(
        np.ones_like(tokens))  # fmt: skip
    np.testing.assert_allclose(const[0], 1.0, atol=1e-6)
    grid = tokens[1:, 0].reshape(4, 4) + 0.5
    block_means = out[0].reshape(4, 8, 4, 8).mean(axis=(1, 3))
    assert np.corrcoef(block_means.ravel(), grid.ravel())[0, 1] > 0.9


def test_fit_dense_heads_and_figure(tmp_path):
    spec = load_spec("m3vit")
    rng = np.random.default_rng(SEED)
    n, d = spec.model.tokens, spec.model.embed_dim
    tokens = rng.standard_normal((n, d)).astype(np.float32)
    tokens[1 : 1 + n // 2] += 3.0  # two clear clusters
    seg_head, depth_head = fit_dense_heads(spec, tokens, tokens, classes=4, seed=SEED)
    seg, depth = seg_head(tokens).argmax(0), depth_head(tokens)[0]
    assert seg.shape == depth.shape == (128, 256)
    assert len(np.unique(seg)) >= 2
    assert -1e-4 <= depth.min() and depth.max() <= 1 + 1e-4
    img = rng.integers(0, 256, (3, 128, 256), np.uint8)
    path = frame_figure(img, seg, depth, tmp_path / "frame.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_golden_frame_micro_moe(tmp_path):
    from edgevit_hw.apps.heads import golden_frame
    from edgevit_hw.flow import prepare
    from edgevit_hw.ml.images import load_image

    prep = prepare(load_spec("micro_moe"))
    path = golden_frame(prep, load_image("astronaut", prep.spec), tmp_path, classes=3)
    assert path.name == "frame.png" and path.read_bytes()[:4] == b"\x89PNG"
