"""Importers: timm ViT/DeiT and M³ViT state_dicts -> spec + float weights; refusals; CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgevit_hw.core.errors import EdgeVitError
from edgevit_hw.core.spec import load_spec, spec_from_dict
from edgevit_hw.ml.importers import UnsupportedModel, import_m3vit, import_timm, load_timm
from edgevit_hw.ml.weights import build_reference, load_weights, synthetic_weights

SEED = 0
F32 = float(np.finfo(np.float32).eps)

# Two small timm configurations beside deit_tiny: LayerScale folded, no qkv bias, average
# pooling with fc_norm, no_embed_class; and no class token at all.
TIMM_CONFIGS = {
    "deit_tiny": ("deit_tiny_patch16_224", {}),
    "ls_noqkvbias_avg": (
        "vit_tiny_patch16_224",
        dict(
            img_size=64,
            patch_size=8,
            embed_dim=96,
            depth=3,
            num_heads=3,
            qkv_bias=False,
            init_values=0.1,
            global_pool="avg",
            no_embed_class=True,
            num_classes=7,
        ),
    ),  # fmt: skip
    "no_class_token": (
        "vit_tiny_patch16_224",
        dict(
            img_size=32,
            patch_size=8,
            embed_dim=64,
            depth=2,
            num_heads=2,
            class_token=False,
            global_pool="avg",
            num_classes=5,
        ),
    ),  # fmt: skip
}


def timm_model(key: str):
    name, kwargs = TIMM_CONFIGS[key]
    print(f"timm {name} {kwargs}, seed {SEED}")
    torch.manual_seed(SEED)
    return load_timm().create_model(name, pretrained=False, **kwargs).eval()


def pixels(spec, n: int, seed: int = SEED) -> torch.Tensor:
    im = spec.model.image
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, im.channels, im.height, im.width), np.uint8))


@pytest.mark.parametrize("key", list(TIMM_CONFIGS))
def test_timm_reference_reproduces_forward_features(key):
    model = timm_model(key)
    imp = import_timm(model, "t")
    ref = build_reference(imp.spec, imp.weights)
    x = pixels(imp.spec, 2)
    with torch.no_grad():
        ours, theirs = ref(x), model.forward_features(ref.normalize(x))
    assert ours.shape == theirs.shape
    scale = float(theirs.abs().max())
    diff = float((ours - theirs).abs().max())
    print(f"{key}: max abs diff {diff:.3g} (max |out| {scale:.3g})")
    assert diff <= 64 * F32 * max(scale, 1.0)


def test_timm_spec_fields():
    imp = import_timm(timm_model("ls_noqkvbias_avg"), "t")
    m = imp.spec.model
    assert (m.image.height, m.patch, m.embed_dim, m.depth, m.heads) == (64, 8, 96, 3, 3)
    assert m.qkv_bias is False and m.final_norm is False and m.class_token is True
    assert imp.head_info["pool"] == "avg" and "head.norm.weight" in imp.head
    deit = import_timm(timm_model("deit_tiny"), "deit").spec
    want = load_spec("deit_tiny").model
    got = deit.model
    assert (got.image, got.patch, got.embed_dim, got.depth, got.heads, got.mlp_hidden) == (
        want.image, want.patch, want.embed_dim, want.depth, want.heads, want.mlp_hidden
    )  # fmt: skip


def test_deit_tiny_golden_cosine_on_photographs():
    """Golden tokens (dequantized) against timm's own float forward_features: >= 0.99."""
    from edgevit_hw.apps.heads import dequantize
    from edgevit_hw.core.golden import golden_forward
    from edgevit_hw.ml.images import calibration_set, load_image
    from edgevit_hw.ml.quantizer import quantize

    model = timm_model("deit_tiny")
    imp = import_timm(model, "deit_tiny_timm")
    qm = quantize(imp.spec, imp.weights, calibration_set(imp.spec), True, "timm deit_tiny")
    ref = build_reference(imp.spec, imp.weights)
    for name in ("astronaut", "camera", "coins"):
        img = load_image(name, imp.spec)
        with torch.no_grad():
            want = model.forward_features(ref.normalize(torch.from_numpy(img[None])))[0].numpy()
        got = dequantize(golden_forward(qm, img).tokens, qm)
        cos = float((want * got).sum() / np.linalg.norm(want) / np.linalg.norm(got))
        print(f"{name}: cosine {cos:.5f}")
        assert cos >= 0.99


