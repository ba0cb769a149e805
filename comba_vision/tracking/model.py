"""One-stream (OSTrack-style) tracker on a Comba backbone (or, for comparison, a timm ViT).

    from comba_vision.tracking.model import OneStreamTracker, param_groups
    model = OneStreamTracker("comba_tiny", template_size=128, search_size=256)
    model.load_backbone_checkpoint("output/comba_tiny_in1k/best.pth")
    out = model(template, search)      # template [B, 3, 128, 128], search [B, 3, 256, 256]
    out["pred_boxes"]                  # [B, 4] normalised (cx, cy, w, h) in the search crop

The template and the search region are cut into 16x16 patches by the backbone's own patch embedding, each
gets its own learned absolute position embedding (both initialised from the backbone's ImageNet position
embedding, resampled to their grids) and, by default, a learned token-type embedding; the joint sequence
``[template tokens, search tokens]`` goes through the bidirectional Comba blocks in one stream
(``CombaViT.forward_tokens`` with ``segments=[template grid, search grid]``), so the template conditions
the search features in every block. The search tokens, reshaped to a feature map, are read by OSTrack's
CENTER head: a score map (where the target centre is), a size map (w, h normalised to the search crop) and
an offset map (the centre's sub-cell position), decoded at the score map's peak.

timm's plain ViTs (``VisionTransformer``: ``deit_tiny_patch16_224``, ``vit_small_patch16_224``, ...) plug in
the same way, as OSTrack uses them: patch tokens only (the class / register / distillation tokens and their
position-embedding rows are dropped), the joint sequence through ``pos_drop``, ``norm_pre``, every block and
``norm``.
"""

from __future__ import annotations

import os
from typing import Any

import timm
import torch
import torch.nn as nn
from timm.layers import PatchEmbed, resample_abs_pos_embed
from timm.models import vision_transformer as timm_vit
from torch.utils.checkpoint import checkpoint as activation_checkpoint

# importing comba_vit registers the Comba models
from ..models.comba_vit import CombaViT, checkpoint_filter_fn, unwrap_checkpoint

__all__ = ["CenterHead", "OneStreamTracker", "decode", "param_groups"]

SCORE_EPS = 1e-4  # the score map is clamped to [SCORE_EPS, 1 - SCORE_EPS] (OSTrack's _sigmoid)
# parts of a timm ViT the tracker does not use (prefix tokens, pooling, classifier): frozen, so that every
# trainable parameter gets a gradient (DDP runs without find_unused_parameters)
_VIT_UNUSED = ("cls_token", "reg_token", "dist_token", "fc_norm", "attn_pool", "head", "head_dist")


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


