"""One-stream tracker model and its losses: shapes, decoding, heatmap, losses vs references, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torchvision
from timm.layers import resample_abs_pos_embed

from comba_vision.tracking.losses import TrackingLoss, focal_loss, gaussian_heatmap
from comba_vision.tracking.model import OneStreamTracker, decode, param_groups
from comba_vision.train.trainer import checkpoint_dict

T, S = 64, 128  # small sizes: 4x4 template grid, 8x8 search grid


def _tracker(**kw) -> OneStreamTracker:
    torch.manual_seed(0)
    kw = dict(dict(template_size=T, search_size=S), **kw)
    return OneStreamTracker("comba_micro", **kw)


def _images(batch: int = 2, t: int = T, s: int = S, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, t, t, generator=g), torch.randn(batch, 3, s, s, generator=g)


@pytest.fixture(scope="module")
def tracker() -> OneStreamTracker:
    return _tracker()


# ------------------------------------------------------------------ shapes and inputs
@pytest.mark.parametrize("sizes", [(T, S), (128, 256)], ids=["64-128", "default-128-256"])
def test_output_shapes_and_dtypes(sizes):
    t, s = sizes
    model = _tracker() if sizes == (T, S) else OneStreamTracker("comba_micro")  # default sizes 128 / 256
    assert (model.template_size, model.search_size) == (t, s)
    g = s // 16
    assert model.template_grid == (t // 16, t // 16) and model.search_grid == (g, g) and model.feat_size == g
    assert model.template_pos_embed.shape == (1, (t // 16) ** 2, 64)
    assert model.search_pos_embed.shape == (1, g * g, 64)
    model.eval()
    z, x = _images(2, t, s)
    with torch.no_grad():
        out = model(z, x)
    assert set(out) == {"score_map", "size_map", "offset_map", "pred_boxes"}
    assert out["score_map"].shape == (2, 1, g, g)
    assert out["size_map"].shape == (2, 2, g, g)
    assert out["offset_map"].shape == (2, 2, g, g)
    assert out["pred_boxes"].shape == (2, 4)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    assert out["score_map"].min() >= 1e-4 and out["score_map"].max() <= 1 - 1e-4
    assert out["size_map"].min() >= 0 and out["size_map"].max() <= 1
    assert torch.equal(out["pred_boxes"], decode(out["score_map"], out["size_map"], out["offset_map"]))
    assert model.forward_features(z, x).shape == (2, 64, g, g)


def test_constructor_and_input_errors(tracker):
    with pytest.raises(ValueError, match="multiple of the patch size"):
        OneStreamTracker("comba_micro", template_size=100, search_size=256)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        OneStreamTracker("comba_micro", template_size=128, search_size=250)
    z, x = _images()
    with pytest.raises(ValueError, match="3 channels"):
        tracker(z[:, :1], x)
    with pytest.raises(ValueError, match="3 channels"):
        tracker(z, torch.randn(2, 4, S, S))
    with pytest.raises(ValueError, match=f"{S}x{S}"):
        tracker(z, torch.randn(2, 3, S + 16, S + 16))
    with pytest.raises(ValueError, match=f"{T}x{T}"):
        tracker(torch.randn(2, 3, S, S), x)
    with pytest.raises(ValueError, match="batch sizes differ"):
        tracker(z[:1], x)
    with pytest.raises(ValueError, match=r"\[B, 3"):
        tracker(z[0], x)


def test_position_embeddings_initialised_from_backbone(tracker):
    bb = tracker.backbone
    assert not bb.pos_embed.requires_grad  # the source, not trained
    for param, grid in ((tracker.template_pos_embed, (4, 4)), (tracker.search_pos_embed, (8, 8))):
        ref = resample_abs_pos_embed(bb.pos_embed.detach(), new_size=list(grid), old_size=[14, 14], num_prefix_tokens=0)
        assert torch.allclose(param, ref)
    assert torch.equal(tracker.token_type_embed, torch.zeros(2, 64))
    plain = _tracker(token_type_embed=False)
    assert plain.token_type_embed is None and "token_type_embed" not in dict(plain.named_parameters())


# ------------------------------------------------------------------ decoding
def test_decode_single_peak_exact():
    B, H, W = 2, 8, 8
    score = torch.full((B, 1, H, W), 0.1)
    size = torch.rand(B, 2, H, W)
    offset = torch.rand(B, 2, H, W)
    peaks = [(5, 3), (0, 7)]  # (iy, ix)
    expected = []
    for b, (iy, ix) in enumerate(peaks):
        score[b, 0, iy, ix] = 0.9
        size[b, :, iy, ix] = torch.tensor([0.25, 0.5])
        offset[b, :, iy, ix] = torch.tensor([0.25, 0.75])
        expected.append([(ix + 0.25) / W, (iy + 0.75) / H, 0.25, 0.5])
    expected = torch.tensor(expected)
    assert torch.equal(decode(score, size, offset), expected)  # exact: all values are dyadic
    boxes, peak = decode(score[:, 0], size, offset, return_score=True)  # [B, H, W] score map accepted
    assert torch.equal(boxes, expected) and torch.equal(peak, torch.full((B,), 0.9))


def test_decode_non_square_and_errors():
    score = torch.zeros(1, 1, 4, 8)
    score[0, 0, 3, 6] = 1.0
    size = torch.full((1, 2, 4, 8), 0.5)
    offset = torch.full((1, 2, 4, 8), 0.5)
    assert torch.equal(decode(score, size, offset), torch.tensor([[6.5 / 8, 3.5 / 4, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="size_map"):
        decode(score, size[:, :, :2], offset)
    with pytest.raises(ValueError, match="score_map"):
        decode(torch.zeros(1, 2, 4, 8), size, offset)


# ------------------------------------------------------------------ heatmap
def _radius_np(w: float, h: float, min_overlap: float = 0.7) -> float:
    """CornerNet's three radii as OSTrack's get_gaussian_radius computes them (roots halved)."""
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - min_overlap) / (1 + min_overlap))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - min_overlap) * w * h)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _heatmap_np(box, size: int) -> np.ndarray:
    """CenterNet's draw_gaussian, written out cell by cell: window of radius r around the centre cell."""
    cx, cy, w, h = box
    x0 = min(max(int(math.floor(cx * size)), 0), size - 1)
    y0 = min(max(int(math.floor(cy * size)), 0), size - 1)
    r = int(max(_radius_np(w * size, h * size), 0))
    sigma = (2 * r + 1) / 6
    out = np.zeros((size, size))
    for y in range(size):
        for x in range(size):
            if abs(x - x0) <= r and abs(y - y0) <= r:
                out[y, x] = math.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    return out


