"""GOT-10k / LaSOT readers, crops and the training-pair dataset, on tiny layouts written by ``layouts.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from comba_vision.tracking.datasets import LASOT_TEST_SEQUENCES, Got10k, Lasot, load_frame
from comba_vision.tracking.processing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PairSampler,
    TrackingPairDataset,
    box_from_crop,
    box_to_crop,
    crop_around,
    resample_crop,
)

from .layouts import make_got10k_layout, make_lasot_layout, shows_object

LASOT_NAMES = ["airplane-1", "airplane-2", "airplane-9", "bear-1", "bear-2"]  # airplane-1/-9, bear-2: test set


@pytest.fixture(scope="module")
def got_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("got10k")
    truth = {split: make_got10k_layout(root, 3, 12, split, seed=i) for i, split in enumerate(("train", "val", "test"))}
    return root, truth


@pytest.fixture(scope="module")
def lasot_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("lasot")
    return root, make_lasot_layout(root, LASOT_NAMES, 10, seed=5)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _close_to(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


# ------------------------------------------------------------------------------------------------- GOT-10k
@pytest.mark.parametrize("split", ["train", "val"])
def test_got10k_reads_boxes_visibility_and_meta(got_root, split):
    root, truth = got_root
    ds = Got10k(root, split)
    assert len(ds) == 3 and ds.sequence_names == list(truth[split])
    for name, t in truth[split].items():
        seq = ds.get_sequence(name)
        assert seq.name == name and len(seq.frames) == 12
        assert seq.boxes.dtype == np.float64 and seq.boxes.shape == (12, 4)
        np.testing.assert_array_equal(seq.boxes, t.boxes)
        assert seq.visible.dtype == bool
        np.testing.assert_array_equal(seq.visible, t.visible)
        assert not seq.visible[1] and not seq.visible[2] and seq.visible[0]  # occluded (cover 0), absent
        np.testing.assert_array_equal(seq.meta["cover"], t.labels["cover"])
        np.testing.assert_array_equal(seq.meta["cut_by_image"], t.labels["cut_by_image"])
        assert seq.meta["meta_info"]["url"] == "https://youtu.be/abc?t=1:02"
        assert seq.meta["object_class"].startswith("rectangle")
        frame = load_frame(seq, 0)
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
        x, y, w, h = t.boxes[0]
        assert _close_to(frame[int(y + h / 2), int(x + w / 2)], t.color) and shows_object(frame, t.boxes[0], t.color)
        assert not shows_object(load_frame(seq, 2), t.boxes[2], t.color)  # absent: not drawn
    assert ds.get_sequence(1).name == ds.sequence_names[1]


def test_got10k_test_split_first_box_only(got_root):
    root, truth = got_root
    ds = Got10k(root, "test")
    assert not ds.fully_annotated
    for name, t in truth["test"].items():
        seq = ds.get_sequence(name)
        assert seq.boxes.shape == (1, 4) and seq.visible.tolist() == [True]
        np.testing.assert_array_equal(seq.boxes[0], t.boxes[0])
        assert [p.name for p in seq.frames] == [f"{i:08d}.jpg" for i in range(1, 13)]
        assert seq.meta["meta_info"] == {}
    with pytest.raises(ValueError, match="not annotated on every frame"):
        PairSampler([(ds, 1.0)])


def test_got10k_without_list_txt_uses_sorted_folders(got_root, tmp_path):
    root = _copy(got_root[0], tmp_path / "g")
    (root / "val" / "list.txt").unlink()
    (root / "val" / "not_a_sequence.txt").write_text("x")
    assert Got10k(root, "val").sequence_names == sorted(got_root[1]["val"])


def test_missing_root_split_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*list\.txt"):
        Got10k(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match=r"split folder not found: .*train.*groundtruth\.txt"):
        Got10k(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        Got10k(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match=r"LaSOT root not found: .*nowhere.*img/00000001\.jpg"):
        Lasot(tmp_path / "nowhere", "all")
    with pytest.raises(FileNotFoundError, match="no LaSOT sequences"):
        Lasot(tmp_path, "all")


@pytest.mark.parametrize(
    "bad_line, message",
    [("10.0,12.0,5.0", "expected 4 comma-separated numbers"), ("10.0,abc,5.0,6.0", "non-numeric"), ("", "got 1")],
)
def test_malformed_groundtruth_line_names_file_and_line(got_root, tmp_path, bad_line, message):
    root = _copy(got_root[0], tmp_path / "g")
    name = sorted(got_root[1]["train"])[0]
    gt = root / "train" / name / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    lines[4] = bad_line
    gt.write_text("\n".join(lines) + "\n")
    ds = Got10k(root, "train")
    with pytest.raises(ValueError) as err:
        ds.get_sequence(name)
    text = str(err.value)
    assert str(gt) in text and "line 5" in text and message in text and repr(bad_line) in text


def test_malformed_label_line(got_root, tmp_path):
    root = _copy(got_root[0], tmp_path / "g")
    name = sorted(got_root[1]["train"])[1]
    cover = root / "train" / name / "cover.label"
    lines = cover.read_text().splitlines()
    lines[6] = "9"
    cover.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"cover\.label, line 7: label 9 outside 0\.\.8"):
        Got10k(root, "train").get_sequence(name)
    lines[6] = "1"
    cover.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"cover\.label has 11 lines but groundtruth\.txt has 12"):
        Got10k(root, "train").get_sequence(name)


def test_frame_count_mismatch_and_missing_frame(got_root, tmp_path):
    root = _copy(got_root[0], tmp_path / "g")
    name = sorted(got_root[1]["train"])[2]
    folder = root / "train" / name
    # Renamed: the count still matches, so the sequence loads; the frame is reported missing when loaded.
    (folder / "00000004.jpg").rename(folder / "00000099.jpg")
    seq = Got10k(root, "train").get_sequence(name)
    assert load_frame(seq, 2).shape == (48, 64, 3)
    with pytest.raises(FileNotFoundError, match=r"00000004\.jpg"):
        load_frame(seq, 3)
    (folder / "00000099.jpg").unlink()
    with pytest.raises(ValueError, match=rf"sequence {name}: 11 frame files .* but 12 lines"):
        Got10k(root, "train").get_sequence(name)


# ----------------------------------------------------------------------------------------------------- LaSOT
def test_lasot_test_constant():
    assert len(LASOT_TEST_SEQUENCES) == 280
    classes = {n.rsplit("-", 1)[0] for n in LASOT_TEST_SEQUENCES}
    assert len(classes) == 70
    assert all(sum(n.rsplit("-", 1)[0] == c for n in LASOT_TEST_SEQUENCES) == 4 for c in classes)
    assert {"airplane-1", "airplane-9", "airplane-13", "airplane-15", "volleyball-19"} <= LASOT_TEST_SEQUENCES


def test_lasot_splits(lasot_root, tmp_path):
    root, _ = lasot_root
    assert Lasot(root, "all").sequence_names == LASOT_NAMES
    assert Lasot(root, "train").sequence_names == ["airplane-2", "bear-1"]
    assert Lasot(root, "test", allow_missing=True).sequence_names == ["airplane-1", "airplane-9", "bear-2"]
    with pytest.raises(FileNotFoundError, match=r"277 LaSOT test sequences not found .*airplane-13"):
        Lasot(root, "test")
    split_file = tmp_path / "testing_set.txt"
    split_file.write_text("bear-1\nairplane-2\n")
    assert Lasot(root, "test", split_file=split_file).sequence_names == ["airplane-2", "bear-1"]
    split_file.write_text("bear-1\nbear-7\n")
    with pytest.raises(FileNotFoundError, match="bear-7"):
        Lasot(root, "train", split_file=split_file)


def test_lasot_reads_boxes_visibility_and_meta(lasot_root):
    root, truth = lasot_root
    ds = Lasot(root, "all")
    for i, name in enumerate(LASOT_NAMES):
        t = truth[name]
        seq = ds.get_sequence(i)
        assert seq.name == name and len(seq.frames) == 10
        np.testing.assert_array_equal(seq.boxes, t.boxes)
        assert seq.boxes.dtype == np.float64
        np.testing.assert_array_equal(seq.visible, t.visible)
        assert seq.visible.sum() == 8 and not seq.visible[1] and not seq.visible[3]
        assert seq.meta["object_class"] == name.rsplit("-", 1)[0]
        assert seq.meta["nlp"] == f"a textured {seq.meta['object_class']} moving over a photograph"
        x, y, w, h = t.boxes[5]
        assert _close_to(load_frame(seq, 5)[int(y + h / 2), int(x + w / 2)], t.color)


def test_lasot_malformed_flags_and_count(lasot_root, tmp_path):
    root = _copy(lasot_root[0], tmp_path / "l")
    occ = root / "bear" / "bear-1" / "full_occlusion.txt"
    occ.write_text("0,1,0,0,2,0,0,0,0,0")
    with pytest.raises(ValueError, match=r"full_occlusion\.txt, line 1: label 2 outside 0\.\.1"):
        Lasot(root, "all").get_sequence("bear-1")
    occ.write_text("0,1,0")
    with pytest.raises(ValueError, match=r"full_occlusion\.txt has 3 flags but .* has 10 lines"):
        Lasot(root, "all").get_sequence("bear-1")
    (root / "bear" / "bear-2" / "img" / "00000010.jpg").unlink()
    with pytest.raises(ValueError, match=r"sequence bear-2: 9 frame files .* but 10 lines"):
        Lasot(root, "all").get_sequence("bear-2")


# ------------------------------------------------------------------------------------------------------ crops
def _canvas(box: tuple[int, int, int, int], color=(200, 30, 30), size=(150, 200)) -> np.ndarray:
    img = np.full((*size, 3), 60, dtype=np.uint8)
    x, y, w, h = box
    img[y : y + h, x : x + w] = color
    return img


def test_crop_identity_and_zero_padding():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resample_crop(img, (0, 0, 32, 32), 32), img)
    padded = resample_crop(img, (-16, -8, 64, 64), 64)
    np.testing.assert_array_equal(padded[8:40, 16:48], img)
    assert padded[:8].max() == 0 and padded[40:].max() == 0 and padded[:, :16].max() == 0
    assert resample_crop(img, (100, 100, 10, 10), 8).max() == 0


def test_crop_around_places_object_at_centre():
    box = (70, 40, 40, 10)  # sqrt(w*h) = 20
    img = _canvas(box)
    crop, factor, crop_box = crop_around(img, box, 2.0, 128)
    np.testing.assert_allclose(crop_box, [70, 25, 40, 40])
    assert factor == pytest.approx(128 / 40)
    in_crop = box_to_crop(np.array(box, dtype=float), crop_box, 128)
    np.testing.assert_allclose(in_crop, [0, 48, 128, 32], atol=1e-12)  # centred; x spans the crop
    x, y, w, h = in_crop
    assert tuple(crop[int(y + h / 2), int(x + w / 2)]) == (200, 30, 30)
    assert tuple(crop[int(y - 4), 64]) == (60, 60, 60) and tuple(crop[int(y + h + 4), 64]) == (60, 60, 60)
    # Near a corner the context is partly outside the frame: zero padding there, object still at the centre.
    box = (2, 3, 10, 10)
    crop, _, crop_box = crop_around(_canvas(box), box, 4.0, 80)
    x, y, w, h = box_to_crop(np.array(box, dtype=float), crop_box, 80)
    np.testing.assert_allclose([x + w / 2, y + h / 2, w], [40, 40, 20])
    assert tuple(crop[40, 40]) == (200, 30, 30) and crop[:5, :5].max() == 0


def test_crop_with_jitter_keeps_object_under_mapped_box():
    rng = np.random.default_rng(3)
    box = (80, 50, 24, 30)
    img = _canvas(box, color=(20, 220, 40))
    for _ in range(20):
        crop, factor, crop_box = crop_around(img, box, 4.0, 96, center_jitter=3.0, scale_jitter=0.25, rng=rng)
        assert factor == pytest.approx(96 / crop_box[2])
        x, y, w, h = box_to_crop(np.array(box, dtype=float), crop_box, 96)
        cx, cy = x + w / 2, y + h / 2
        if 0 <= cx < 96 and 0 <= cy < 96:
            assert _close_to(crop[int(cy), int(cx)], (20, 220, 40), tol=2)
    with pytest.raises(ValueError, match="rng"):
        crop_around(img, box, 4.0, 96, center_jitter=3.0)


def test_box_to_from_crop_are_inverses():
    rng = np.random.default_rng(1)
    boxes = rng.uniform(-50, 500, (100, 4))
    boxes[:, 2:] = rng.uniform(1, 300, (100, 2))
    for b in boxes[:10]:
        crop_box = np.array([*rng.uniform(-100, 300, 2), *np.repeat(rng.uniform(5, 600), 2)])
        back = box_from_crop(box_to_crop(boxes, crop_box, 256), crop_box, 256)
        np.testing.assert_allclose(back, boxes, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(box_to_crop(box_from_crop(b, crop_box, 128), crop_box, 128), b, atol=1e-10)
    t = torch.tensor(boxes, dtype=torch.float64)
    back = box_from_crop(box_to_crop(t, crop_box, 256), crop_box, 256)
    assert isinstance(back, torch.Tensor)
    torch.testing.assert_close(back, t)


# ------------------------------------------------------------------------------------------------ pair dataset
def _denorm(x: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def test_pair_dataset_shapes_boxes_and_content(got_root, lasot_root):
    got, lasot = Got10k(got_root[0], "train"), Lasot(lasot_root[0], "all")
    truth = {**got_root[1]["train"], **lasot_root[1]}
    ds = TrackingPairDataset(
        [(got, 1.0), (lasot, 1.0)], samples_per_epoch=16, seed=7, brightness_jitter=0.0, gray_prob=0.0
    )
    assert len(ds) == 16
    for i in range(8):
        item = ds[i]
        assert item["template"].shape == (3, 128, 128) and item["search"].shape == (3, 256, 256)
        assert item["template"].dtype == torch.float32 and item["search"].dtype == torch.float32
        assert item["template_box"].shape == (4,) and item["search_box"].dtype == torch.float32
        tb = item["template_box"]
        torch.testing.assert_close(tb[:2] + tb[2:] / 2, torch.tensor([0.5, 0.5]))  # no template jitter
        assert float((tb[2] * tb[3]).sqrt() * 128) == pytest.approx(64.0, rel=1e-5)  # context 2 -> 128 / 2
        sb = item["search_box"]
        assert (sb >= 0).all() and (sb[:2] + sb[2:] <= 1 + 1e-6).all()
        color = truth[item["sequence"]].color
        t_img, s_img = _denorm(item["template"]), _denorm(item["search"])
        assert _close_to(t_img[64, 64], color, tol=15)
        cx, cy = ((sb[:2] + sb[2:] / 2) * 256).tolist()
        assert _close_to(s_img[int(cy), int(cx)], color, tol=15)
        seq = (got if item["dataset"] == 0 else lasot).get_sequence(item["sequence"])
        assert 0 <= item["search_index"] - item["template_index"] <= 200
        assert seq.visible[item["template_index"]] and seq.visible[item["search_index"]]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["search"].shape == (2, 3, 256, 256) and batch["search_box"].shape == (2, 4)


def test_pair_dataset_flip_and_grayscale(got_root):
    got = Got10k(got_root[0], "train")
    truth = got_root[1]["train"]
    ds = TrackingPairDataset(
        [(got, 1.0)],
        samples_per_epoch=4,
        seed=1,
        flip_prob=1.0,
        gray_prob=1.0,
        brightness_jitter=0.0,
        search_center_jitter=0.0,
        search_scale_jitter=0.0,
    )
    item = ds[0]
    seq = got.get_sequence(item["sequence"])
    s = seq.boxes[item["search_index"]]
    side = np.sqrt(s[2] * s[3]) * 4.0
    # Unjittered and flipped: the box stays centred, its x extent mirrored about the centre.
    torch.testing.assert_close(
        item["search_box"],
        torch.tensor([0.5 - s[2] / side / 2, 0.5 - s[3] / side / 2, s[2] / side, s[3] / side], dtype=torch.float32),
    )
    img = _denorm(item["search"]).astype(int)
    assert (np.abs(img[..., 0] - img[..., 1]) <= 2).all() and (np.abs(img[..., 1] - img[..., 2]) <= 2).all()
    r, g, b = truth[item["sequence"]].color
    assert abs(img[128, 128, 0] - (0.299 * r + 0.587 * g + 0.114 * b)) <= 10


def test_flip_mirrors_both_crops_and_boxes(got_root):
    got = Got10k(got_root[0], "train")
    a, b = (TrackingPairDataset([(got, 1.0)], samples_per_epoch=4, seed=11, flip_prob=p)[2] for p in (1.0, 0.0))
    assert torch.equal(a["search"], b["search"].flip(-1)) and torch.equal(a["template"], b["template"].flip(-1))
    xt, yt, wt, ht = a["template_box"].tolist()
    assert (1 - xt - wt, yt, wt, ht) == pytest.approx(tuple(b["template_box"].tolist()), abs=1e-6)
    xa, ya, wa, ha = a["search_box"].tolist()
    xb, yb, wb, hb = b["search_box"].tolist()
    assert xa == pytest.approx(1 - xb - wb, abs=1e-6) and (ya, wa, ha) == pytest.approx((yb, wb, hb))
    assert abs(xa + wa / 2 - 0.5) > 1e-3  # jittered: the flip moves the box


def test_pairs_respect_max_gap_visibility_and_are_deterministic(got_root, lasot_root):
    got, lasot = Got10k(got_root[0], "train"), Lasot(lasot_root[0], "all")
    ds = TrackingPairDataset([(got, 1.0), (lasot, 1.0)], samples_per_epoch=400, seed=3, max_gap=2)
    truth = {**got_root[1]["train"], **lasot_root[1]}
    gaps = set()
    for i in range(400):
        c = ds.choose(i)
        seq_name = (got if c.dataset == 0 else lasot).sequence_names[c.sequence]
        vis = truth[seq_name].visible
        assert vis[c.template] and vis[c.search]
        gaps.add(c.search - c.template)
    assert gaps == {1, 2}  # strictly after the template, within max_gap
    a, b = ds[5], TrackingPairDataset([(got, 1.0), (lasot, 1.0)], samples_per_epoch=400, seed=3, max_gap=2)[5]
    assert a["sequence"] == b["sequence"] and a["search_index"] == b["search_index"]
    for key in ("template", "search", "template_box", "search_box"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(ds[6]["search"], a["search"])
    assert ds.choose(5) == ds.choose(5)
    epoch0 = [ds.choose(i) for i in range(20)]
    ds.set_epoch(1)
    assert [ds.choose(i) for i in range(20)] != epoch0


def test_ratio_mixing_and_invisible_sequences_skipped(got_root, lasot_root, tmp_path):
    root = _copy(got_root[0], tmp_path / "g")
    dead = sorted(got_root[1]["train"])[0]
    (root / "train" / dead / "absence.label").write_text("1\n" * 12)
    got, lasot = Got10k(root, "train"), Lasot(lasot_root[0], "all")
    sampler = PairSampler([(got, 3.0), (lasot, 1.0)])
    rng = np.random.default_rng(0)
    choices = [sampler.sample(rng) for _ in range(4000)]
    frac = np.mean([c.dataset == 0 for c in choices])
    assert abs(frac - 0.75) < 0.025
    assert all(got.sequence_names[c.sequence] != dead for c in choices if c.dataset == 0)
    assert {c.sequence for c in choices if c.dataset == 1} == set(range(len(lasot)))


def test_sampler_caches_parsed_sequences_lru(got_root, monkeypatch):
    """A pair re-uses the parsed sequence (no second read of its annotation files); the cache keeps the most
    recently used ``cache_size`` sequences; ``cache_size=0`` parses every time."""
    got = Got10k(got_root[0], "train")
    calls = []
    original = Got10k._load

    def counting(self, name):
        calls.append(name)
        return original(self, name)

    monkeypatch.setattr(Got10k, "_load", counting)
    sampler = PairSampler([(got, 1.0)], cache_size=2)
    first = sampler.sequence(0, 0)
    assert sampler.sequence(0, 0) is first and len(calls) == 1
    assert np.array_equal(first.boxes, original(got, got.sequence_names[0]).boxes)
    sampler.sequence(0, 1)
    sampler.sequence(0, 0)  # most recent again: sequence 1 is now the oldest
    sampler.sequence(0, 2)  # evicts sequence 1
    assert len(calls) == 3
    sampler.sequence(0, 0)
    assert len(calls) == 3
    sampler.sequence(0, 1)
    assert len(calls) == 4
    nocache = PairSampler([(got, 1.0)], cache_size=0)
    nocache.sequence(0, 0), nocache.sequence(0, 0)
    assert len(calls) == 6
