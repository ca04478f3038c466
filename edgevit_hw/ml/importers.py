"""Importers: a trained PyTorch model in, a :class:`Spec` plus float weights out.

Two sources:

* a timm ``VisionTransformer`` instance (ViT / DeiT family, built in code; no hub access);
* an M³ViT checkpoint ``state_dict`` (key names of M³ViT's ``vision_transformer_moe.py``:
  fastmoe experts ``mlp.experts.htoh4/h4toh``, one ``noisy_vmoe`` router per task
  ``mlp.gate.{t}.w_gate``; ``module.`` / ``backbone.`` / ``encoder.`` prefixes stripped).

The float weights use the names of :mod:`edgevit_hw.ml.reference` and go straight to
:func:`edgevit_hw.ml.quantizer.quantize`. Folding that keeps the function unchanged is applied
(LayerScale into the branch's last Linear, ``no_embed_class`` as a zero position row for the
class token, missing biases as zeros). Anything the generator cannot run is refused with an
:class:`UnsupportedModel` error naming the feature; the CLI prints it on one line and exits 2.

CLI::

    python -m edgevit_hw.ml.importers timm deit_tiny_patch16_224 --out build/imported [--seed 0]
        [--calib DIR|NPZ]
    python -m edgevit_hw.ml.importers m3vit CKPT(.pth|.safetensors) --out DIR [--heads 3]
        [--image 3x128x256] [--top-k 2] [--tasks semseg,depth] [--name m3vit_imported]

Both write ``<out>/<name>.yaml`` (the spec) and ``<out>/<name>.safetensors`` (float weights;
timm's classifier head is stored beside them as ``head.*``; with ``--calib``, the calibration
images as ``calibration.pixels`` and their description as the ``calibration`` metadata), ready
for ``python -m edgevit_hw.gen --config <out>/<name>.yaml --weights <out>/<name>.safetensors``,
which then quantizes on those images.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevit_hw.core.errors import CliParser, EdgeVitError, run_cli
from edgevit_hw.core.spec import Spec, spec_from_dict
from edgevit_hw.ml.images import CALIB_HELP, Calibration, check_calib_path, load_calibration
from edgevit_hw.ml.weights import PREFIXES, check_weights


class UnsupportedModel(EdgeVitError):
    """The source model uses an architecture feature the generator does not implement."""


@dataclass
class Imported:
    """A spec, its float weights (reference names) and host-side head tensors (``head.*``)."""

    spec: Spec
    weights: dict[str, np.ndarray]
    head: dict[str, np.ndarray] = field(default_factory=dict)
    head_info: dict = field(default_factory=dict)


def _refuse(feature: str) -> UnsupportedModel:
    return UnsupportedModel(f"unsupported model feature: {feature}")


# ------------------------------------------------------------------------------- timm ----


def load_timm():
    """Import timm. PyPI's torchvision wheels are CUDA builds whose C extension cannot load
    beside the CPU torch this project pins; timm's ViT needs only torchvision's pure-Python
    parts, so when the extension is missing the two modules that register its C operators are
    replaced by empty ones before torchvision is imported."""
    if "torchvision" not in sys.modules and not _torchvision_ops_load():
        for sub in ("_meta_registrations", "_autograd_registrations"):
            sys.modules.setdefault(f"torchvision.{sub}", types.ModuleType(f"torchvision.{sub}"))
    import timm

    return timm


def _torchvision_ops_load() -> bool:
    import torch

    found = importlib.util.find_spec("torchvision")
    if found is None or not found.submodule_search_locations:
        raise EdgeVitError("timm import needs torchvision: pip install torchvision==0.28.0")
    libs = sorted(Path(found.submodule_search_locations[0]).glob("_C*.so"))
    try:
        torch.ops.load_library(str(libs[0]))
        return True
    except (OSError, IndexError, RuntimeError):
        return False


def _np(t) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _is(mod, *names: str) -> bool:
    return type(mod).__name__ in names


def _check_timm_model(model) -> None:
    """Refuse the features the generator lacks; the first one found is named."""
    params = [n for n, _ in model.named_parameters()]
    if getattr(model, "dist_token", None) is not None:
        raise _refuse("distillation token (dist_token)")
    if any("relative_position" in n for n in params) or "RelPos" in type(model).__name__:
        raise _refuse("relative position bias")
    if any("rope" in n.lower() for n, _ in model.named_modules()):
        raise _refuse("rotary position embedding (rope)")
    vit = load_timm().models.vision_transformer.VisionTransformer
    if not isinstance(model, vit):
        raise _refuse(f"model class {type(model).__name__} (only timm VisionTransformer)")
    if getattr(model, "reg_token", None) is not None:
        raise _refuse("register tokens (reg_tokens)")
    if model.pos_embed is None:
        raise _refuse("no learned position embedding (pos_embed)")
    if model.attn_pool is not None:
        raise _refuse(f"attention pooling head (global_pool={model.global_pool!r})")
    if not _is(model.norm_pre, "Identity"):
        raise _refuse("norm before the blocks (pre_norm)")
    _check_patch_embed(model.patch_embed)
    for i, blk in enumerate(model.blocks):
        _check_block(i, blk)
    for name in ("norm", "fc_norm"):
        mod = getattr(model, name)
        if not _is(mod, "Identity"):
            _check_norm(mod, name)


def _check_patch_embed(pe) -> None:
    conv = pe.proj
    if not _is(conv, "Conv2d") or conv.kernel_size != conv.stride or conv.padding != (0, 0):
        raise _refuse("patch embedding that is not a non-overlapping convolution")
    if conv.kernel_size[0] != conv.kernel_size[1]:
        raise _refuse(f"non-square patches {tuple(conv.kernel_size)}")
    if not _is(pe.norm, "Identity"):
        raise _refuse("norm in the patch embedding (embed norm)")
    if getattr(pe, "img_size", None) is None:
        raise _refuse("patch embedding without a fixed image size")


def _check_norm(mod, where: str) -> None:
    import torch

    if not isinstance(mod, torch.nn.LayerNorm):
        raise _refuse(f"norm layer {type(mod).__name__} at {where} (only LayerNorm)")
    if mod.weight is None or mod.bias is None:
        raise _refuse(f"LayerNorm without affine weight and bias at {where}")


def _check_block(i: int, blk) -> None:
    if not _is(blk, "Block"):
        raise _refuse(f"block type {type(blk).__name__} at blocks.{i}")
    _check_norm(blk.norm1, f"blocks.{i}.norm1")
    _check_norm(blk.norm2, f"blocks.{i}.norm2")
    at = blk.attn
    if not _is(at, "Attention"):
        raise _refuse(f"attention type {type(at).__name__} at blocks.{i}")
    if not (_is(at.q_norm, "Identity") and _is(at.k_norm, "Identity")):
        raise _refuse(f"qk normalization (qk_norm) at blocks.{i}")
    if not _is(at.norm, "Identity") or getattr(at, "gate", None) is not None:
        raise _refuse(f"attention scale norm or gated attention at blocks.{i}")
    if at.qkv.out_features != 3 * at.qkv.in_features:
        raise _refuse(f"attention width different from embed_dim at blocks.{i}")
    mlp = blk.mlp
    if not _is(mlp, "Mlp"):
        raise _refuse(f"MLP type {type(mlp).__name__} (gated MLP) at blocks.{i}")
    if not _is(mlp.act, "GELU") or getattr(mlp.act, "approximate", "none") != "none":
        raise _refuse(f"MLP activation {mlp.act!r} (only exact GELU) at blocks.{i}")
    if not _is(mlp.norm, "Identity"):
        raise _refuse(f"norm inside the MLP (scale_mlp_norm) at blocks.{i}")


def _eps_of(model) -> float:
    eps = {m.eps for blk in model.blocks for m in (blk.norm1, blk.norm2)}
    eps |= {m.eps for m in (model.norm, model.fc_norm) if hasattr(m, "eps")}
    if len(eps) != 1:
        raise _refuse(f"LayerNorms with different eps {sorted(eps)}")
    return eps.pop()


def _mean_std(model, channels: int):
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or len(mean) != channels:
        return (0.5,) * channels, (0.5,) * channels
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def timm_spec_dict(model, name: str, tasks=("classify",)) -> dict:
    """The spec mapping of a checked timm model (quant and hardware sections default)."""
    pe, blk0 = model.patch_embed, model.blocks[0]
    h, w = pe.img_size
    channels = pe.proj.in_channels
    mean, std = _mean_std(model, channels)
    return {
        "name": name,
        "model": {
            "image": {"channels": channels, "height": int(h), "width": int(w)},
            "patch": int(pe.proj.kernel_size[0]),
            "embed_dim": int(model.embed_dim),
            "depth": len(model.blocks),
            "heads": int(blk0.attn.num_heads),
            "mlp_hidden": int(blk0.mlp.fc1.out_features),
            "ln_eps": float(_eps_of(model)),
            "class_token": model.cls_token is not None,
            "qkv_bias": blk0.attn.qkv.bias is not None,
            "final_norm": not _is(model.norm, "Identity"),
            "mean": list(mean),
            "std": list(std),
        },
        "tasks": list(tasks),
    }


def _linear(out: dict, key: str, lin, scale=None) -> None:
    wt = _np(lin.weight)
    b = _np(lin.bias) if lin.bias is not None else np.zeros(wt.shape[0], np.float32)
    if scale is not None:  # LayerScale folded: gamma * (W x + b)
        wt, b = wt * scale[:, None], b * scale
    out[f"{key}.weight"], out[f"{key}.bias"] = wt, b


def _scale_of(ls):
    return None if _is(ls, "Identity") else _np(ls.gamma)


def timm_weights(model, spec: Spec) -> dict[str, np.ndarray]:
    """Float weights under reference names (LayerScale and ``no_embed_class`` folded)."""
    out: dict[str, np.ndarray] = {}
    _linear(out, "patch_embed.proj", model.patch_embed.proj)
    pos = _np(model.pos_embed)
    if model.cls_token is not None:
        out["cls_token"] = _np(model.cls_token)
        if model.no_embed_class:
            pos = np.concatenate([np.zeros_like(pos[:, :1]), pos], axis=1)
    out["pos_embed"] = pos
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        for n in ("norm1", "norm2"):
            out[f"{p}.{n}.weight"], out[f"{p}.{n}.bias"] = (
                _np(getattr(blk, n).weight), _np(getattr(blk, n).bias))  # fmt: skip
        _linear(out, f"{p}.attn.qkv", blk.attn.qkv)
        if blk.attn.qkv.bias is None:
            del out[f"{p}.attn.qkv.bias"]
        _linear(out, f"{p}.attn.proj", blk.attn.proj, _scale_of(blk.ls1))
        _linear(out, f"{p}.mlp.fc1", blk.mlp.fc1)
        _linear(out, f"{p}.mlp.fc2", blk.mlp.fc2, _scale_of(blk.ls2))
    if spec.model.final_norm:
        out["norm.weight"], out["norm.bias"] = _np(model.norm.weight), _np(model.norm.bias)
    return check_weights(spec, out, f"timm {type(model).__name__}")


def timm_head(model) -> tuple[dict[str, np.ndarray], dict]:
    """timm's classifier head as host-side tensors plus its pooling description."""
    tensors: dict[str, np.ndarray] = {}
    if not _is(model.head, "Identity"):
        tensors["head.weight"], tensors["head.bias"] = _np(model.head.weight), _np(model.head.bias)
    if not _is(model.fc_norm, "Identity"):
        tensors["head.norm.weight"] = _np(model.fc_norm.weight)
        tensors["head.norm.bias"] = _np(model.fc_norm.bias)
    info = {
        "pool": model.global_pool or "",
        "prefix_tokens": int(model.num_prefix_tokens),
        "include_prefix": bool(model.pool_include_prefix),
        "eps": float(getattr(model.fc_norm, "eps", 1e-6)),
    }
    return tensors, info