def test_heatmap_matches_reference_formula():
    boxes = torch.tensor(
        [
            [0.5, 0.5, 0.25, 0.25],  # typical: 4x4 cells, radius 1
            [0.53, 0.47, 0.6, 0.45],  # large: radius 3
            [0.02, 0.97, 0.5, 0.7],  # at a corner: window cut by the border
            [0.3, 0.6, 0.01, 0.02],  # tiny: radius 0, a single positive cell
            [0.7, 0.2, 0.9, 0.9],  # very large
        ],
        dtype=torch.float64,
    )
    hm = gaussian_heatmap(boxes, size=16)
    assert hm.shape == (5, 1, 16, 16) and hm.dtype == torch.float64
    radii = []
    for i, box in enumerate(boxes.tolist()):
        ref = _heatmap_np(box, 16)
        np.testing.assert_allclose(hm[i, 0].numpy(), ref, rtol=1e-12, atol=1e-15)
        radii.append(int(_radius_np(box[2] * 16, box[3] * 16)))
    assert radii[0] == 1 and radii[3] == 0 and max(radii) >= 3  # the cases cover several radii
    assert (hm[3, 0] > 0).sum() == 1
    assert gaussian_heatmap(boxes[0].float(), size=16).shape == (1, 16, 16)  # one box -> [1, H, W]
    with pytest.raises(ValueError, match="NaN"):
        gaussian_heatmap(torch.tensor([[float("nan"), 0.5, 0.1, 0.1]]))
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        gaussian_heatmap(torch.rand(2, 5))


