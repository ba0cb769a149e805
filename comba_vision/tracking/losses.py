"""Training losses of the one-stream tracker (OSTrack's): focal loss on a Gaussian centre heatmap, GIoU and L1.

    from comba_vision.tracking.losses import TrackingLoss
    criterion = TrackingLoss()                           # 1 * focal + 2 * GIoU + 5 * L1
    total, parts = criterion(model(template, search), gt_boxes)   # gt_boxes [B, 4] normalised cx, cy, w, h

Boxes are normalised to the search crop (0..1). The GIoU and L1 terms compare the predicted box (decoded
at the score map's peak) with the ground truth, both as ``xyxy`` (OSTrack's choice for both terms).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.ops import box_convert, box_iou, generalized_box_iou_loss

__all__ = ["TrackingLoss", "focal_loss", "gaussian_heatmap", "gaussian_radius"]


def gaussian_radius(w: torch.Tensor, h: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet's Gaussian radius for a box of size (w, h) in heatmap cells, as CenterNet and OSTrack use it.

    The smallest of the three radii of CornerNet's corner-perturbation cases (both corners moved inwards,
    outwards, one of each) for which the perturbed box keeps IoU >= ``min_overlap``, in the form OSTrack's
    ``CenterNetHeatMap.get_gaussian_radius`` computes them (its quadratic roots are divided by 2, not
    2a, the widespread "bug version" CenterNet trained with; kept so the targets match OSTrack's).
    """
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt((b1**2 - 4 * c1).clamp_min(0))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt((b2**2 - 16 * c2).clamp_min(0))) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt((b3**2 - 4 * a3 * c3).clamp_min(0))) / 2
    return torch.minimum(r1, torch.minimum(r2, r3))


