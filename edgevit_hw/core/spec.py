"""The model/hardware specification: YAML in, a validated and frozen ``Spec`` out.

Free parameters live only here. Everything that follows from them (widths, depths, tile
counts) is computed once, in :mod:`edgevit_hw.core.derive`.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgevit_hw.core.errors import SpecError


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Image(_Frozen):
    """Input image geometry (pixels are unsigned 8-bit)."""

    channels: int = Field(ge=1, le=16)
    height: int = Field(ge=1, le=4096)
    width: int = Field(ge=1, le=4096)


class ModelSection(_Frozen):
    """A pre-norm ViT encoder: patch embedding, class token, position embedding, blocks."""

    image: Image
    patch: int = Field(ge=1, le=64)
    embed_dim: int = Field(ge=2, le=4096)
    depth: int = Field(ge=1, le=64)
    heads: int = Field(ge=1, le=64)
    mlp_hidden: int = Field(ge=1, le=16384)
    ln_eps: float = Field(default=1e-6, gt=0, lt=1)
    class_token: bool = True
    qkv_bias: bool = True
    final_norm: bool = True
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @model_validator(mode="after")
    def _check(self) -> ModelSection:
        img = self.image
        if self.embed_dim % self.heads:
            raise ValueError(
                f"model.heads must divide model.embed_dim ({self.embed_dim}), not {self.heads}"
            )
        for side, size in (("height", img.height), ("width", img.width)):
            if size % self.patch:
                raise ValueError(
                    f"model.image.{side} ({size}) must be a multiple of model.patch ({self.patch})"
                )
        for name in ("mean", "std"):
            if len(getattr(self, name)) != img.channels:
                raise ValueError(
                    f"model.{name} must have one entry per channel ({img.channels}),"
                    f" not {len(getattr(self, name))}"
                )
        if min(self.std) <= 0:
            raise ValueError("model.std entries must be positive")
        return self

    @property
    def grid(self) -> tuple[int, int]:
        return self.image.height // self.patch, self.image.width // self.patch

    @property
    def patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def tokens(self) -> int:
        return self.patches + int(self.class_token)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.heads

    @property
    def patch_dim(self) -> int:
        return self.image.channels * self.patch * self.patch


class MoESection(_Frozen):
    """Task-level mixture of experts (M³ViT): experts shared, one router per task."""

    blocks: tuple[int, ...] = ()
    experts: int = Field(default=1, ge=1, le=256)
    top_k: int = Field(default=1, ge=1, le=256)
    expert_hidden: int = Field(default=1, ge=1, le=16384)

    @model_validator(mode="after")
    def _check(self) -> MoESection:
        if self.top_k > self.experts:
            raise ValueError(
                f"moe.top_k must be at most moe.experts ({self.experts}), not {self.top_k}"
            )
        if len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"moe.blocks must not repeat a block, got {list(self.blocks)}")
        return self


class QuantSection(_Frozen):
    """Integer widths (signed, symmetric, zero point 0) and the fixed-point formats of the
    nonlinear units. See :mod:`edgevit_hw.core.arithmetic` for what each one means."""

    weight_bits: int = Field(default=8, ge=4, le=16)
    act_bits: int = Field(default=8, ge=4, le=16)
    residual_bits: int = Field(default=16, ge=4, le=16)
    bias_bits: int = Field(default=32, ge=8, le=48)
    mult_bits: int = Field(default=16, ge=8, le=24)
    exp_frac_bits: int = Field(default=8, ge=4, le=12)
    exp_out_bits: int = Field(default=15, ge=8, le=20)
    logit_bits: int = Field(default=20, ge=12, le=24)
    gelu_frac_bits: int = Field(default=12, ge=6, le=14)
    gelu_in_bits: int = Field(default=20, ge=10, le=24)
    gate_weight_bits: int = Field(default=15, ge=8, le=20)
    ln_norm_frac_bits: int = Field(default=15, ge=8, le=15)
    ln_gamma_bits: int = Field(default=16, ge=8, le=20)


class HardwareSection(_Frozen):
    """Schedule and platform; never changes an output bit."""

    mac_rows: int = Field(default=16, ge=1, le=128)
    mac_cols: int = Field(default=16, ge=1, le=128)
    attn_rows: int = Field(default=4, ge=1, le=64)
    weight_port_bits: int = Field(default=128)
    clock_mhz: float = Field(default=300.0, gt=0, le=1000)
    part: str = "xczu9eg-ffvb1156-2-e"
    board: str = "zcu102"

    @model_validator(mode="after")
    def _check(self) -> HardwareSection:
        if self.weight_port_bits not in (32, 64, 128, 256, 512):
            raise ValueError(
                "hardware.weight_port_bits must be one of 32, 64, 128, 256, 512,"
                f" not {self.weight_port_bits}"
            )
        return self


class Spec(_Frozen):
    """One accelerator: model, MoE, tasks, quantization, hardware."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    model: ModelSection
    moe: MoESection = MoESection()
    tasks: tuple[str, ...] = ("task0",)
    quant: QuantSection = QuantSection()
    hardware: HardwareSection = HardwareSection()

    @model_validator(mode="after")
    def _check(self) -> Spec:
        depth = self.model.depth
        bad = [b for b in self.moe.blocks if not 0 <= b < depth]
        if bad:
            raise ValueError(f"moe.blocks must be block indices in 0..{depth - 1}, not {bad}")
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must be distinct, got {list(self.tasks)}")
        return self

    def is_moe(self, block: int) -> bool:
        return block in self.moe.blocks

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON of the whole spec; its first 8 hex digits are the
        hardware ID register, checked by the host driver."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def hash32(self) -> int:
        return int(self.spec_hash()[:8], 16)


def generated_line(name: str, spec_hash: str, comment: str = "#") -> str:
    """First line of every generated file."""
    return f"{comment} generated from spec {spec_hash[:16]} ({name}), do not edit"


def presets() -> list[str]:
    """Names of the presets shipped as package data."""
    folder = resources.files("edgevit_hw") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if name_or_path in presets():
        text = (resources.files("edgevit_hw") / "configs" / f"{name_or_path}.yaml").read_text()
    elif path.is_file():
        text = path.read_text()
    else:
        raise SpecError(
            f"--config must be a preset ({', '.join(presets())}) or a YAML file,"
            f" not {name_or_path!r}"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{name_or_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{name_or_path}: the spec must be a YAML mapping")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if loc and not msg.startswith(loc.split(".")[0]):
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f", got {got!r}"
        return f"{loc}: {msg}{shown}"
    return msg


def spec_from_dict(data: dict) -> Spec:
    """Validate a plain mapping; a bad field raises :class:`SpecError` with one line."""
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_first_error(exc)) from None


def load_spec(name_or_path: str) -> Spec:
    """A preset name (see :func:`presets`) or a path to a YAML file."""
    return spec_from_dict(_read_yaml(name_or_path))


def spec_variant(base: str | Spec, **changes) -> Spec:
    """A spec with some sections changed and re-validated, e.g.
    ``spec_variant("micro_moe", hardware={"mac_rows": 4})``; a dict merges into the section,
    any other value replaces it."""
    data = (load_spec(base) if isinstance(base, str) else base).to_dict()
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    return spec_from_dict(data)