def test_heatmap_peak_and_symmetry():
    box = torch.tensor([[0.53, 0.47, 0.6, 0.6]])  # centre cell (8, 7), square box
    hm = gaussian_heatmap(box, size=16)[0, 0]
    assert hm[7, 8] == 1.0 and (hm == 1).sum() == 1 and hm.max() == 1.0
    r = int(_radius_np(0.6 * 16, 0.6 * 16))
    assert r == 2
    win = hm[7 - r : 7 + r + 1, 8 - r : 8 + r + 1]
    assert (win > 0).all() and hm.sum() == pytest.approx(win.sum())  # nothing outside the window
    assert torch.equal(win, win.flip(0)) and torch.equal(win, win.flip(1)) and torch.equal(win, win.T)
    # Gaussian profile along the axis: exp(-d^2 / (2 sigma^2)) with sigma = (2 r + 1) / 6
    sigma = (2 * r + 1) / 6
    for d in range(r + 1):
        assert win[r, r + d].item() == pytest.approx(math.exp(-d * d / (2 * sigma**2)), rel=1e-6)


# ------------------------------------------------------------------ losses
def _focal_np(p: np.ndarray, gt: np.ndarray) -> float:
    pos = gt == 1
    pos_loss = np.sum(np.log(p[pos]) * (1 - p[pos]) ** 2)
    neg_loss = np.sum(np.log(1 - p[~pos]) * p[~pos] ** 2 * (1 - gt[~pos]) ** 4)
    return -(pos_loss + neg_loss) / max(pos.sum(), 1)


def test_focal_loss_matches_numpy():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, size=(3, 1, 8, 8))
    gt = rng.uniform(0, 0.95, size=(3, 1, 8, 8))
    gt[0, 0, 2, 3] = gt[1, 0, 5, 5] = gt[2, 0, 0, 7] = gt[2, 0, 1, 1] = 1.0  # 4 positives
    got = focal_loss(torch.tensor(p, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32))
    assert got.item() == pytest.approx(_focal_np(p, gt), rel=1e-5)
    gt_none = np.minimum(gt, 0.9)  # no positives: normalised by 1
    got = focal_loss(torch.tensor(p, dtype=torch.float32), torch.tensor(gt_none[:, 0], dtype=torch.float32))
    assert got.item() == pytest.approx(_focal_np(p, gt_none), rel=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        focal_loss(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 4, 4))


def _giou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix1, iy1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    ix2, iy2 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    union = area(a) + area(b) - inter
    hull = (np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])) * (
        np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1])
    )
    return inter / union - (hull - union) / hull


def _cxcywh_to_xyxy_np(b: np.ndarray) -> np.ndarray:
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)


def test_tracking_loss_components_and_total():
    rng = np.random.default_rng(1)
    B = 4
    pred = np.concatenate([rng.uniform(0.2, 0.8, (B, 2)), rng.uniform(0.05, 0.5, (B, 2))], 1)
    gt = np.concatenate([rng.uniform(0.2, 0.8, (B, 2)), rng.uniform(0.05, 0.5, (B, 2))], 1)
    gt[0] = [0.9, 0.9, 0.5, 0.5]  # sticks out of the crop: clamped to [0, 1] as xyxy
    score = torch.tensor(rng.uniform(0.01, 0.99, (B, 1, 16, 16)), dtype=torch.float32)
    outputs = dict(score_map=score, pred_boxes=torch.tensor(pred, dtype=torch.float32))
    total, parts = TrackingLoss()(outputs, torch.tensor(gt, dtype=torch.float32))
    p_xyxy, g_xyxy = _cxcywh_to_xyxy_np(pred), np.clip(_cxcywh_to_xyxy_np(gt), 0, 1)
    assert parts["giou"].item() == pytest.approx(np.mean(1 - _giou_np(p_xyxy, g_xyxy)), rel=1e-5)
    tv = torchvision.ops.generalized_box_iou_loss(torch.tensor(p_xyxy), torch.tensor(g_xyxy), reduction="mean")
    assert parts["giou"].item() == pytest.approx(tv.item(), rel=1e-5)
    assert parts["l1"].item() == pytest.approx(np.abs(p_xyxy - g_xyxy).mean(), rel=1e-5)
    heat = gaussian_heatmap(torch.tensor(gt, dtype=torch.float32), size=16)
    assert parts["focal"].item() == pytest.approx(_focal_np(score.numpy().astype(np.float64), heat.numpy()), rel=1e-5)
    expected = 1 * parts["focal"] + 2 * parts["giou"] + 5 * parts["l1"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["total"].item() == pytest.approx(total.item()) and 0 <= parts["iou"].item() <= 1
    # weights, a given heatmap and another box format
    total2, parts2 = TrackingLoss(focal_weight=0.5, giou_weight=0, l1_weight=1, gt_format="xyxy")(
        outputs, torch.tensor(_cxcywh_to_xyxy_np(gt), dtype=torch.float32), gt_heatmap=heat
    )
    assert parts2["focal"].item() == pytest.approx(parts["focal"].item(), rel=1e-6)
    assert total2.item() == pytest.approx(0.5 * parts["focal"].item() + parts["l1"].item(), rel=1e-5)


def test_tracking_loss_is_finite_for_degenerate_boxes():
    pred = torch.tensor(
        [[0.5, 0.5, 0.0, 0.0], [float("nan"), 0.5, 0.2, 0.2], [0.5, float("inf"), 0.1, 0.1], [0.3, 0.3, -0.2, 0.1]],
        requires_grad=True,
    )
    score = torch.full((4, 1, 8, 8), 0.5, requires_grad=True)
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 4)
    total, parts = TrackingLoss()(dict(score_map=score, pred_boxes=pred), gt)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in parts.values())
    total.backward()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(score.grad).all()


