"""Comba-ViT: ViT-style backbones of bidirectional Comba blocks (Comba-T / Comba-S), as timm models.

    import comba_vision, timm
    model = timm.create_model("comba_tiny", pretrained=True, pretrained_cfg_overlay=dict(file="ckpt.pth"))

Patch embedding (16x16), learned absolute position embedding (resampled for other input sizes), a stack
of ``CombaBlock`` s, final LayerNorm, global average pooling over the patch tokens, linear head. No class
token: a bidirectional recurrence has no privileged position (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import PatchEmbed, resample_abs_pos_embed, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch.utils.checkpoint import checkpoint

from ..layers.comba_mixer import (
    Branch,
    CombaBlock,
    Segments,
    add_norm,
    block_weight_casts,
    count_recurrence_macs,
    watched,
)
from ..layers.fused import FusedLayerNorm, gemm_patch_conv

__all__ = ["CombaViT", "count_macs", "unwrap_checkpoint"]


class CombaViT(nn.Module):
    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        head_dim_k: int | None = None,
        variant: str = "splr",
        d_init: float = 1.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        dynamic_img_size: bool = False,
        dynamic_img_pad: bool = False,
        mixer_recompute: bool = False,
    ):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 0
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            strict_img_size=not dynamic_img_size, dynamic_img_pad=dynamic_img_pad, output_fmt="NHWC")
        gemm_patch_conv(self.patch_embed.proj)  # on CUDA one GEMM over the patches (layers.fused.PatchConv2d)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            CombaBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop_rate,
                       drop_path=dpr[i], norm_layer=partial(FusedLayerNorm, eps=1e-6), head_dim_k=head_dim_k,
                       variant=variant, d_init=d_init, recompute=mixer_recompute)
            for i in range(depth)])
        reduction = self.patch_embed.feat_ratio() if hasattr(self.patch_embed, "feat_ratio") else patch_size
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=reduction) for i in range(depth)]
        # fused inside the package's CUDA graphs: under autocast its output is then in the autocast dtype (the
        # head and the tracker's layers cast to it anyway), where nn.LayerNorm returns float32
        self.norm = FusedLayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ timm model interface
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None):
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def set_input_size(self, img_size=None, patch_size=None):
        """Changes the nominal input size, resampling the position embedding to the new grid."""
        if patch_size is not None:
            raise ValueError("changing the patch size of a built model is not supported")
        old = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size=img_size)
        new = self.patch_embed.grid_size
        if tuple(new) != tuple(old):
            with torch.no_grad():
                pe = resample_abs_pos_embed(self.pos_embed, new_size=new, old_size=old, num_prefix_tokens=0)
            self.pos_embed = nn.Parameter(pe)

    # ------------------------------------------------------------------ forward
    def _pos_embed(self, x: torch.Tensor) -> tuple[torch.Tensor, Segments]:
        B, H, W, C = x.shape
        pos = self.pos_embed
        if (H, W) != tuple(self.patch_embed.grid_size):
            pos = resample_abs_pos_embed(pos, new_size=(H, W), old_size=self.patch_embed.grid_size,
                                         num_prefix_tokens=0)
        # the patch embedding's NHWC output is a permuted view of its convolution's NCHW output; made dense
        # here, once, so that the residual stream is not carried through every block in that transposed
        # layout (each LayerNorm then copied it and each residual add ran as a strided kernel)
        x = (x.reshape(B, H * W, C) + pos).contiguous()
        return self.pos_drop(x), [(H, W)]

    @staticmethod
    def _chained(blocks, checkpointing: bool) -> bool:
        """Whether the blocks run chained by their pending branch (CombaBlock.forward_pending, each residual add
        inside the next LayerNorm's kernel) rather than called as modules. Only for plain CombaBlocks (not
        wrapped: checkpoint or FSDP wrappers, per-block compilation) that no hook watches (forward, backward or
        global), and not under gradient checkpointing, whose block boundaries would then keep two tensors."""
        return not checkpointing and not watched() and all(type(b) is CombaBlock and not watched(b) for b in blocks)

    def _run_blocks(self, x: torch.Tensor, segments: Segments, blocks=None, take=()):
        """Runs the blocks: returns (s, m, taken), the last block's output being s + m (m None: s is the output),
        and taken the (s, m) of each block whose index is in take (chained or as modules: _chained)."""
        blocks = self.blocks if blocks is None else blocks
        ckpt = self.grad_checkpointing and not torch.jit.is_scripting() and torch.is_grad_enabled()
        chained = self._chained(blocks, ckpt)
        m, taken = None, []
        # chained: the weight casts of all blocks at once (blocks also cast their own where run alone)
        with block_weight_casts(blocks, x) if chained else nullcontext():
            for i, blk in enumerate(blocks):
                if chained:
                    x, m = blk.forward_pending(x, m, segments)
                else:
                    x = checkpoint(blk, x, segments, use_reentrant=False) if ckpt else blk(x, segments)
                if i in take:
                    taken.append((x, m))
        return x, m, taken

    @staticmethod
    def _close(x: torch.Tensor, m: Branch | None, norm: nn.Module | None = None) -> torch.Tensor:
        """The stream s + m (norm given: norm(s + m), the add inside the norm's kernel where it is fused)."""
        if m is None:
            return x if norm is None else norm(x)
        return x + m.merged() if norm is None else add_norm(norm, x, m)[1]

    def forward_tokens(self, x: torch.Tensor, segments: Segments, norm: bool = True) -> torch.Tensor:
        """Runs the blocks on a caller's token sequence.

        Args:
            x: ``[B, N, C]`` tokens, already embedded and with the caller's own position embeddings added.
            segments: the row-major patch grids that make up the sequence, in order, e.g.
                ``[(8, 8), (16, 16)]`` for a tracker's template and search tokens (``sum(h * w) == N``);
                the depthwise convolution mixes neighbours within each grid, the recurrence runs over the
                whole sequence in both directions.
            norm: apply the final LayerNorm.
        """
        x, m, _ = self._run_blocks(x, segments)
        return self._close(x, m, self.norm if norm else None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, segments = self._pos_embed(self.patch_embed(x))
        return self.forward_tokens(x, segments, norm=True)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """Features of selected blocks (timm's interface): ``NCHW`` maps or ``NLC`` token sequences."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        B = x.shape[0]
        x = self.patch_embed(x)
        Hg, Wg = x.shape[1:3]
        x, segments = self._pos_embed(x)
        blocks = self.blocks if not stop_early or torch.jit.is_scripting() else self.blocks[:max_index + 1]
        x, m, taken = self._run_blocks(x, segments, blocks, take_indices)
        intermediates = []
        for s, ms in taken:
            y = self._close(s, ms, self.norm if norm else None)
            if output_fmt == "NCHW":
                y = y.reshape(B, Hg, Wg, -1).permute(0, 3, 1, 2).contiguous()
            intermediates.append(y)
        if intermediates_only:
            return intermediates
        return self._close(x, m, self.norm), intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


def unwrap_checkpoint(checkpoint: dict) -> tuple[dict, str]:
    """``(state dict, where it came from)`` of a plain state dict or a training checkpoint.

    tools/train_imagenet.py checkpoints record which weights scored best (``best_source``: ``"model"`` or
    ``"ema"``) and that entry (``model`` / ``model_ema``) is taken, the other one if it is absent; other
    checkpoints: the first of ``state_dict_ema``, ``model_ema``, ``state_dict``, ``model`` that is a dict. A
    plain state dict is returned as is, with the source ``"state_dict"``. Keys are not changed.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint is a {type(checkpoint).__name__}, expected a state dict")
    preferred = {"ema": ("model_ema", "model"), "model": ("model", "model_ema")}.get(
        checkpoint.get("best_source"), ("state_dict_ema", "model_ema", "state_dict", "model"))
    for key in preferred:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key], key
    return checkpoint, "state_dict"


def checkpoint_filter_fn(state_dict: dict, model: CombaViT) -> dict:
    """Accepts plain state dicts and tools/train_imagenet.py checkpoints; resamples the position embedding."""
    state_dict, _ = unwrap_checkpoint(state_dict)
    out = {}
    for k, v in state_dict.items():
        k = k.removeprefix("module.").removeprefix("_orig_mod.")
        if k == "pos_embed" and v.shape != model.pos_embed.shape:
            v = resample_abs_pos_embed(v, new_size=model.patch_embed.grid_size, num_prefix_tokens=0)
        out[k] = v
    return out


def _create(variant: str, pretrained: bool = False, **kwargs) -> CombaViT:
    out_indices = kwargs.pop("out_indices", 3)
    weights = (kwargs.get("pretrained_cfg_overlay") or {}).get("file")
    if pretrained and weights and not os.path.isfile(weights):
        raise FileNotFoundError(f"pretrained weights file not found: {weights}")
    return build_model_with_cfg(
        CombaViT, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs)


@torch.no_grad()
def count_macs(model: nn.Module, img_size: int | tuple[int, int] = 224, in_chans: int = 3) -> int:
    """Multiply-adds of one image's forward pass, one multiply-add counted as one (fvcore's convention).

    Matrix products and convolutions are counted by ``torch.utils.flop_counter`` (FLOPs / 2); Comba's
    recurrence is counted by ``recurrence_macs`` (3 K V per token, head and direction) instead of by the
    chunked algorithm's own products. Works for any timm model (non-Comba models get no recurrence term).
    """
    from torch.utils.flop_counter import FlopCounterMode
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    x = torch.zeros(1, in_chans, *size)
    was_training = model.training
    model.eval()
    try:
        with count_recurrence_macs() as rec, FlopCounterMode(display=False) as fc:
            model(x)
    finally:
        model.train(was_training)
    return fc.get_total_flops() // 2 + rec[0]


def _cfg(**kwargs) -> dict[str, Any]:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj", "classifier": "head", "license": "apache-2.0", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "comba_micro": _cfg(),
    "comba_tiny": _cfg(),
    "comba_small": _cfg(),
})


@register_model
def comba_micro(pretrained: bool = False, **kwargs) -> CombaViT:
    """4 blocks of width 64, 2 heads: for tests and CPU demos."""
    args = dict(embed_dim=64, depth=4, num_heads=2, mlp_ratio=2.0)
    return _create("comba_micro", pretrained, **dict(args, **kwargs))


@register_model
def comba_tiny(pretrained: bool = False, **kwargs) -> CombaViT:
    """Comba-T: width 192, 12 blocks, 3 heads (K 32, V 64): 5.8M parameters."""
    args = dict(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0)
    return _create("comba_tiny", pretrained, **dict(args, **kwargs))


@register_model
def comba_small(pretrained: bool = False, **kwargs) -> CombaViT:
    """Comba-S: width 384, 12 blocks, 6 heads (K 32, V 64): 22.6M parameters."""
    args = dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0)
    return _create("comba_small", pretrained, **dict(args, **kwargs))