def _vit(**kw):
    vt = load_timm().models.vision_transformer
    base = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3)
    return vt.VisionTransformer(**{**base, **kw})


def _refusals():
    timm = load_timm()
    relpos = timm.models.vision_transformer_relpos.VisionTransformerRelPos
    small = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3)
    return {
        "distillation token": lambda: timm.create_model("deit_tiny_distilled_patch16_224"),
        "relative position bias": lambda: relpos(**small),
        "norm layer RmsNorm": lambda: _vit(norm_layer=timm.layers.RmsNorm),
        "qk normalization": lambda: _vit(qk_norm=True),
        "register tokens": lambda: _vit(reg_tokens=2),
        "attention pooling head": lambda: _vit(global_pool="map"),
        "gated MLP": lambda: _vit(mlp_layer=timm.layers.SwiGLUPacked, mlp_ratio=2.0),
        "only exact GELU": lambda: _vit(act_layer=torch.nn.ReLU),
        "norm before the blocks": lambda: _vit(pre_norm=True),
    }


@pytest.mark.parametrize("feature", list(_refusals()))
def test_timm_refusals_name_the_feature(feature):
    model = _refusals()[feature]()
    with pytest.raises(UnsupportedModel) as err:
        import_timm(model)
    msg = str(err.value)
    print(msg)
    assert feature in msg and "\n" not in msg


