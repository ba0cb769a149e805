"""Inference (CombaTracker): exact crop-to-frame mapping with a stub network, Hann window, clipping, a real model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from comba_vision.tracking.config import TrackConfig
from comba_vision.tracking.datasets import Got10k
from comba_vision.tracking.model import OneStreamTracker
from comba_vision.tracking.processing import crop_around, normalize_crop
from comba_vision.tracking.tracker import CombaTracker, clip_box, hann1d, hann2d

from .layouts import make_got10k_layout

T, S, G = 64, 128, 8  # template / search sizes and the search grid (16-pixel patches)


class StubNet(nn.Module):
    """Deterministic stand-in for OneStreamTracker: fixed maps, with score peaks at chosen cells."""

    def __init__(self, peaks, size=(0.25, 0.125), offset=(0.3, 0.7), background=0.1):
        super().__init__()
        self.template_size, self.search_size, self.feat_size = T, S, G
        score = torch.full((1, 1, G, G), background)
        for iy, ix, value in peaks:
            score[0, 0, iy, ix] = value
        self.register_buffer("score", score)
        self.register_buffer("size", torch.tensor(size, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, G, G))
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, G, G))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append((template.clone(), search.clone()))
        b = search.shape[0]
        return dict(
            score_map=self.score.expand(b, -1, -1, -1),
            size_map=self.size.expand(b, -1, -1, -1).contiguous(),
            offset_map=self.offset.expand(b, -1, -1, -1).contiguous(),
        )


def _frame(height=150, width=200, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _expected_box(prev_box, cell, size, offset, search_factor=4.0):
    """The frame box for a peak at ``cell`` = (iy, ix), computed from the crop geometry by hand: the search crop
    is a square of side sqrt(w h) * factor centred on the previous box, and S crop pixels span that side."""
    x, y, w, h = prev_box
    side = math.sqrt(w * h) * search_factor
    x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
    px = side / S  # frame pixels per crop pixel
    cx = x0 + (cell[1] + offset[0]) / G * S * px
    cy = y0 + (cell[0] + offset[1]) / G * S * px
    bw, bh = size[0] * S * px, size[1] * S * px
    return np.array([cx - bw / 2, cy - bh / 2, bw, bh])


def test_hann_window_is_ostracks():
    w = hann1d(8)
    ref = [0.5 * (1 - math.cos(2 * math.pi * k / 9)) for k in range(1, 9)]
    assert np.allclose(w.numpy(), ref, atol=1e-7)
    win = hann2d(8, 8)
    assert win.shape == (1, 1, 8, 8)
    assert torch.allclose(win[0, 0], torch.outer(w, w))
    assert torch.allclose(win, win.flip(-1)) and torch.allclose(win, win.flip(-2))  # symmetric
    assert win[0, 0, 3:5, 3:5].min() == win.max()  # peak at the centre cells


def test_clip_box_like_ostrack():
    assert np.allclose(clip_box([10, 20, 30, 40], 100, 200), [10, 20, 30, 40])  # inside: unchanged
    assert np.allclose(clip_box([-5, -8, 30, 40], 100, 200), [0, 0, 25, 32])  # cut at the top-left
    assert np.allclose(clip_box([190, 95, 30, 40], 100, 200), [190, 90, 10, 10])  # cut, kept >= 10 px
    assert np.allclose(clip_box([50, 50, 2, 3], 100, 200), [50, 50, 10, 10])  # minimum size
    assert np.allclose(clip_box([500, 500, 20, 20], 100, 200), [190, 90, 10, 10])  # left the image
    assert np.allclose(clip_box([50, 50, 2, 3], 100, 200, margin=1), [50, 50, 2, 3])


def test_stub_peak_maps_back_to_the_exact_frame_box():
    frame = _frame()
    init = np.array([60.0, 40.0, 30.0, 20.0])
    cell, size, offset = (2, 5), (0.25, 0.125), (0.25, 0.75)  # exact in float32 (decode's dtype)
    net = StubNet([(*cell, 0.9)], size=size, offset=offset)
    tracker = CombaTracker(net, device="cpu")
    tracker.initialize(frame, init)
    box = tracker.track(frame)
    expected = _expected_box(init, cell, size, offset)
    assert np.allclose(box, expected, rtol=0, atol=1e-9), (box, expected)
    assert np.allclose(tracker.state, expected) and tracker.last_score == pytest.approx(0.9)
    # the network saw the template crop of the first box and the search crop around it
    template, search = net.calls[0]
    assert template.shape == (1, 3, T, T) and search.shape == (1, 3, S, S)
    assert torch.equal(template[0], normalize_crop(crop_around(frame, init, 2.0, T)[0]))
    assert torch.equal(search[0], normalize_crop(crop_around(frame, init, 4.0, S)[0]))
    # the next search region is centred on the new box
    box2 = tracker.track(frame)
    raw2 = _expected_box(expected, cell, size, offset)
    assert raw2[3] < 10  # its height is raised to the 10-pixel minimum
    assert np.allclose(box2, [raw2[0], raw2[1], raw2[2], 10.0], atol=1e-9)
    side = math.sqrt(expected[2] * expected[3]) * 4.0
    assert np.allclose(tracker.last_crop_box[2:], [side, side])
    assert np.allclose(tracker.last_crop_box[:2] + side / 2, expected[:2] + expected[2:] / 2)


def test_hann_window_prefers_the_central_peak():
    frame = _frame()
    init = np.array([60.0, 40.0, 30.0, 20.0])
    size, offset = (0.25, 0.125), (0.5, 0.5)
    peaks = [(1, 1, 0.9), (4, 4, 0.9)]  # equal peaks: (1, 1) comes first in the flattened order
    boxes = {}
    for hann in (False, True):
        tracker = CombaTracker(StubNet(peaks, size=size, offset=offset), device="cpu", hann=hann)
        tracker.initialize(frame, init)
        boxes[hann] = tracker.track(frame)
    assert np.allclose(boxes[False], _expected_box(init, (1, 1), size, offset), atol=1e-9)
    assert np.allclose(boxes[True], _expected_box(init, (4, 4), size, offset), atol=1e-9)
    # a clearly higher peak off-centre still wins over a weak central one
    tracker = CombaTracker(StubNet([(2, 2, 0.9), (4, 4, 0.3)], size=size, offset=offset), device="cpu")
    tracker.initialize(frame, init)
    assert np.allclose(tracker.track(frame), _expected_box(init, (2, 2), size, offset), atol=1e-9)


def test_predictions_are_clipped_to_the_image():
    frame = _frame(60, 80)
    init = np.array([2.0, 2.0, 20.0, 16.0])
    # a whole-crop box at the top-left cell: most of it lies outside the frame
    tracker = CombaTracker(StubNet([(0, 0, 0.9)], size=(1.0, 1.0), offset=(0.0, 0.0)), device="cpu", hann=False)
    tracker.initialize(frame, init)
    raw = _expected_box(init, (0, 0), (1.0, 1.0), (0.0, 0.0))
    assert raw[0] < 0 and raw[1] < 0
    box = tracker.track(frame)
    assert np.allclose(box, clip_box(raw, 60, 80, 10))
    assert box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= 80 and box[1] + box[3] <= 60
    # a vanishing box keeps the minimum size
    tracker = CombaTracker(StubNet([(4, 4, 0.9)], size=(1e-4, 1e-4)), device="cpu", min_size=10)
    tracker.initialize(frame, [30.0, 20.0, 20.0, 16.0])
    assert np.allclose(tracker.track(frame)[2:], [10.0, 10.0])


def test_non_finite_prediction_keeps_the_previous_box_and_errors():
    frame = _frame()
    init = np.array([60.0, 40.0, 30.0, 20.0])
    tracker = CombaTracker(StubNet([(4, 4, 0.9)], offset=(float("nan"), 0.0)), device="cpu")
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(frame)
    with pytest.raises(ValueError, match="w, h > 0"):
        tracker.initialize(frame, [1, 2, 0, 5])
    with pytest.raises(ValueError, match="RGB uint8"):
        tracker.initialize(frame.astype(np.float32), init)
    tracker.initialize(frame, init)
    assert np.array_equal(tracker.track(frame), init)


@pytest.fixture(scope="module")
def got10k_val(tmp_path_factory):
    root = tmp_path_factory.mktemp("got10k")
    make_got10k_layout(root, n_seqs=2, n_frames=6, split="val", seed=3)
    return Got10k(root, "val")


def test_real_model_runs_a_sequence(got10k_val, tmp_path):
    torch.manual_seed(0)
    model = OneStreamTracker("comba_micro", template_size=T, search_size=S, head_channels=32)
    tracker = CombaTracker(model, device="cpu")
    seq = got10k_val.get_sequence(0)
    boxes, times = tracker.run_sequence(seq)
    assert boxes.shape == (len(seq), 4) and times.shape == (len(seq),)
    assert np.isfinite(boxes).all() and (times > 0).all()
    assert np.array_equal(boxes[0], seq.boxes[0])
    height, width = 48, 64  # the synthetic frames
    assert (boxes[1:, 2:] >= 10).all() and (boxes[1:, :2] >= 0).all()
    assert (boxes[1:, 0] + boxes[1:, 2] <= width + 1e-9).all() and (boxes[1:, 1] + boxes[1:, 3] <= height + 1e-9).all()
    with pytest.raises(ValueError, match="dataset"):
        tracker.run_sequence(seq.name)
    # by name through the dataset, and from a training checkpoint: the same boxes
    cfg = TrackConfig(backbone="comba_micro", template_size=T, search_size=S, head_channels=32)
    path = tmp_path / "last.pth"
    torch.save(dict(model=model.state_dict(), config=dataclasses.asdict(cfg)), path)
    again, _ = CombaTracker.from_checkpoint(path, device="cpu").run_sequence(seq.name, got10k_val)
    assert np.allclose(again, boxes, atol=1e-6)
    torch.save(dict(model=model.state_dict()), tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="not a tools/train_tracker.py checkpoint"):
        CombaTracker.from_checkpoint(tmp_path / "plain.pth")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_tracking_and_training_step(got10k_val):
    """The CUDA path (Triton kernels, bf16 autocast): the network's maps match the CPU's, tracking a sequence
    gives finite boxes, and a training step gives finite gradients everywhere."""
    from comba_vision.tracking.losses import TrackingLoss
    torch.manual_seed(0)
    model = OneStreamTracker("comba_micro", template_size=T, search_size=S, head_channels=32).eval()
    template, search = torch.randn(2, 3, T, T), torch.randn(2, 3, S, S)
    with torch.no_grad():
        ref = model(template, search)
        model.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(template.cuda(), search.cuda())
    for key in ("score_map", "size_map", "offset_map"):
        err = (out[key].float().cpu() - ref[key]).norm() / ref[key].norm()
        assert err <= 3e-2, (key, err.item())
    seq = got10k_val.get_sequence(0)
    boxes, _ = CombaTracker(model, device="cuda", amp=True).run_sequence(seq)
    assert boxes.shape == (len(seq), 4) and np.isfinite(boxes).all()
    model.train()
    template, search = template.cuda(), search.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(template, search)
    loss, _ = TrackingLoss()(out, torch.tensor([[0.5, 0.5, 0.2, 0.3]] * 2, device="cuda"))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_cuda_graph_needs_cuda():
    model = OneStreamTracker("comba_micro", template_size=T, search_size=S, head_channels=32)
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device"):
        CombaTracker(model, device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="amp_dtype"):
        CombaTracker(model, device="cpu", amp_dtype=torch.float32)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_tracks_like_eager(got10k_val):
    """CombaTracker(cuda_graph=True) replays a captured graph of the network: the same maps as the eager
    forward on the same inputs (first call captures, later calls copy into the static inputs), the same boxes
    over a sequence, and a new capture when the input shape changes."""
    from comba_vision.ops import fused_block_kernels
    from comba_vision.tracking.tracker import GraphedForward
    torch.manual_seed(0)
    model = OneStreamTracker("comba_micro", template_size=T, search_size=S, head_channels=32).cuda().eval()
    graphed = GraphedForward(model, torch.bfloat16)
    for seed in (1, 2):  # capture, then replay on new inputs
        torch.manual_seed(seed)
        template, search = torch.randn(1, 3, T, T, device="cuda"), torch.randn(1, 3, S, S, device="cuda")
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), fused_block_kernels():
            ref = model(template, search)  # the kernels the graph holds (ops.block_kernels)
        out = graphed(template, search)
        for key in ("score_map", "size_map", "offset_map"):
            err = (out[key].float() - ref[key].float()).norm() / ref[key].float().norm()
            assert err <= 1e-2, (seed, key, err.item())
    first = graphed.graph
    graphed(torch.randn(2, 3, T, T, device="cuda"), torch.randn(2, 3, S, S, device="cuda"))
    assert graphed.graph is not first and graphed._out["score_map"].shape[0] == 2
    seq = got10k_val.get_sequence(0)
    with fused_block_kernels():
        eager, _ = CombaTracker(model, device="cuda").run_sequence(seq)
    boxes, _ = CombaTracker(model, device="cuda", cuda_graph=True).run_sequence(seq)
    assert np.isfinite(boxes).all() and np.abs(boxes - eager).max() <= 1.0, np.abs(boxes - eager).max()