def _branch(in_ch: int, channels: int, out_ch: int) -> nn.Sequential:
    """in_ch -> channels -> channels/2 -> channels/4 -> channels/8 (3x3 conv-BN-ReLU each) -> 1x1 conv -> out."""
    widths = [in_ch, channels, channels // 2, channels // 4, channels // 8]
    layers = [_conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*layers, nn.Conv2d(widths[-1], out_ch, 1))


class CenterHead(nn.Module):
    """OSTrack's CENTER head: three conv branches on the search feature map ``[B, C, H, W]``.

    Returns float32 ``(score_map [B, 1, H, W], size_map [B, 2, H, W], offset_map [B, 2, H, W])``: the score map is
    a sigmoid clamped to ``[1e-4, 1 - 1e-4]``, the size map a sigmoid giving (w, h) as fractions of the
    search crop, the offset map the unconstrained (x, y) position of the centre within its cell.
    """

    def __init__(self, in_channels: int, channels: int = 256, score_prior: float = 0.1):
        super().__init__()
        if channels % 8 or channels < 8:
            raise ValueError(f"head channels must be a positive multiple of 8, got {channels}")
        self.in_channels = in_channels
        self.score = _branch(in_channels, channels, 1)
        self.size = _branch(in_channels, channels, 2)
        self.offset = _branch(in_channels, channels, 2)
        for p in self.parameters():  # OSTrack's initialisation of its box heads
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # CenterNet's prior on the score output (a focal-loss detector starts predicting "background")
        nn.init.constant_(self.score[-1].bias, -torch.log(torch.tensor((1 - score_prior) / score_prior)).item())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CenterHead expects [B, {self.in_channels}, H, W], got {list(x.shape)}")
        # float32 outputs, also under autocast: 1 - 1e-4 rounds to 1 in bfloat16, and box coordinates need
        # more than bfloat16's 8 bits
        score = torch.sigmoid(self.score(x).float()).clamp(SCORE_EPS, 1 - SCORE_EPS)
        size = torch.sigmoid(self.size(x).float())
        offset = self.offset(x).float()
        return score, size, offset


def decode(
    score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor, return_score: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Box at the peak of the score map, normalised ``(cx, cy, w, h)`` in the search crop, ``[B, 4]``.

    ``cx = (ix + offset_x) / W``, ``cy = (iy + offset_y) / H``, ``(w, h) = size_map`` at the peak cell
    ``(iy, ix) = argmax(score_map)``. The score map is used as given (inference may pass a Hann-windowed
    one), ``[B, 1, H, W]`` or ``[B, H, W]``; ``size_map`` and ``offset_map`` are ``[B, 2, H, W]`` with
    channels (w, h) and (x, y). The boxes are float32. With ``return_score`` also returns the peak value of the
    score map, ``[B]``.
    """
    if score_map.ndim == 3:
        score_map = score_map.unsqueeze(1)
    if score_map.ndim != 4 or score_map.shape[1] != 1:
        raise ValueError(f"score_map must be [B, 1, H, W] or [B, H, W], got {list(score_map.shape)}")
    B, _, H, W = score_map.shape
    for name, t in (("size_map", size_map), ("offset_map", offset_map)):
        if tuple(t.shape) != (B, 2, H, W):
            raise ValueError(f"{name} must be [{B}, 2, {H}, {W}] to match the score map, got {list(t.shape)}")
    peak, idx = score_map.flatten(1).max(dim=1)  # [B]
    gather_idx = idx.view(B, 1, 1).expand(B, 2, 1)
    size = size_map.flatten(2).gather(2, gather_idx).squeeze(2).float()  # [B, 2] (w, h)
    offset = offset_map.flatten(2).gather(2, gather_idx).squeeze(2).float()  # [B, 2] (x, y)
    ix = (idx % W).float()
    iy = torch.div(idx, W, rounding_mode="floor").float()
    cx = (ix + offset[:, 0]) / W
    cy = (iy + offset[:, 1]) / H
    boxes = torch.stack([cx, cy, size[:, 0], size[:, 1]], dim=1)
    return (boxes, peak) if return_score else boxes


class OneStreamTracker(nn.Module):
    """Comba (or ViT) backbone over ``[template tokens, search tokens]`` plus a CENTER head on the search tokens.

    Args:
        backbone: name of a Comba timm model (``comba_micro``, ``comba_tiny``, ``comba_small``) or of a timm
            plain ViT (a ``VisionTransformer``: ``deit_tiny_patch16_224``, ``deit_small_patch16_224``,
            ``vit_*_patch16_*``, ...; for comparison / plugging other backbones); it is created at its default
            ImageNet input size (224 -> a 14x14 grid for the Comba and DeiT models) so ImageNet checkpoints
            load unchanged, with ``num_classes=0`` (pretrained weights: pass ``checkpoint``).
        template_size: template crop side in pixels, a multiple of the patch size (16): 128 -> 8x8 tokens.
        search_size: search crop side in pixels, a multiple of the patch size: 256 -> 16x16 tokens.
        head_channels: width of the CENTER head's first conv (then /2, /4, /8).
        token_type_embed: add a learned per-stream embedding (one C-vector for template tokens, one for
            search tokens), initialised to zero so the pretrained features are unchanged at the start.
            The two position embeddings already differ once trained; this makes the stream explicit from
            the first step at the cost of 2 C parameters.
        checkpoint: optional path of a tools/train_imagenet.py checkpoint for the backbone
            (see ``load_backbone_checkpoint``).
        **backbone_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate=0.1``).

    Position embeddings: ``template_pos_embed`` ``[1, Ht*Wt, C]`` and ``search_pos_embed`` ``[1, Hs*Ws, C]``
    are separate learned parameters, both initialised by resampling (timm's ``resample_abs_pos_embed``,
    bicubic) the backbone's ImageNet position embedding to the template and search grids (OSTrack's
    ``pos_embed_z`` / ``pos_embed_x``). The backbone's own ``pos_embed`` is not used in the forward pass; it
    is frozen (``requires_grad=False``) and kept only as the source the two are (re-)initialised from.

    ViT backbones, as in OSTrack: only patch tokens enter the joint sequence; the class token (and register /
    distillation tokens) and their rows of ``pos_embed`` (when it has them, i.e. ``no_embed_class=False``) are
    dropped, the template / search embeddings are resampled from the patch rows, and the sequence runs
    through ``pos_drop``, ``norm_pre``, every block of ``blocks`` and ``norm``. The unused prefix tokens,
    ``fc_norm``, ``attn_pool`` and the classifier are frozen. ``backbone_type`` is ``"comba"`` or ``"vit"``.
    """

    def __init__(
        self,
        backbone: str = "comba_tiny",
        template_size: int = 128,
        search_size: int = 256,
        head_channels: int = 256,
        token_type_embed: bool = True,
        checkpoint: str | os.PathLike | None = None,
        **backbone_kwargs: Any,
    ):
        super().__init__()
        self.backbone_name = backbone
        self.backbone: CombaViT | timm_vit.VisionTransformer = timm.create_model(
            backbone, num_classes=0, **backbone_kwargs
        )
        if isinstance(self.backbone, CombaViT) and hasattr(self.backbone, "forward_tokens"):
            self.backbone_type = "comba"
        elif isinstance(self.backbone, timm_vit.VisionTransformer):
            self.backbone_type = "vit"
            if self.backbone.pos_embed is None or not isinstance(self.backbone.patch_embed, PatchEmbed):
                raise TypeError(
                    f"{backbone!r}: a ViT backbone needs a learned absolute position embedding and a plain "
                    f"PatchEmbed (got pos_embed {'None' if self.backbone.pos_embed is None else 'set'}, "
                    f"{type(self.backbone.patch_embed).__name__})"
                )
        else:
            raise TypeError(
                f"{backbone!r} is not a Comba backbone or a timm VisionTransformer (got {type(self.backbone).__name__})"
            )
        pe = self.backbone.patch_embed
        self.patch_size = int(pe.patch_size[0])
        if pe.patch_size[0] != pe.patch_size[1]:
            raise ValueError(f"square patches expected, the backbone has {tuple(pe.patch_size)}")
        self.in_chans = int(pe.proj.in_channels)
        self.embed_dim = C = self.backbone.embed_dim
        for name, size in (("template_size", template_size), ("search_size", search_size)):
            if not isinstance(size, int) or size <= 0 or size % self.patch_size:
                raise ValueError(
                    f"{name} must be a positive multiple of the patch size {self.patch_size}, got {size!r}"
                )
        self.template_size, self.search_size = template_size, search_size
        self.template_grid = (template_size // self.patch_size,) * 2
        self.search_grid = (search_size // self.patch_size,) * 2
        self.feat_size = self.search_grid[0]
        self.backbone.pos_embed.requires_grad_(False)
        if self.backbone_type == "vit":
            for name in _VIT_UNUSED:
                part = getattr(self.backbone, name, None)
                if isinstance(part, (nn.Parameter, nn.Module)):
                    part.requires_grad_(False)
        self.template_pos_embed = nn.Parameter(torch.zeros(1, self.template_grid[0] * self.template_grid[1], C))
        self.search_pos_embed = nn.Parameter(torch.zeros(1, self.search_grid[0] * self.search_grid[1], C))
        self.token_type_embed = nn.Parameter(torch.zeros(2, C)) if token_type_embed else None
        self.head = CenterHead(C, head_channels)
        self.reset_pos_embeds()
        if checkpoint is not None:
            self.load_backbone_checkpoint(checkpoint)

    # ------------------------------------------------------------------ parameters
    def _patch_pos_embed(self) -> torch.Tensor:
        """The backbone's position embedding of its patch grid, ``[1, H*W, C]`` (a ViT's prefix rows dropped)."""
        pos = self.backbone.pos_embed
        if self.backbone_type == "vit" and not self.backbone.no_embed_class:
            pos = pos[:, self.backbone.num_prefix_tokens :]
        return pos

    @torch.no_grad()
    def reset_pos_embeds(self) -> None:
        """(Re-)initialises the template and search position embeddings from the backbone's ``pos_embed``."""
        src = self._patch_pos_embed().detach()
        old = tuple(self.backbone.patch_embed.grid_size)
        for param, grid in ((self.template_pos_embed, self.template_grid), (self.search_pos_embed, self.search_grid)):
            new = (
                src
                if tuple(grid) == old
                else resample_abs_pos_embed(src, new_size=list(grid), old_size=list(old), num_prefix_tokens=0)
            )
            param.copy_(new.to(param.dtype))

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names (in this module) of the parameters that get no weight decay beyond the 1-D ones."""
        own = dict(self.named_parameters())
        names = {f"backbone.{n}" for n in self.backbone.no_weight_decay() if f"backbone.{n}" in own}
        names |= {"template_pos_embed", "search_pos_embed"}
        if self.token_type_embed is not None:
            names.add("token_type_embed")
        return names

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of every backbone block (sets ``backbone.grad_checkpointing``)."""
        self.backbone.set_grad_checkpointing(enable)

    def load_backbone_checkpoint(self, path: str | os.PathLike, weights_only: bool = False) -> dict[str, Any]:
        """Loads backbone weights from a tools/train_imagenet.py checkpoint or a plain state dict.

        The weights are picked as ``CombaViT``'s own ``checkpoint_filter_fn`` picks them (``unwrap_checkpoint``:
        a trainer checkpoint's ``model_ema`` when its ``best_source`` is ``"ema"``, else ``model``),
        ``module.`` / ``_orig_mod.`` prefixes are stripped and ``pos_embed`` is resampled to the backbone grid
        (Comba: ``comba_vit.checkpoint_filter_fn``; ViT: timm's ``vision_transformer.checkpoint_filter_fn``,
        which keeps the prefix-token rows apart); the classifier (``head.*``, ``head_dist.*``) is dropped, every
        other key must fit the backbone exactly, and the template / search position embeddings are
        re-initialised from the loaded ``pos_embed``. Trainer checkpoints hold NumPy RNG states, hence
        ``weights_only=False`` by default: load only checkpoints you trust.

        Returns ``{"path", "source", "num_tensors"}`` (``source``: which weights were loaded).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the checkpoint is not a state dict, or its tensors do not fit this backbone.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"backbone checkpoint not found: {path}")
        ck = torch.load(path, map_location="cpu", weights_only=weights_only)
        if not isinstance(ck, dict):
            raise ValueError(f"{path}: expected a checkpoint dict or a state dict, got {type(ck).__name__}")
        resample_error = None
        raw, source = unwrap_checkpoint(ck)
        if self.backbone_type == "comba":
            state = checkpoint_filter_fn(raw, self.backbone)
        else:
            state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in raw.items()}
            try:
                state = timm_vit.checkpoint_filter_fn(state, self.backbone)
            except (RuntimeError, ValueError) as e:  # e.g. a pos_embed without this model's prefix rows
                resample_error = f"{type(e).__name__}: {str(e)[:200]}"
        classifier = ("head.",) if self.backbone_type == "comba" else ("head.", "head_dist.")
        state = {k: v for k, v in state.items() if not k.startswith(classifier)}
        own = self.backbone.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mismatched = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs backbone {tuple(own[k].shape)}"
            for k in own
            if k in state and tuple(state[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or mismatched or resample_error:
            lines = [
                f"{path} does not fit backbone {self.backbone_name!r} (embed_dim {self.embed_dim}, "
                f"depth {len(self.backbone.blocks)}):"
            ]
            if mismatched:
                lines.append(f"  {len(mismatched)} shape mismatches, e.g. " + "; ".join(mismatched[:5]))
            if missing:
                lines.append(f"  {len(missing)} missing keys, e.g. {missing[:5]}")
            if unexpected:
                lines.append(f"  {len(unexpected)} unexpected keys, e.g. {unexpected[:5]}")
            if resample_error:
                lines.append(f"  its pos_embed could not be resampled to the backbone grid ({resample_error})")
            raise ValueError("\n".join(lines))
        self.backbone.load_state_dict(state, strict=True)
        self.reset_pos_embeds()
        return {"path": path, "source": source, "num_tensors": len(state)}

    # ------------------------------------------------------------------ forward
    def _check_input(self, name: str, x: torch.Tensor, size: int) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a [B, {self.in_chans}, {size}, {size}] tensor, got {shape}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{name} must have {self.in_chans} channels, got {x.shape[1]} ({list(x.shape)})")
        if tuple(x.shape[2:]) != (size, size):
            raise ValueError(
                f"{name} must be {size}x{size} pixels (the model's {name} size), got {x.shape[2]}x{x.shape[3]}"
            )

    def _embed(self, img: torch.Tensor) -> torch.Tensor:
        pe = self.backbone.patch_embed
        x = pe.proj(img).flatten(2).transpose(1, 2)  # [B, N, C], row-major grid
        return pe.norm(x)

    def forward_features(self, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Search-region feature map ``[B, C, Hs, Ws]`` after the joint (one-stream) backbone pass."""
        self._check_input("template", template, self.template_size)
        self._check_input("search", search, self.search_size)
        if template.shape[0] != search.shape[0]:
            raise ValueError(f"template and search batch sizes differ: {template.shape[0]} vs {search.shape[0]}")
        z = self._embed(template) + self.template_pos_embed
        x = self._embed(search) + self.search_pos_embed
        if self.token_type_embed is not None:
            z = z + self.token_type_embed[0]
            x = x + self.token_type_embed[1]
        tokens = self.backbone.pos_drop(torch.cat([z, x], dim=1))
        if self.backbone_type == "comba":
            tokens = self.backbone.forward_tokens(tokens, segments=[self.template_grid, self.search_grid], norm=True)
        else:
            tokens = self._vit_tokens(tokens)
        Hs, Ws = self.search_grid
        x = tokens[:, -Hs * Ws :]
        return x.transpose(1, 2).reshape(x.shape[0], self.embed_dim, Hs, Ws)

    def _vit_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """A ViT backbone's blocks on the joint sequence (after ``pos_drop``): ``norm_pre``, blocks, ``norm``."""
        bb = self.backbone
        tokens = bb.norm_pre(tokens)
        ckpt = bb.grad_checkpointing and not torch.jit.is_scripting() and torch.is_grad_enabled()
        for blk in bb.blocks:
            tokens = activation_checkpoint(blk, tokens, use_reentrant=False) if ckpt else blk(tokens)
        return bb.norm(tokens)

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        """``template [B, 3, T, T]``, ``search [B, 3, S, S]`` (normalised images) -> dict of

        ``score_map [B, 1, S/16, S/16]``, ``size_map [B, 2, S/16, S/16]``, ``offset_map [B, 2, S/16, S/16]``
        and ``pred_boxes [B, 4]``: normalised (cx, cy, w, h) in the search crop, decoded at the score peak.
        """
        feat = self.forward_features(template, search)
        score_map, size_map, offset_map = self.head(feat)
        return dict(
            score_map=score_map,
            size_map=size_map,
            offset_map=offset_map,
            pred_boxes=decode(score_map, size_map, offset_map),
        )