# ------------------------------------------------------------------ gradients, one-stream
def test_gradient_reaches_every_trainable_parameter():
    model = _tracker().train()
    z, x = _images(2)
    out = model(z, x)
    total, _ = TrackingLoss()(out, torch.tensor([[0.5, 0.5, 0.25, 0.25], [0.4, 0.6, 0.3, 0.2]]))
    total.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["backbone.pos_embed"]
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"
    zero = [n for n, p in trainable if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


def test_search_output_depends_on_template(tracker):
    tracker.eval()
    z, x = _images(2)
    z2 = torch.roll(z, shifts=1, dims=0)  # the other sample's template
    with torch.no_grad():
        a, b = tracker(z, x), tracker(z2, x)
        c = tracker(z, x)
    assert torch.equal(a["score_map"], c["score_map"])  # deterministic
    assert (a["score_map"] - b["score_map"]).abs().amax(dim=(1, 2, 3)).min() > 1e-6  # every sample changed
    assert not torch.allclose(tracker.forward_features(z, x), tracker.forward_features(z2, x))


def test_grad_checkpointing_passthrough(tracker):
    tracker.eval()
    z, x = _images(1)
    ref = tracker(z, x)["score_map"]
    tracker.set_grad_checkpointing(True)
    try:
        assert tracker.backbone.grad_checkpointing
        assert torch.allclose(tracker(z, x)["score_map"], ref, atol=1e-6)  # grad enabled: checkpointed path
    finally:
        tracker.set_grad_checkpointing(False)
    assert not tracker.backbone.grad_checkpointing


# ------------------------------------------------------------------ backbone checkpoints
def _trainer_checkpoint(path, model_sd: dict, ema_sd: dict | None, best_source: str) -> None:
    """A checkpoint as tools/train_imagenet.py writes it (optimizer state etc. left empty)."""
    torch.save(checkpoint_dict(model_sd, num_classes=10, best_source=best_source, ema_sd=ema_sd, epoch=3, step=30,
                               best=dict(top1=50.0, epoch=3), rng=[dict(numpy=np.random.get_state())]), path)


@pytest.mark.parametrize("best_source", ["model", "ema"])
def test_backbone_checkpoint_round_trip(tmp_path, best_source):
    torch.manual_seed(1)
    clf = timm.create_model("comba_micro", num_classes=10)
    torch.manual_seed(2)
    ema = timm.create_model("comba_micro", num_classes=10)
    _trainer_checkpoint(tmp_path / "best.pth", clf.state_dict(), ema.state_dict(), best_source)
    src = ema if best_source == "ema" else clf
    model = _tracker()
    info = model.load_backbone_checkpoint(tmp_path / "best.pth")
    assert info["source"] == ("model_ema" if best_source == "ema" else "model")
    loaded = model.backbone.state_dict()
    want = {k: v for k, v in src.state_dict().items() if not k.startswith("head.")}
    assert set(loaded) == set(want)
    assert all(torch.equal(loaded[k], want[k]) for k in want)
    ref = resample_abs_pos_embed(src.pos_embed.detach(), new_size=[8, 8], old_size=[14, 14], num_prefix_tokens=0)
    assert torch.allclose(model.search_pos_embed, ref)
    ref = resample_abs_pos_embed(src.pos_embed.detach(), new_size=[4, 4], old_size=[14, 14], num_prefix_tokens=0)
    assert torch.allclose(model.template_pos_embed, ref)
    assert not model.backbone.pos_embed.requires_grad


def test_backbone_checkpoint_plain_state_dict_and_constructor(tmp_path):
    torch.manual_seed(3)
    clf = timm.create_model("comba_micro")
    torch.save({f"module.{k}": v for k, v in clf.state_dict().items()}, tmp_path / "plain.pth")  # DDP prefix
    model = _tracker(checkpoint=tmp_path / "plain.pth")
    assert torch.equal(model.backbone.blocks[0].mixer.qkv.weight, clf.blocks[0].mixer.qkv.weight)
    assert torch.equal(model.backbone.norm.weight, clf.norm.weight)


def test_backbone_checkpoint_errors(tmp_path):
    model = _tracker()
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        model.load_backbone_checkpoint(missing)
    wide = timm.create_model("comba_micro", embed_dim=32, num_classes=10)
    _trainer_checkpoint(tmp_path / "wide.pth", wide.state_dict(), None, "model")
    before = model.backbone.blocks[0].mixer.qkv.weight.clone()
    with pytest.raises(ValueError, match=r"(?s)does not fit backbone 'comba_micro'.*shape mismatches"):
        model.load_backbone_checkpoint(tmp_path / "wide.pth")
    assert torch.equal(model.backbone.blocks[0].mixer.qkv.weight, before)  # nothing half-loaded
    shallow = timm.create_model("comba_micro", depth=2)
    torch.save(shallow.state_dict(), tmp_path / "shallow.pth")
    with pytest.raises(ValueError, match="missing keys"):
        model.load_backbone_checkpoint(tmp_path / "shallow.pth")


# ------------------------------------------------------------------ optimizer groups
def test_param_groups(tracker):
    lr = 4e-4
    groups = param_groups(tracker, lr, backbone_lr_scale=0.1, weight_decay=0.05)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay"}
    for name, g in by_name.items():
        assert g["lr"] == pytest.approx(0.1 * lr if name.startswith("backbone") else lr)
        assert g["weight_decay"] == (0.0 if name.endswith("no_decay") else 0.05)
    # every trainable parameter in exactly one group, the frozen source pos_embed in none
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    names = {id(p): n for n, p in tracker.named_parameters()}
    assert set(ids) == {id(p) for p in tracker.parameters() if p.requires_grad}
    grouped = {names[id(p)]: g["name"] for g in groups for p in g["params"]}
    for n, p in tracker.named_parameters():
        if not p.requires_grad:
            continue
        is_backbone = n.startswith("backbone.") or n in ("template_pos_embed", "search_pos_embed")
        assert grouped[n].startswith("backbone" if is_backbone else "head"), n
        no_decay = p.ndim <= 1 or n.endswith("pos_embed") or n == "token_type_embed"
        assert grouped[n].endswith("no_decay") == no_decay, n
    for n in (
        "template_pos_embed",
        "search_pos_embed",
        "backbone.norm.weight",
        "backbone.blocks.0.mixer.qkv.bias",
        "head.score.0.1.weight",
        "token_type_embed",
    ):
        assert grouped[n].endswith("no_decay"), n
    assert grouped["backbone.blocks.0.mixer.qkv.weight"] == "backbone_decay"
    assert grouped["head.score.0.0.weight"] == "head_decay"
    opt = torch.optim.AdamW(groups, lr=lr)  # usable as is
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * lr)
    with pytest.raises(TypeError, match="OneStreamTracker"):
        param_groups(torch.nn.Linear(2, 2), lr)


