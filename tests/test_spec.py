"""Spec validation: presets, free parameters (non-powers of two), one-line errors."""

import pytest

from edgevit_hw.core.errors import SpecError
from edgevit_hw.core.spec import load_spec, presets, spec_from_dict
from edgevit_hw.core.spec import spec_variant as variant


def test_presets_match_reference_models():
    assert {"m3vit", "deit_tiny", "micro_moe"} <= set(presets())
    m = load_spec("m3vit")
    assert (m.model.tokens, m.model.head_dim, m.model.embed_dim, m.model.depth) == (
        129,
        64,
        192,
        12,
    )
    assert m.moe.blocks == (1, 3, 5, 7, 9, 11) and (m.moe.experts, m.moe.top_k) == (16, 2)
    assert m.moe.expert_hidden == 384 and len(m.tasks) == 2
    assert m.hardware.part == "xczu9eg-ffvb1156-2-e" and m.hardware.clock_mhz == 300
    d = load_spec("deit_tiny")
    assert d.model.tokens == 197 and not d.moe.blocks


def test_non_powers_of_two_are_free_parameters():
    s = variant(
        "micro_moe",
        model={"image": {"channels": 3, "height": 40, "width": 24}, "patch": 8,
               "embed_dim": 60, "heads": 5, "mlp_hidden": 90, "depth": 3},
        moe={"blocks": [0, 2], "experts": 7, "top_k": 3, "expert_hidden": 50},
        tasks=["a", "b", "c"],
    )  # fmt: skip
    assert (s.model.tokens, s.model.head_dim, s.moe.experts, len(s.tasks)) == (16, 12, 7, 3)


def test_hash_is_stable_and_sensitive():
    a, b = load_spec("micro_moe"), load_spec("micro_moe")
    assert a.spec_hash() == b.spec_hash()
    assert variant("micro_moe", hardware={"attn_rows": 4}).spec_hash() != a.spec_hash()


BAD = [
    ({"model": {"bogus": 1}}, "model.bogus: unknown key"),
    ({"model": {"depth": "deep"}}, "model.depth: Input should be a valid integer"),
    ({"model": {"heads": 5}}, "model.heads must divide model.embed_dim (64), not 5"),
    ({"moe": {"top_k": 5}}, "moe.top_k must be at most moe.experts (4), not 5"),
    ({"model": {"patch": 7}}, "model.image.height (32) must be a multiple of model.patch (7)"),
    ({"quant": {"act_bits": 20}}, "quant.act_bits: Input should be less than or equal to 16"),
    ({"moe": {"blocks": [9]}}, "moe.blocks must be block indices in 0..1, not [9]"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_specs_give_one_line(change, message):
    with pytest.raises(SpecError) as exc:
        variant("micro_moe", **change)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_unknown_top_level_key():
    data = load_spec("micro_moe").to_dict() | {"extra": 1}
    with pytest.raises(SpecError, match="^extra: unknown key$"):
        spec_from_dict(data)


def test_unknown_preset():
    with pytest.raises(SpecError, match="must be a preset"):
        load_spec("no_such_model")
