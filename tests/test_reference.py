"""Float reference: M³ViT state_dict names and MoE semantics."""

import numpy as np
import torch

from edgevit_hw.core.spec import load_spec
from edgevit_hw.ml.reference import ViTMoE
from edgevit_hw.ml.weights import build_reference, expected_shapes, synthetic_weights


def test_state_dict_uses_m3vit_names():
    shapes = expected_shapes(load_spec("m3vit"))
    assert shapes["patch_embed.proj.weight"] == (192, 3, 16, 16)
    assert shapes["cls_token"] == (1, 1, 192) and shapes["pos_embed"] == (1, 129, 192)
    assert shapes["blocks.0.attn.qkv.weight"] == (576, 192)
    assert shapes["blocks.0.mlp.fc1.weight"] == (768, 192)
    assert shapes["blocks.1.mlp.experts.htoh4.weight"] == (16, 384, 192)
    assert shapes["blocks.1.mlp.experts.h4toh.weight"] == (16, 192, 384)
    assert shapes["blocks.1.mlp.gate.0.w_gate"] == (192, 16)
    assert shapes["blocks.11.mlp.gate.1.w_gate"] == (192, 16)
    assert "blocks.1.mlp.fc1.weight" not in shapes


def test_moe_weights_are_softmax_over_all_experts_not_renormalized():
    spec = load_spec("micro_moe")
    model = build_reference(spec, synthetic_weights(spec, 1))
    moe = model.blocks[1].mlp
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        got = moe(x, 1, None, "b")
        probs = (x @ moe.gate[1].w_gate).softmax(-1)
        want = torch.zeros_like(x)
        for r in range(5):
            top = torch.topk(probs[r], 2)
            for p, e in zip(top.values, top.indices, strict=True):
                _, _, y = moe.experts(x[r : r + 1], int(e))
                want[r] += p * y[0]
    assert torch.allclose(got, want, atol=1e-6)
    assert float(torch.topk(probs, 2).values.sum(-1).max()) < 1.0


def test_forward_shapes_and_trace():
    spec = load_spec("micro_moe")
    model = ViTMoE(spec).eval()
    rec = {}
    px = torch.from_numpy(np.zeros((2, 3, 32, 32), np.uint8))
    out = model(px, 0, rec)
    assert out.shape == (2, 17, 64)
    assert {"embed", "blocks.1.gate_logits", "blocks.1.res2", "norm"} <= rec.keys()
