"""Golden model: schedule independence, widths respected, MoE routing and queues, tasks."""

import numpy as np
import pytest

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import derive_arith
from edgevit_hw.core.golden import expert_queues, golden_forward
from edgevit_hw.core.qmodel import QuantModel
from edgevit_hw.core.spec import spec_variant
from edgevit_hw.flow import prepare
from edgevit_hw.ml.fidelity import measure
from edgevit_hw.ml.images import EVAL_IMAGE, load_image, random_pixels
from edgevit_hw.ml.weights import build_reference


def test_hardware_section_changes_no_output_bit(micro, seed):
    other = spec_variant(
        micro.spec,
        hardware={"mac_rows": 3, "mac_cols": 5, "attn_rows": 1, "weight_port_bits": 32},
    )
    assert derive_arith(other) == derive_arith(micro.spec)
    qm2 = QuantModel(other, micro.qmodel.tensors, micro.qmodel.scales)
    px = random_pixels(micro.spec, seed)
    for task in range(len(micro.spec.tasks)):
        a = golden_forward(micro.qmodel, px, task, trace=True)
        b = golden_forward(qm2, px, task, trace=True)
        assert np.array_equal(a.tokens, b.tokens)
        assert a.trace.keys() == b.trace.keys()
        assert all(np.array_equal(a.trace[k], b.trace[k]) for k in a.trace)


def _bits_of(name: str, ap) -> int:
    if name.endswith(("res1", "res2")) or name == "embed":
        return ap.res_bits
    if name.endswith(("ln1", "ln2", ".q", ".k", ".v", "attn", "hidden")) or name == "norm":
        return ap.act_bits
    if name.endswith("gate_logits"):
        return ap.logit_bits
    if name.endswith("moe_acc"):
        return ap.moe_acc_bits
    return 0


def test_every_traced_tensor_fits_its_derived_width(micro, seed):
    ap = derive_arith(micro.spec)
    for px in (load_image(EVAL_IMAGE, micro.spec), random_pixels(micro.spec, seed)):
        trace = golden_forward(micro.qmodel, px, 1, trace=True).trace
        checked = 0
        for name, val in trace.items():
            bits = _bits_of(name, ap)
            if bits:
                assert A.smin(bits) <= val.min() and val.max() <= A.smax(bits), name
                checked += 1
        assert checked >= 10


def test_moe_routing_and_queues(micro):
    px = load_image(EVAL_IMAGE, micro.spec)
    ap = derive_arith(micro.spec)
    for task in range(len(micro.spec.tasks)):
        tr = golden_forward(micro.qmodel, px, task, trace=True).trace
        idx, w, t = tr["blocks.1.gate_idx"], tr["blocks.1.gate_w"], tr["blocks.1.gate_logits"]
        assert idx.shape == (ap.tokens, ap.top_k)
        assert np.all(np.take_along_axis(t, idx, 1)[:, 0] == t.max(axis=1))
        assert np.all(w[:, 0] >= w[:, 1]) and np.all(w.sum(axis=1) <= 1 << ap.gate_weight_bits)
        queues = expert_queues(idx, ap.experts)
        assert sum(len(q) for q in queues) == ap.tokens * ap.top_k
        for e, q in enumerate(queues):
            assert np.all(np.diff(q[:, 0]) > 0)  # token order, each token once per expert
            assert np.all(idx[q[:, 0], q[:, 1]] == e)


def test_task_selects_router_only(micro):
    px = load_image(EVAL_IMAGE, micro.spec)
    a = golden_forward(micro.qmodel, px, 0, trace=True).trace
    b = golden_forward(micro.qmodel, px, 1, trace=True).trace
    assert np.array_equal(a["blocks.0.res2"], b["blocks.0.res2"])  # dense block: shared
    assert np.array_equal(a["blocks.1.ln2"], b["blocks.1.ln2"])
    assert not np.array_equal(a["blocks.1.gate_logits"], b["blocks.1.gate_logits"])


def test_odd_shapes_run_end_to_end():
    spec = spec_variant(
        "micro_moe",
        model={"image": {"channels": 3, "height": 24, "width": 40}, "patch": 8,
               "embed_dim": 60, "heads": 5, "mlp_hidden": 90, "depth": 3},
        moe={"blocks": [0, 2], "experts": 7, "top_k": 3, "expert_hidden": 50},
        tasks=["a", "b", "c"],
    )  # fmt: skip
    prep = prepare(spec)
    model = build_reference(spec, prep.weights)
    px = load_image(EVAL_IMAGE, spec)
    for task in range(3):
        out = golden_forward(prep.qmodel, px, task).tokens
        assert out.shape == (16, 60)
        assert measure(prep.qmodel, model, px, task).cosine > 0.99


def test_bad_pixels_and_task(micro):
    with pytest.raises(ValueError, match="pixels must have shape"):
        golden_forward(micro.qmodel, np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="task must be in 0..1"):
        golden_forward(micro.qmodel, load_image(EVAL_IMAGE, micro.spec), 2)