def import_timm(model, name: str = "timm_vit", tasks=("classify",)) -> Imported:
    """A timm ``VisionTransformer`` instance -> spec, float weights and classifier head."""
    _check_timm_model(model)
    if model.global_pool not in ("token", "avg", "max", "avgmax", ""):
        raise _refuse(f"global pooling {model.global_pool!r}")
    spec = spec_from_dict(timm_spec_dict(model, name, tasks))
    head, info = timm_head(model)
    return Imported(spec, timm_weights(model, spec), head, info)


# ------------------------------------------------------------------------------ M³ViT ----

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
_IGNORED = ("w_noise", "num_batches_tracked")
_DENSE_KEYS = {"norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"}


def strip_prefixes(state: dict) -> dict:
    """Remove ``module.`` / ``backbone.`` / ``encoder.`` prefixes; when some keys carry
    ``backbone.`` and others not, only the backbone's are kept (decoders dropped)."""
    if any(k.startswith(("backbone.", "module.backbone.")) for k in state):
        state = {k: v for k, v in state.items() if "backbone." in k.split("blocks.")[0]}
    out = {}
    for key, val in state.items():
        k = key
        while k.startswith(PREFIXES):
            k = k[k.index(".") + 1 :]
        out[k] = val
    return out


def _feature_checks(keys: list[str]) -> None:
    table = (
        ("dist_token", "distillation token (dist_token)"),
        ("relative_position", "relative position bias"),
        ("running_mean", "BatchNorm"),
        ("q_norm", "qk normalization"),
        ("reg_token", "register tokens"),
    )
    for pattern, feature in table:
        if any(pattern in k for k in keys):
            raise _refuse(feature)