def test_cli_timm_success_and_refusal(tmp_path):
    env_cmd = [sys.executable, "-m", "edgevit_hw.ml.importers", "timm"]
    bad = subprocess.run(env_cmd + ["deit_tiny_distilled_patch16_224", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "distillation token" in bad.stderr
    ok = subprocess.run(env_cmd + ["vit_tiny_patch16_224", "--out", str(tmp_path)],
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    spec = load_spec(str(tmp_path / "vit_tiny_patch16_224.yaml"))
    w = load_weights(spec, tmp_path / "vit_tiny_patch16_224.safetensors")
    assert w["blocks.11.mlp.fc2.weight"].shape == (192, 768)


# ------------------------------------------------------------------------------ M³ViT ----


def m3vit_like_spec(tasks=("semseg", "depth")):
    d = load_spec("micro_moe").to_dict()
    d["model"]["final_norm"] = False
    d["tasks"] = list(tasks)
    return spec_from_dict(d)


def m3vit_state(spec, prefix="module.backbone.") -> dict:
    """An M³ViT-style checkpoint: prefixed backbone keys, noisy-gate w_noise tensors and a
    decoder outside the backbone."""
    w = synthetic_weights(spec, SEED)
    state = {prefix + k: torch.from_numpy(v) for k, v in w.items()}
    for i in spec.moe.blocks:
        for t in range(len(spec.tasks)):
            state[f"{prefix}blocks.{i}.mlp.gate.{t}.w_noise"] = torch.zeros(64, 4)
    state["module.decoders.semseg.conv.weight"] = torch.zeros(3, 3)
    return state, w


def test_m3vit_import_round_trip():
    spec = m3vit_like_spec()
    state, w = m3vit_state(spec)
    imp = import_m3vit(state, name=spec.name, heads=spec.model.heads, image=(3, 32, 32))
    assert imp.spec.model == spec.model and imp.spec.moe == spec.moe
    assert imp.spec.tasks == ("semseg", "depth")
    assert set(imp.weights) == set(w)
    for k in w:
        np.testing.assert_array_equal(imp.weights[k], w[k])
    ref_a, ref_b = build_reference(spec, w), build_reference(imp.spec, imp.weights)
    x = pixels(spec, 2)
    with torch.no_grad():
        for t in (0, 1):
            assert torch.equal(ref_a(x, t), ref_b(x, t))


def test_m3vit_single_gate_and_default_image():
    spec = m3vit_like_spec(tasks=("task0",))
    state, _ = m3vit_state(spec, prefix="backbone.")
    state = {k.replace("mlp.gate.0.", "mlp.gate."): v for k, v in state.items()}
    imp = import_m3vit(state, heads=2)
    assert imp.spec.tasks == ("task0",) and imp.spec.model.image.height == 32
    assert "blocks.1.mlp.gate.0.w_gate" in imp.weights


@pytest.mark.parametrize(
    "edit, feature",
    [
        (lambda s: s.update(dist_token=torch.zeros(1, 1, 64)), "distillation token"),
        (
            lambda s: s.update({"blocks.0.attn.relative_position_bias_table": torch.zeros(9, 2)}),
            "relative position bias",
        ),  # fmt: skip
        (lambda s: s.update({"blocks.0.norm1.running_mean": torch.zeros(64)}), "BatchNorm"),
        (
            lambda s: s.update({"blocks.1.mlp.gate.0.w_gate": torch.zeros(66, 4)}),
            "task-conditioned gate input",
        ),  # fmt: skip
        (
            lambda s: s.update({"blocks.0.mlp.norm.weight": torch.zeros(64)}),
            "unknown block tensor blocks.0.mlp.norm.weight",
        ),  # fmt: skip
    ],
)
def test_m3vit_refusals(edit, feature):
    spec = m3vit_like_spec()
    state, _ = m3vit_state(spec, prefix="")
    edit(state)
    with pytest.raises(UnsupportedModel, match=feature):
        import_m3vit(state, heads=2)


def test_m3vit_cli(tmp_path):
    spec = m3vit_like_spec()
    state, w = m3vit_state(spec)
    ckpt = tmp_path / "m3vit.pth"
    torch.save({"state_dict": state}, ckpt)
    cmd = [sys.executable, "-m", "edgevit_hw.ml.importers", "m3vit", str(ckpt), "--out",
           str(tmp_path), "--heads", "2", "--image", "3x32x32", "--name", "mm"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    got = load_weights(load_spec(str(tmp_path / "mm.yaml")), tmp_path / "mm.safetensors")
    np.testing.assert_array_equal(got["blocks.1.mlp.experts.h4toh.weight"],
                                  w["blocks.1.mlp.experts.h4toh.weight"])  # fmt: skip
    bad = subprocess.run(cmd[:4] + [str(tmp_path / "missing.pth")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_m3vit_needs_image_when_ambiguous():
    spec = m3vit_like_spec()
    state, _ = m3vit_state(spec, prefix="")
    state["pos_embed"] = torch.zeros(1, 1 + 18, 64)
    with pytest.raises(EdgeVitError, match="--image"):
        import_m3vit(state, heads=2)


def test_cli_records_its_calibration_and_gen_uses_it(tmp_path):
    """``--calib`` stores the fitted images and their label in the saved weights file; the flow
    then quantizes on them (the same path as ``timm``: one save for both sources)."""
    from safetensors import safe_open
    from skimage import data, io

    from edgevit_hw.flow import prepare
    from edgevit_hw.ml.importers import main
    from edgevit_hw.ml.quantizer import quantize

    spec = m3vit_like_spec()
    state, _ = m3vit_state(spec)
    torch.save({"state_dict": state}, tmp_path / "m3vit.pth")
    (tmp_path / "cal").mkdir()
    for name in ("camera", "coins"):
        io.imsave(tmp_path / "cal" / f"{name}.png", getattr(data, name)(), check_contrast=False)
    args = ["m3vit", str(tmp_path / "m3vit.pth"), "--out", str(tmp_path), "--heads", "2",
            "--image", "3x32x32", "--name", "mm", "--calib", str(tmp_path / "cal")]  # fmt: skip
    assert main(args) == 0
    wpath = tmp_path / "mm.safetensors"
    with safe_open(str(wpath), framework="numpy") as f:
        assert f.metadata()["calibration"] == f"2 images in {tmp_path / 'cal'}"
        pixels = f.get_tensor("calibration.pixels")
    imported = load_spec(str(tmp_path / "mm.yaml"))
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == np.uint8
    prep = prepare(imported, str(wpath))
    assert prep.qmodel.calibration == f"2 images in {tmp_path / 'cal'}, stored in mm.safetensors"
    want = quantize(imported, prep.weights, pixels, False)
    assert all(np.array_equal(want.tensors[k], prep.qmodel.tensors[k]) for k in want.tensors)