def param_groups(
    model: nn.Module, lr: float, backbone_lr_scale: float = 0.1, weight_decay: float = 0.05
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for a ``OneStreamTracker`` (or a DDP / compiled wrapper of one).

    The backbone (``backbone.*`` and the template / search position embeddings, which are initialised from
    pretrained weights) trains at ``lr * backbone_lr_scale``; the head and the token-type embedding at ``lr``.
    No weight decay for 1-D parameters (biases, norms, per-head scalars) and for the names in
    ``model.no_weight_decay()`` (position embeddings, token-type embedding). Frozen parameters are left out.
    Empty groups are dropped; each group carries a ``name`` for logging. The learning rates are absolute
    (no ``lr_scale`` key), so timm schedulers scale each group from its own initial lr.
    """
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    if not isinstance(inner, OneStreamTracker):
        raise TypeError(f"param_groups expects a OneStreamTracker, got {type(inner).__name__}")
    skip = inner.no_weight_decay()
    backbone_names = {"template_pos_embed", "search_pos_embed"}
    groups = {key: [] for key in ("backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay")}
    for name, p in inner.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if name.startswith("backbone.") or name in backbone_names else "head"
        decay = "no_decay" if p.ndim <= 1 or name in skip else "decay"
        groups[f"{part}_{decay}"].append(p)
    out = []
    for key, params in groups.items():
        if params:
            scale = backbone_lr_scale if key.startswith("backbone") else 1.0
            out.append(
                dict(
                    name=key,
                    params=params,
                    lr=lr * scale,
                    weight_decay=0.0 if key.endswith("no_decay") else weight_decay,
                )
            )
    return out