# ------------------------------------------------------------------ timm ViT backbones (OSTrack's setting)
VIT = "deit_tiny_patch16_224"


def _vit_tracker(depth: int = 2, **kw) -> OneStreamTracker:
    torch.manual_seed(0)
    kw = dict(dict(template_size=T, search_size=S, depth=depth), **kw)
    return OneStreamTracker(VIT, **kw)


@pytest.fixture(scope="module")
def vit_tracker() -> OneStreamTracker:
    return _vit_tracker()


def _vit_reference(model: OneStreamTracker, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The one-stream ViT pass written out: conv patchify, own position + token-type embeddings, the blocks on
    the concatenated tokens (no class token), the final norm, the search tokens as a map."""
    bb = model.backbone
    w, b = bb.patch_embed.proj.weight, bb.patch_embed.proj.bias
    tz = torch.nn.functional.conv2d(z, w, b, stride=16).flatten(2).transpose(1, 2)
    tx = torch.nn.functional.conv2d(x, w, b, stride=16).flatten(2).transpose(1, 2)
    tz = tz + model.template_pos_embed + model.token_type_embed[0]
    tx = tx + model.search_pos_embed + model.token_type_embed[1]
    tokens = torch.cat([tz, tx], dim=1)
    for blk in bb.blocks:
        tokens = blk(tokens)
    tokens = bb.norm(tokens)[:, tz.shape[1] :]
    g = S // 16
    return tokens.transpose(1, 2).reshape(z.shape[0], -1, g, g)


def test_vit_backbone_shapes_and_joint_forward(vit_tracker):
    model = vit_tracker.eval()
    assert model.backbone_type == "vit" and model.embed_dim == 192 and len(model.backbone.blocks) == 2
    assert model.template_pos_embed.shape == (1, 16, 192) and model.search_pos_embed.shape == (1, 64, 192)
    z, x = _images(2)
    with torch.no_grad():
        out = model(z, x)
        feat = model.forward_features(z, x)
        ref = _vit_reference(model, z, x)
    assert out["score_map"].shape == (2, 1, 8, 8) and out["size_map"].shape == (2, 2, 8, 8)
    assert out["offset_map"].shape == (2, 2, 8, 8) and out["pred_boxes"].shape == (2, 4)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    assert feat.shape == (2, 192, 8, 8)
    torch.testing.assert_close(feat, ref, rtol=1e-5, atol=1e-6)
    # the class token takes no part: changing it changes nothing
    with torch.no_grad():
        saved = model.backbone.cls_token.clone()
        model.backbone.cls_token.normal_()
        try:
            assert torch.equal(model.forward_features(z, x), feat)
        finally:
            model.backbone.cls_token.copy_(saved)
        z2 = torch.roll(z, shifts=1, dims=0)
        assert not torch.allclose(model.forward_features(z2, x), feat)  # the template conditions the search


@pytest.mark.parametrize(
    "name, kwargs, prefix",
    [
        (VIT, {}, 1),  # class token with its own pos_embed row
        ("vit_tiny_patch16_224", dict(reg_tokens=2, no_embed_class=True), 3),  # no prefix rows in pos_embed
        ("vit_tiny_patch16_224", dict(class_token=False, reg_tokens=2, global_pool="avg"), 2),
    ],
    ids=["deit", "no-embed-class", "registers-avg"],
)
def test_vit_position_embeddings_from_the_patch_rows(name, kwargs, prefix):
    torch.manual_seed(0)
    model = OneStreamTracker(name, template_size=T, search_size=S, depth=1, **kwargs)
    bb = model.backbone
    assert bb.num_prefix_tokens == prefix
    pos = bb.pos_embed.detach()
    patch_rows = pos if bb.no_embed_class else pos[:, prefix:]
    assert patch_rows.shape[1] == 14 * 14
    for param, grid in ((model.template_pos_embed, [4, 4]), (model.search_pos_embed, [8, 8])):
        ref = resample_abs_pos_embed(patch_rows, new_size=grid, old_size=[14, 14], num_prefix_tokens=0)
        assert torch.allclose(param, ref)
    z, x = _images(1)
    out = model.eval()(z, x)
    assert out["score_map"].shape == (1, 1, 8, 8)


def test_vit_gradients_weight_decay_and_groups():
    model = _vit_tracker().train()
    z, x = _images(2)
    total, _ = TrackingLoss()(model(z, x), torch.tensor([[0.5, 0.5, 0.25, 0.25], [0.4, 0.6, 0.3, 0.2]]))
    total.backward()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["backbone.cls_token", "backbone.pos_embed"]  # unused class token, source pos_embed
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"
    zero = [n for n, p in trainable if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"
    # ViT's no_weight_decay names pos_embed, cls_token, reg_token, dist_token: only those that exist
    nwd = model.no_weight_decay()
    assert nwd == {"backbone.pos_embed", "backbone.cls_token", "template_pos_embed", "search_pos_embed",
                   "token_type_embed"}
    groups = param_groups(model, 1e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for _, p in trainable}
    grouped = {n: g["name"] for g in groups for n, p in model.named_parameters() if any(p is q for q in g["params"])}
    assert grouped["backbone.blocks.0.attn.qkv.weight"] == "backbone_decay"
    assert grouped["backbone.blocks.0.norm1.weight"] == "backbone_no_decay"
    assert grouped["search_pos_embed"] == "backbone_no_decay" and grouped["head.score.0.0.weight"] == "head_decay"


def test_vit_grad_checkpointing(vit_tracker, monkeypatch):
    import comba_vision.tracking.model as model_mod

    model = vit_tracker.eval()
    z, x = _images(1)
    ref = model(z, x)["score_map"]
    calls = []
    real = model_mod.activation_checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_mod, "activation_checkpoint", counting)
    model.set_grad_checkpointing(True)
    try:
        assert model.backbone.grad_checkpointing
        out = model(z, x)["score_map"]  # grad enabled: the checkpointed path, once per block
        assert len(calls) == len(model.backbone.blocks)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-7)
        out.sum().backward()
        assert model.backbone.blocks[0].attn.qkv.weight.grad is not None
    finally:
        model.set_grad_checkpointing(False)
        model.zero_grad(set_to_none=True)
    assert not model.backbone.grad_checkpointing


@pytest.mark.parametrize("wrap", ["plain", "trainer"])
def test_vit_backbone_checkpoint_round_trip(tmp_path, wrap):
    torch.manual_seed(5)
    src = timm.create_model(VIT, depth=2, num_classes=10, img_size=128)  # 8x8 pos_embed: resampled on load
    sd = src.state_dict()
    if wrap == "plain":
        torch.save({f"_orig_mod.{k}": v for k, v in sd.items()}, tmp_path / "vit.pth")  # torch.compile prefix
    else:
        _trainer_checkpoint(tmp_path / "vit.pth", {f"module.{k}": v for k, v in sd.items()}, None, "model")
    model = _vit_tracker()
    info = model.load_backbone_checkpoint(tmp_path / "vit.pth")
    assert info["source"] == ("state_dict" if wrap == "plain" else "model")
    loaded = model.backbone.state_dict()
    want = {k: v for k, v in sd.items() if not k.startswith("head.")}
    assert set(loaded) == set(want)
    assert all(torch.equal(loaded[k], want[k]) for k in want if k != "pos_embed")
    pos = resample_abs_pos_embed(sd["pos_embed"], new_size=[14, 14], old_size=[8, 8], num_prefix_tokens=1)
    assert torch.allclose(loaded["pos_embed"], pos)
    assert torch.equal(loaded["pos_embed"][:, :1], sd["pos_embed"][:, :1])  # the class row is kept apart
    ref = resample_abs_pos_embed(pos[:, 1:], new_size=[8, 8], old_size=[14, 14], num_prefix_tokens=0)
    assert torch.allclose(model.search_pos_embed, ref)
    assert not model.backbone.pos_embed.requires_grad and not model.backbone.cls_token.requires_grad


def test_vit_backbone_checkpoint_errors_and_unsupported_backbones(tmp_path):
    model = _vit_tracker()
    narrow = timm.create_model(VIT, depth=2, embed_dim=96, num_classes=10)
    _trainer_checkpoint(tmp_path / "narrow.pth", narrow.state_dict(), None, "model")
    before = model.backbone.blocks[0].attn.qkv.weight.clone()
    with pytest.raises(ValueError, match=rf"(?s)does not fit backbone '{VIT}'.*shape mismatches.*blocks\.0"):
        model.load_backbone_checkpoint(tmp_path / "narrow.pth")
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, before)  # nothing half-loaded
    torch.save(timm.create_model(VIT, depth=1).state_dict(), tmp_path / "shallow.pth")
    with pytest.raises(ValueError, match=r"missing keys, e\.g\. \['blocks\.1"):
        model.load_backbone_checkpoint(tmp_path / "shallow.pth")
    torch.save(timm.create_model("comba_micro", depth=2).state_dict(), tmp_path / "comba.pth")
    with pytest.raises(ValueError, match="(?s)missing keys.*unexpected keys.*could not be resampled"):
        model.load_backbone_checkpoint(tmp_path / "comba.pth")
    with pytest.raises(TypeError, match="not a Comba backbone or a timm VisionTransformer"):
        OneStreamTracker("resnet10t")