def _block_keys(keys: list[str]) -> dict[int, set[str]]:
    blocks: dict[int, set[str]] = {}
    for k in keys:
        m = _BLOCK_KEY.match(k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
    return blocks


def _moe_geometry(sd: dict, moe_blocks: list[int], embed: int) -> dict:
    shapes = {tuple(sd[f"blocks.{i}.mlp.experts.htoh4.weight"].shape) for i in moe_blocks}
    if len(shapes) != 1:
        raise _refuse(f"MoE blocks with different expert shapes {sorted(shapes)}")
    experts, hidden, dim = shapes.pop()
    if dim != embed:
        raise _refuse(f"expert input width {dim} different from embed_dim {embed}")
    gate_key = re.compile(r"blocks\.\d+\.mlp\.gate\.(\d+)\.w_gate$")
    gates = sorted({m.group(1) for k in sd if (m := gate_key.match(k))}, key=int)
    if not gates and any(k.endswith("mlp.gate.w_gate") for k in sd):
        gates = [""]
    for i in moe_blocks:
        for g in gates:
            wg = sd[f"blocks.{i}.mlp.gate.{g}.w_gate".replace("..", ".")]
            if tuple(wg.shape) != (embed, experts):
                raise _refuse(f"task-conditioned gate input {list(wg.shape)} at blocks.{i}")
    return {"experts": int(experts), "expert_hidden": int(hidden), "gates": gates}


def _image_for(patches: int, patch: int, channels: int, image) -> dict:
    if image is not None:
        c, h, w = image
        return {"channels": c, "height": h, "width": w}
    side = int(round(patches**0.5))
    if side * side == patches:
        return {"channels": channels, "height": side * patch, "width": side * patch}
    if patches == 128:  # Cityscapes 128x256 as M³ViT / Edge-MoE use it
        return {"channels": channels, "height": 8 * patch, "width": 16 * patch}
    raise EdgeVitError(f"cannot infer the image size of {patches} patches: pass --image CxHxW")


def m3vit_spec_dict(sd: dict, name: str, heads: int | None, image, top_k: int,
                    tasks, ln_eps: float) -> tuple[dict, list[str]]:  # fmt: skip
    """The spec mapping of a prefix-stripped M³ViT backbone state_dict, and the gate ids."""
    conv = sd["patch_embed.proj.weight"]
    embed, channels, patch = int(conv.shape[0]), int(conv.shape[1]), int(conv.shape[2])
    blocks = _block_keys(list(sd))
    depth = max(blocks) + 1
    moe_blocks = sorted(i for i, ks in blocks.items() if "mlp.experts.htoh4.weight" in ks)
    cls = "cls_token" in sd
    patches = int(sd["pos_embed"].shape[1]) - int(cls)
    model = {
        "image": _image_for(patches, patch, channels, image),
        "patch": patch,
        "embed_dim": embed,
        "depth": depth,
        "heads": heads or max(embed // 64, 1),
        "mlp_hidden": _mlp_hidden(sd, blocks, moe_blocks),
        "ln_eps": ln_eps,
        "class_token": cls,
        "qkv_bias": "blocks.0.attn.qkv.bias" in sd,
        "final_norm": False,
    }
    data = {"name": name, "model": model}
    gates = [""]
    if moe_blocks:
        geo = _moe_geometry(sd, moe_blocks, embed)
        gates = geo.pop("gates")
        data["moe"] = {"blocks": moe_blocks, "top_k": top_k, **geo}
    data["tasks"] = _task_names(tasks, len(gates))
    return data, gates


def _mlp_hidden(sd: dict, blocks: dict, moe_blocks: list[int]) -> int:
    dense = [i for i in blocks if i not in moe_blocks]
    if not dense:
        return 1
    return int(sd[f"blocks.{dense[0]}.mlp.fc1.weight"].shape[0])


def _task_names(tasks, count: int) -> list[str]:
    if tasks:
        if len(tasks) != count:
            raise EdgeVitError(f"--tasks must name {count} task(s) (one per router), not {tasks}")
        return list(tasks)
    return ["semseg", "depth"] if count == 2 else [f"task{t}" for t in range(count)]


def _unknown_block_keys(sd: dict) -> None:
    ok = re.compile(
        r"^blocks\.\d+\.(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)"
        r"|mlp\.fc[12]\.(weight|bias)|mlp\.experts\.(htoh4|h4toh)\.(weight|bias)"
        r"|mlp\.gate\.(\d+\.)?w_gate)$"
    )
    for k in sorted(sd):
        if k.startswith("blocks.") and not ok.match(k) and not k.endswith(_IGNORED):
            raise _refuse(f"unknown block tensor {k}")


def import_m3vit(state: dict, name: str = "m3vit_imported", heads: int | None = None,
                 image=None, top_k: int = 2, tasks=None,
                 ln_eps: float = 1e-6) -> Imported:  # fmt: skip
    """An M³ViT backbone ``state_dict`` -> spec and float weights. Not in the checkpoint and so
    taken from the arguments: ``heads`` (default embed_dim // 64), ``top_k`` (2),
    ``ln_eps`` (1e-6), ``image`` (C, H, W; default from the patch count). M³ViT has no final
    norm and no classifier: ``final_norm`` is False and any ``norm.*`` tensor is ignored."""
    sd = {k: _to_numpy(v) for k, v in strip_prefixes(state).items()}
    _feature_checks(list(sd))
    for key in ("patch_embed.proj.weight", "pos_embed"):
        if key not in sd:
            raise EdgeVitError(f"not an M³ViT backbone state_dict: missing {key}")
    _unknown_block_keys(sd)
    data, gates = m3vit_spec_dict(sd, name, heads, image, top_k, tasks, ln_eps)
    spec = spec_from_dict(data)
    for t, g in enumerate(gates):
        if g != str(t):
            for i in spec.moe.blocks:
                sd[f"blocks.{i}.mlp.gate.{t}.w_gate"] = sd.pop(
                    f"blocks.{i}.mlp.gate.{g}.w_gate".replace("..", "."))  # fmt: skip
    return Imported(spec, check_weights(spec, sd, f"M³ViT state_dict ({name})"))


def _to_numpy(v) -> np.ndarray:
    return _np(v) if hasattr(v, "detach") else np.asarray(v, dtype=np.float32)


# -------------------------------------------------------------------------------- CLI ----


def save_imported(imp: Imported, out: Path, cal: Calibration | None = None) -> tuple[Path, Path]:
    """Write ``<name>.yaml`` and ``<name>.safetensors`` (weights plus ``head.*``; with a
    calibration set, its pixels as ``calibration.pixels`` and its label as the ``calibration``
    metadata, so that ``gen --weights`` quantizes on it)."""
    import json

    import yaml
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    ypath, wpath = out / f"{imp.spec.name}.yaml", out / f"{imp.spec.name}.safetensors"
    ypath.write_text(yaml.safe_dump(imp.spec.to_dict(), sort_keys=False))
    tensors = {k: np.ascontiguousarray(v) for k, v in {**imp.weights, **imp.head}.items()}
    meta = {"head_info": json.dumps(imp.head_info)}
    if cal is not None:
        tensors["calibration.pixels"] = np.ascontiguousarray(cal.pixels)
        meta["calibration"] = cal.label
    save_file(tensors, str(wpath), meta)
    return ypath, wpath


def _read_state(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise EdgeVitError(f"checkpoint must be an existing file, not {path!r}")
    if p.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(p))
    import torch

    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user error
        raise EdgeVitError(f"{path}: cannot read checkpoint ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return obj


def _parse_image(text: str | None):
    if not text:
        return None
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EdgeVitError(f"--image must be CxHxW like 3x128x256, not {text!r}") from None
    return c, h, w


def _run(args) -> Imported:
    if args.source == "timm":
        import torch

        timm = load_timm()
        torch.manual_seed(args.seed)
        print(f"timm {args.model}: default initialization, seed {args.seed}")
        try:
            model = timm.create_model(args.model, pretrained=False).eval()
        except (RuntimeError, ValueError) as exc:
            raise EdgeVitError(f"timm cannot build {args.model!r}: {exc}") from None
        name = args.name or re.sub(r"\W", "_", args.model)
        return import_timm(model, name)
    tasks = args.tasks.split(",") if args.tasks else None
    return import_m3vit(_read_state(args.model), args.name or "m3vit_imported", args.heads,
                        _parse_image(args.image), args.top_k, tasks)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = CliParser(prog="python -m edgevit_hw.ml.importers", description=__doc__
                   .split("\n\n")[0])  # fmt: skip
    ap.add_argument("source", choices=("timm", "m3vit"))
    ap.add_argument("model", help="timm model name, or an M³ViT checkpoint file")
    ap.add_argument("--out", default="build/imported")
    ap.add_argument("--name", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--image", default=None, help="CxHxW, e.g. 3x128x256")
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--tasks", default=None, help="comma-separated task names")
    ap.add_argument("--calib", default=None, help=f"calibration set stored with the weights "
                    f"(used by gen --weights): {CALIB_HELP}")  # fmt: skip
    return run_cli(_import, ap, argv)


def _import(args) -> int:
    if args.calib:
        check_calib_path(args.calib)
    imp = _run(args)
    cal = load_calibration(args.calib, imp.spec) if args.calib else None
    ypath, wpath = save_imported(imp, Path(args.out), cal)
    print(f"spec    {ypath}\nweights {wpath}")
    print(f"calibration: {cal.label if cal else 'none stored (gen calibrates on its default)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
