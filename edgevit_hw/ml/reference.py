"""Float reference: a PyTorch M³ViT-style MoE ViT of the spec's architecture.

``state_dict`` keys follow M³ViT's ``vision_transformer_moe.py`` (fastmoe experts and
``noisy_vmoe`` gates), so a real M³ViT backbone checkpoint loads directly::

    patch_embed.proj.{weight [D,C,p,p], bias}, cls_token [1,1,D], pos_embed [1,N,D]
    blocks.i.norm1.*, blocks.i.attn.qkv.*, blocks.i.attn.proj.*, blocks.i.norm2.*
    blocks.i.mlp.fc1.*, blocks.i.mlp.fc2.*                        (dense blocks)
    blocks.i.mlp.experts.htoh4.{weight [E,Hx,D], bias [E,Hx]}     (MoE blocks)
    blocks.i.mlp.experts.h4toh.{weight [E,D,Hx], bias [E,D]}
    blocks.i.mlp.gate.t.w_gate [D, E]                             (one router per task)
    norm.*                                                        (when model.final_norm)

MoE semantics (M³ViT): gate = softmax over all experts of ``x @ w_gate``; the top-k
probabilities weight the expert outputs without renormalization; every token (class token
included) is routed.

``forward`` takes uint8-valued pixels [B, C, H, W]; normalization by the spec's mean and std
is part of the model (the quantizer folds it into the patch embedding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgevit_hw.core.spec import Spec


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rec: dict | None, p: str) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if rec is not None:
            rec[f"{p}.q"], rec[f"{p}.k"], rec[f"{p}.v"] = q, k, v
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        o = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        if rec is not None:
            rec[f"{p}.attn"] = o
        return self.proj(o)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, task: int, rec: dict | None, p: str) -> torch.Tensor:
        h = F.gelu(self.fc1(x))
        if rec is not None:
            rec[f"{p}.fc1"], rec[f"{p}.hidden"] = self.fc1(x), h
        return self.fc2(h)


class Experts(nn.Module):
    """fastmoe ``FMoELinear`` pair: weights [E, out, in], applied as ``x @ W[e].T + b[e]``."""

    def __init__(self, experts: int, dim: int, hidden: int):
        super().__init__()
        self.htoh4 = nn.Module()
        self.htoh4.weight = nn.Parameter(torch.zeros(experts, hidden, dim))
        self.htoh4.bias = nn.Parameter(torch.zeros(experts, hidden))
        self.h4toh = nn.Module()
        self.h4toh.weight = nn.Parameter(torch.zeros(experts, dim, hidden))
        self.h4toh.bias = nn.Parameter(torch.zeros(experts, dim))

    def forward(self, x: torch.Tensor, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        u = x @ self.htoh4.weight[e].T + self.htoh4.bias[e]
        h = F.gelu(u)
        return u, h, h @ self.h4toh.weight[e].T + self.h4toh.bias[e]


class Gate(nn.Module):
    def __init__(self, dim: int, experts: int):
        super().__init__()
        self.w_gate = nn.Parameter(torch.zeros(dim, experts))


class MoE(nn.Module):
    def __init__(self, dim: int, experts: int, top_k: int, hidden: int, tasks: int):
        super().__init__()
        self.top_k = top_k
        self.experts = Experts(experts, dim, hidden)
        self.gate = nn.ModuleList(Gate(dim, experts) for _ in range(tasks))

    def forward(self, x: torch.Tensor, task: int, rec: dict | None, p: str) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = x @ self.gate[task].w_gate
        probs = logits.softmax(dim=-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)  # not renormalized (M³ViT noisy_vmoe)
        out = torch.zeros_like(x)
        us, hs = [], []
        for e in range(self.gate[task].w_gate.shape[1]):
            rows, slot = torch.nonzero(top_i == e, as_tuple=True)
            if len(rows):
                u, h, y = self.experts(x[rows], e)
                out.index_add_(0, rows, y * top_p[rows, slot, None])
                us.append(u)
                hs.append(h)
        if rec is not None:
            rec[f"{p}.gate_logits"] = logits.reshape(*shape[:-1], -1)
            rec[f"{p}.gate_idx"] = top_i.reshape(*shape[:-1], -1)
            rec[f"{p}.fc1"], rec[f"{p}.hidden"] = torch.cat(us), torch.cat(hs)
        return out.reshape(shape)


class Block(nn.Module):
    def __init__(self, spec: Spec, i: int):
        super().__init__()
        m, e = spec.model, spec.moe
        self.norm1 = nn.LayerNorm(m.embed_dim, eps=m.ln_eps)
        self.attn = Attention(m.embed_dim, m.heads, m.qkv_bias)
        self.norm2 = nn.LayerNorm(m.embed_dim, eps=m.ln_eps)
        if spec.is_moe(i):
            self.mlp = MoE(m.embed_dim, e.experts, e.top_k, e.expert_hidden, len(spec.tasks))
        else:
            self.mlp = Mlp(m.embed_dim, m.mlp_hidden)

    def forward(self, x: torch.Tensor, task: int, rec: dict | None, p: str) -> torch.Tensor:
        a = self.norm1(x)
        x = x + self.attn(a, rec, p)
        if rec is not None:
            rec[f"{p}.ln1"], rec[f"{p}.res1"] = a, x
        a = self.norm2(x)
        x = x + self.mlp(a, task, rec, p)
        if rec is not None:
            rec[f"{p}.ln2"], rec[f"{p}.res2"] = a, x
        return x


class ViTMoE(nn.Module):
    """The float model of ``spec``; ``forward(pixels, task, rec)`` returns tokens [B, N, D]
    and, if ``rec`` is a dict, fills it with the float tensor at every golden trace point."""

    def __init__(self, spec: Spec):
        super().__init__()
        m = spec.model
        self.spec = spec
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(m.image.channels, m.embed_dim, m.patch, m.patch)
        if m.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, m.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, m.tokens, m.embed_dim))
        self.blocks = nn.ModuleList(Block(spec, i) for i in range(m.depth))
        if m.final_norm:
            self.norm = nn.LayerNorm(m.embed_dim, eps=m.ln_eps)
        mean = torch.tensor(m.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(m.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255.0 - self.pixel_mean) / self.pixel_std

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(self.normalize(pixels)).flatten(2).transpose(1, 2)
        if self.spec.model.class_token:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed

    def forward(self, pixels: torch.Tensor, task: int = 0, rec: dict | None = None):
        x = self.embed(pixels)
        if rec is not None:
            rec["embed"] = x
        for i, blk in enumerate(self.blocks):
            x = blk(x, task, rec, f"blocks.{i}")
        if self.spec.model.final_norm:
            x = self.norm(x)
            if rec is not None:
                rec["norm"] = x
        return x