def gaussian_heatmap(
    boxes: torch.Tensor, size: int | tuple[int, int] = 16, sigma_factor: float = 1 / 6, min_overlap: float = 0.7
) -> torch.Tensor:
    """CenterNet-style ground-truth heatmap of the target centre (OSTrack's ``generate_heatmap``).

    Args:
        boxes: ``[B, 4]`` (or ``[4]``) normalised ``(cx, cy, w, h)`` in the search crop.
        size: heatmap side (or ``(H, W)``), the search grid: 16 for a 256-pixel crop and 16-pixel patches.
        sigma_factor: the Gaussian's sigma as a fraction of its window's diameter ``2 r + 1``
            (CenterNet: 1/6, i.e. the window spans +-3 sigma).
        min_overlap: IoU that sets the radius ``r`` (``gaussian_radius``, CenterNet / OSTrack: 0.7).

    Returns:
        ``[B, 1, H, W]`` (``[1, H, W]`` for one box) in the boxes' floating dtype: for each box
        ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` over the cells within ``r = int(gaussian_radius(w H, h W))``
        cells (Chebyshev distance) of the centre cell, 0 elsewhere; exactly 1 at the centre cell, the only
        cell equal to 1 (the focal loss's positive).

    The centre cell is the cell that contains the centre, ``(floor(cx W), floor(cy H))``, clamped into the
    map, so that the decoded ``cx = (ix + offset_x) / W`` needs an offset in ``[0, 1)``. (OSTrack rounds the
    centre instead, i.e. offsets in ``[-0.5, 0.5)``; this module's ``decode`` works with either.) The
    Gaussian is centred on that cell's index, not at the sub-cell centre, as in CenterNet. OSTrack also
    zeroes values below machine epsilon; this only matters for radii of 10+ cells and is not done here.
    """
    single = boxes.ndim == 1
    if single:
        boxes = boxes.unsqueeze(0)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [B, 4] or [4] normalised (cx, cy, w, h), got {list(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        raise ValueError("boxes contain NaN or inf")
    H, W = (size, size) if isinstance(size, int) else tuple(size)
    if H < 1 or W < 1:
        raise ValueError(f"heatmap size must be positive, got {size}")
    if sigma_factor <= 0:
        raise ValueError(f"sigma_factor must be positive, got {sigma_factor}")
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    b = boxes.detach().to(torch.float64)
    cx_cell = (b[:, 0] * W).floor().clamp(0, W - 1)
    cy_cell = (b[:, 1] * H).floor().clamp(0, H - 1)
    radius = gaussian_radius(b[:, 2].clamp_min(0) * W, b[:, 3].clamp_min(0) * H, min_overlap)
    radius = radius.clamp_min(0).floor()  # int() of a non-negative radius
    sigma = sigma_factor * (2 * radius + 1)
    xs = torch.arange(W, dtype=torch.float64, device=b.device)
    ys = torch.arange(H, dtype=torch.float64, device=b.device)
    dx = xs[None, None, :] - cx_cell[:, None, None]  # [B, 1, W]
    dy = ys[None, :, None] - cy_cell[:, None, None]  # [B, H, 1]
    r, s = radius[:, None, None], sigma[:, None, None]
    g = torch.exp(-(dx**2 + dy**2) / (2 * s**2))
    g = g * ((dx.abs() <= r) & (dy.abs() <= r))
    out = g.unsqueeze(1).to(dtype)  # [B, 1, H, W]
    return out[0] if single else out


def focal_loss(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss (OSTrack's ``FocalLoss``), summed over the batch.

    ``-(sum_{gt == 1} (1 - p)^2 log p + sum_{gt < 1} (1 - gt)^4 p^2 log(1 - p)) / max(num_pos, 1)``,
    with ``num_pos`` the number of cells where ``gt == 1`` over the whole batch. ``pred`` is clamped to
    ``[eps, 1 - eps]`` and the loss computed in float32. ``gt`` must have ``pred``'s number of elements
    (e.g. ``[B, H, W]`` for a ``[B, 1, H, W]`` prediction).
    """
    if gt.numel() != pred.numel():
        raise ValueError(f"heatmap {list(gt.shape)} does not match the score map {list(pred.shape)}")
    p = pred.float().clamp(eps, 1 - eps)
    gt = gt.reshape(pred.shape).float()
    pos = gt.eq(1).float()
    neg = 1.0 - pos
    pos_loss = (torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - p) * p**2 * (1 - gt) ** 4 * neg).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp_min(1.0)


def _sanitize_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Non-finite coordinates replaced (NaN -> 0, +inf -> 2, -inf -> -1), then x2 >= x1 and y2 >= y1 enforced.

    Finite coordinates are not clamped, so a box that has drifted out of the crop still gets a gradient.
    """
    boxes = torch.nan_to_num(boxes, nan=0.0, posinf=2.0, neginf=-1.0)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1, y1, torch.maximum(x2, x1), torch.maximum(y2, y1)], dim=-1)


class TrackingLoss(nn.Module):
    """``focal_weight * focal + giou_weight * GIoU + l1_weight * L1`` (OSTrack: 1, 2, 5).

    ``forward(outputs, gt_boxes, gt_heatmap=None) -> (total, parts)``:

    * ``outputs``: the tracker's dict (``score_map [B, 1, H, W]``, ``pred_boxes [B, 4]`` normalised cxcywh).
    * ``gt_boxes``: ``[B, 4]`` normalised boxes in the search crop, in ``gt_format`` (``"cxcywh"``,
      ``"xywh"`` or ``"xyxy"``, torchvision's names); clamped to ``[0, 1]`` as ``xyxy``, as in OSTrack.
    * ``gt_heatmap``: optional precomputed ``gaussian_heatmap``; built from ``gt_boxes`` when ``None``.
    * ``total``: scalar tensor with gradient; ``parts``: detached scalar tensors ``focal``, ``giou``
      (mean ``1 - GIoU``), ``l1`` (mean absolute error of the four ``xyxy`` coordinates), ``iou`` (mean
      IoU, for logging) and ``total``.

    GIoU uses ``torchvision.ops.generalized_box_iou_loss``; predicted boxes are made valid ``xyxy`` first
    (NaN/inf replaced, ``x2 >= x1``, ``y2 >= y1``), so degenerate predictions give finite losses.
    """

    def __init__(
        self,
        focal_weight: float = 1.0,
        giou_weight: float = 2.0,
        l1_weight: float = 5.0,
        gt_format: str = "cxcywh",
        sigma_factor: float = 1 / 6,
        min_overlap: float = 0.7,
    ):
        super().__init__()
        if gt_format not in ("cxcywh", "xywh", "xyxy"):
            raise ValueError(f"gt_format must be 'cxcywh', 'xywh' or 'xyxy', got {gt_format!r}")
        self.focal_weight, self.giou_weight, self.l1_weight = focal_weight, giou_weight, l1_weight
        self.gt_format = gt_format
        self.sigma_factor, self.min_overlap = sigma_factor, min_overlap

    def forward(
        self, outputs: dict[str, torch.Tensor], gt_boxes: torch.Tensor, gt_heatmap: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        score_map, pred_boxes = outputs["score_map"], outputs["pred_boxes"]
        B = pred_boxes.shape[0]
        if tuple(pred_boxes.shape) != (B, 4) or tuple(gt_boxes.shape) != (B, 4):
            raise ValueError(
                f"pred_boxes and gt_boxes must both be [B, 4], got {list(pred_boxes.shape)} and {list(gt_boxes.shape)}"
            )
        gt = gt_boxes.float()
        if gt_heatmap is None:
            gt_heatmap = gaussian_heatmap(
                box_convert(gt, self.gt_format, "cxcywh"),
                size=tuple(score_map.shape[-2:]),
                sigma_factor=self.sigma_factor,
                min_overlap=self.min_overlap,
            )
        focal = focal_loss(score_map, gt_heatmap)
        pred_xyxy = _sanitize_xyxy(box_convert(pred_boxes.float(), "cxcywh", "xyxy"))
        gt_xyxy = box_convert(gt, self.gt_format, "xyxy").clamp(0.0, 1.0)
        giou = generalized_box_iou_loss(pred_xyxy, gt_xyxy, reduction="mean")
        l1 = (pred_xyxy - gt_xyxy).abs().mean()
        total = self.focal_weight * focal + self.giou_weight * giou + self.l1_weight * l1
        with torch.no_grad():
            iou = box_iou(pred_xyxy, gt_xyxy).diagonal().mean()
        parts = dict(focal=focal.detach(), giou=giou.detach(), l1=l1.detach(), iou=iou, total=total.detach())
        return total, parts
