"""TrackingNet / COCO readers, the dataset registry, and training pairs drawn from them (tiny ``layouts.py`` trees)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from comba_vision.tracking.datasets import (
    DATASETS,
    Coco,
    Got10k,
    Lasot,
    TrackingNet,
    build_dataset,
    load_frame,
)
from comba_vision.tracking.processing import IMAGENET_MEAN, IMAGENET_STD, PairSampler, TrackingPairDataset

from .layouts import (
    make_coco_layout,
    make_got10k_layout,
    make_lasot_layout,
    make_trackingnet_layout,
    shows_object,
)

TN_CHUNKS = ["TRAIN_0", "TRAIN_10", "TRAIN_2"]  # numeric order: TRAIN_0, TRAIN_2, TRAIN_10
N_FRAMES = 12  # > 10: frame files 10.jpg, 11.jpg sort before 2.jpg as strings


@pytest.fixture(scope="module")
def tn_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("trackingnet")
    truth = make_trackingnet_layout(root, TN_CHUNKS, 2, N_FRAMES, seed=2)
    truth.update(make_trackingnet_layout(root, ["TEST"], 2, 5, seed=3))
    return root, truth


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("coco")
    truth = make_coco_layout(root, 3, 4, seed=4)
    make_coco_layout(root, 1, 2, split="val2017", seed=5)
    return root, truth


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _close_to(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


def _centre_pixel(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y, w, h = box
    return frame[int(y + h / 2), int(x + w / 2)]


# ----------------------------------------------------------------------------------------------- TrackingNet
def test_trackingnet_reads_boxes_visibility_and_frames(tn_root):
    root, truth = tn_root
    ds = TrackingNet(root)
    assert ds.chunks == ["TRAIN_0", "TRAIN_2", "TRAIN_10"] and ds.fully_annotated
    train = {n: t for n, t in truth.items() if not n.startswith("TEST/")}
    assert ds.sequence_names == sorted(train, key=lambda n: (int(n.split("/")[0][6:]), n))
    for name, t in train.items():
        seq = ds.get_sequence(name)
        assert seq.name == name and len(seq) == N_FRAMES
        assert [p.name for p in seq.frames] == [f"{i}.jpg" for i in range(N_FRAMES)]
        assert seq.boxes.dtype == np.float64
        np.testing.assert_array_equal(seq.boxes, t.boxes)
        np.testing.assert_array_equal(seq.visible, t.visible)
        assert seq.visible.dtype == bool and not seq.visible[2] and seq.visible.sum() == N_FRAMES - 1
        chunk, video = name.split("/")
        assert seq.meta == {"dataset": "trackingnet", "chunk": chunk, "video": video}
        for f in (0, 10, 11):
            assert _close_to(_centre_pixel(load_frame(seq, f), t.boxes[f]), t.color)
        where = np.concatenate([t.boxes[2, :2], t.boxes[1, 2:]])  # frame 2's place, frame 1's size
        assert not shows_object(load_frame(seq, 2), where, t.color)  # zero-size box: not drawn
    assert ds.get_sequence(0).name == ds.sequence_names[0]


def test_trackingnet_chunk_selection_and_test(tn_root):
    root, truth = tn_root
    assert TrackingNet(root, ["TRAIN_10"]).sequence_names == sorted(n for n in truth if n.startswith("TRAIN_10/"))
    assert TrackingNet(root, [2, "TRAIN_0"]).chunks == ["TRAIN_2", "TRAIN_0"]
    assert len(TrackingNet(root, "TRAIN_2")) == 2
    test = TrackingNet(root, ["TEST"])
    assert not test.fully_annotated and len(test) == 2
    for name in test.sequence_names:
        seq = test.get_sequence(name)
        assert seq.boxes.shape == (1, 4) and seq.visible.tolist() == [True] and len(seq.frames) == 5
        np.testing.assert_array_equal(seq.boxes[0], truth[name].boxes[0])
    with pytest.raises(ValueError, match="not annotated on every frame"):
        PairSampler([(test, 1.0)])
    with pytest.raises(ValueError, match="cannot be mixed"):
        TrackingNet(root, ["TEST", "TRAIN_0"])
    with pytest.raises(ValueError, match="chunk must be"):
        TrackingNet(root, ["train_0"])


def test_trackingnet_missing_root_and_chunks(tn_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"TrackingNet root not found: .*nowhere.*frames/<sequence>/0\.jpg"):
        TrackingNet(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no TrackingNet TRAIN_<k> chunk folders in .*anno/<sequence>\.txt"):
        TrackingNet(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"chunk folder not found: .*TRAIN_5; expected layout"):
        TrackingNet(tn_root[0], [5])
    root = _copy(tn_root[0], tmp_path / "t")
    shutil.rmtree(root / "TRAIN_2" / "frames")
    with pytest.raises(FileNotFoundError, match=r"chunk folder not found: .*TRAIN_2/frames"):
        TrackingNet(root)


def test_trackingnet_malformed_line_and_count_mismatch(tn_root, tmp_path):
    root = _copy(tn_root[0], tmp_path / "t")
    ds = TrackingNet(root)
    name = ds.sequence_names[1]
    chunk, video = name.split("/")
    anno = root / chunk / "anno" / f"{video}.txt"
    lines = anno.read_text().splitlines()
    anno.write_text("\n".join(lines[:6] + ["1.0,2.0,3.0 4.0"] + lines[7:]) + "\n")
    with pytest.raises(ValueError) as err:
        ds.get_sequence(name)
    assert str(anno) in str(err.value) and "line 7" in str(err.value) and "'1.0,2.0,3.0 4.0'" in str(err.value)
    anno.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=rf"sequence {name}: 12 frame files .* but 11 lines"):
        ds.get_sequence(name)
    anno.write_text("\n".join(lines) + "\n")
    (root / chunk / "frames" / video / "11.jpg").rename(root / chunk / "frames" / video / "12.jpg")
    seq = ds.get_sequence(name)
    with pytest.raises(FileNotFoundError, match=r"11\.jpg"):
        load_frame(seq, 11)
    shutil.rmtree(root / chunk / "frames" / video)
    with pytest.raises(FileNotFoundError, match=rf"sequence {name}: frame folder not found"):
        ds.get_sequence(name)


# ------------------------------------------------------------------------------------------------------ COCO
def test_coco_one_frame_sequences(coco_root):
    root, truth = coco_root
    ds = Coco(root)
    assert len(ds) == 12 and ds.fully_annotated  # 3 images x 4 objects; crowd / zero-width ones skipped
    assert ds.sequence_names == [str(i) for i in sorted(truth)]
    assert ds.categories == {1: "person", 3: "car"}
    for i, name in enumerate(ds.sequence_names):
        t = truth[int(name)]
        seq = ds.get_sequence(name)
        assert seq.name == name and ds.get_sequence(i).name == name
        assert seq.frames == [root / "train2017" / t.file_name]
        assert seq.boxes.shape == (1, 4) and seq.boxes.dtype == np.float64
        np.testing.assert_array_equal(seq.boxes[0], t.box)
        assert seq.visible.tolist() == [True] and seq.visible.dtype == bool
        assert seq.meta["annotation_id"] == t.annotation_id and seq.meta["image_id"] == t.image_id
        assert seq.meta["category_id"] == t.category_id
        assert seq.meta["object_class"] == {1: "person", 3: "car"}[t.category_id]
        assert seq.meta["image_size"] == (128, 96) and seq.meta["split"] == "train2017"
        frame = load_frame(seq, 0)
        assert frame.shape == (96, 128, 3) and _close_to(_centre_pixel(frame, t.box), t.color)
    assert ds.get_sequence(-1).name == ds.sequence_names[-1]
    for bad in ("0", "0" + ds.sequence_names[0], "x"):
        with pytest.raises(KeyError, match="no sequence named"):
            ds.get_sequence(bad)
    with pytest.raises(IndexError, match="out of range"):
        ds.get_sequence(12)
    assert len(Coco(root, "val2017")) == 2


def test_coco_errors(coco_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"COCO root not found: .*nowhere"):
        Coco(tmp_path / "nowhere")
    ann = tmp_path / "annotations" / "instances_train2017.json"
    with pytest.raises(FileNotFoundError, match=rf"COCO annotation file not found: {ann}"):
        Coco(tmp_path)
    root = _copy(coco_root[0], tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"instances_train2014\.json"):
        Coco(root, "train2014")
    path = root / "annotations" / "instances_train2017.json"
    doc = json.loads(path.read_text())
    doc["annotations"][3]["bbox"] = [1.0, 2.0, 3.0]
    path.write_text(json.dumps(doc))
    bad_id = doc["annotations"][3]["id"]
    with pytest.raises(ValueError, match=rf"instances_train2017\.json: malformed annotation id {bad_id}: .*bbox"):
        Coco(root)
    path.write_text(json.dumps(doc)[:-10])
    with pytest.raises(ValueError, match=r"instances_train2017\.json: invalid JSON"):
        Coco(root)
    shutil.rmtree(root / "val2017")
    with pytest.raises(FileNotFoundError, match=r"COCO image folder not found: .*val2017"):
        Coco(root, "val2017")


# -------------------------------------------------------------------------------------------------- registry
def test_build_dataset_registry(tn_root, coco_root, tmp_path):
    assert DATASETS == {"got10k": Got10k, "lasot": Lasot, "trackingnet": TrackingNet, "coco": Coco}
    got_root, lasot_root = tmp_path / "got", tmp_path / "lasot"
    make_got10k_layout(got_root, 1, 3, "train")
    make_got10k_layout(got_root, 1, 3, "val", seed=1)
    make_lasot_layout(lasot_root, ["bear-1", "bear-2"], 3)

    got = build_dataset("got10k", got_root)
    assert isinstance(got, Got10k) and got.split == "train"
    assert build_dataset("GOT-10k", got_root, "val").split == "val"
    lasot = build_dataset("lasot", lasot_root)
    assert isinstance(lasot, Lasot) and lasot.sequence_names == ["bear-1"]
    assert build_dataset("lasot", lasot_root, "all").sequence_names == ["bear-1", "bear-2"]
    assert build_dataset("lasot", lasot_root, "test", allow_missing=True).sequence_names == ["bear-2"]

    tn = build_dataset("trackingnet", tn_root[0])
    assert isinstance(tn, TrackingNet) and tn.chunks == ["TRAIN_0", "TRAIN_2", "TRAIN_10"]
    assert build_dataset("TrackingNet", tn_root[0], "train").chunks == tn.chunks
    assert build_dataset("tracking_net", tn_root[0], "test").chunks == ["TEST"]
    assert build_dataset("trackingnet", tn_root[0], "TRAIN_2").chunks == ["TRAIN_2"]
    assert build_dataset("trackingnet", tn_root[0], chunks=[10]).chunks == ["TRAIN_10"]
    with pytest.raises(ValueError, match="split must be"):
        build_dataset("trackingnet", tn_root[0], "val")
    with pytest.raises(ValueError, match="not both"):
        build_dataset("trackingnet", tn_root[0], "train", chunks=[0])

    coco = build_dataset("coco", coco_root[0])
    assert isinstance(coco, Coco) and coco.split == "train2017" and len(coco) == 12
    assert build_dataset("coco", coco_root[0], "train").split == "train2017"
    assert build_dataset("COCO", coco_root[0], "val").split == "val2017"
    assert build_dataset("coco", coco_root[0], "val2017").split == "val2017"

    with pytest.raises(ValueError, match="unknown tracking dataset 'vot'; known: coco, got10k, lasot, trackingnet"):
        build_dataset("vot", tmp_path)
    for name in DATASETS:
        with pytest.raises(FileNotFoundError, match=rf"{name} root not found: .*nowhere"):
            build_dataset(name, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("got10k", got_root, "training")


# ---------------------------------------------------------------------------------------------- pair dataset
def _denorm(x: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def test_pairs_from_trackingnet_and_coco(tn_root, coco_root):
    tn, coco = TrackingNet(tn_root[0]), Coco(coco_root[0])
    tn_truth, coco_truth = tn_root[1], coco_root[1]
    sampler = PairSampler([(tn, 1.0), (coco, 1.0)], max_gap=3)
    rng = np.random.default_rng(0)
    choices = [sampler.sample(rng) for _ in range(300)]
    assert {c.dataset for c in choices} == {0, 1}
    for c in choices:
        if c.dataset == 1:  # one-frame sequence: search frame == template frame, gap 0
            assert c.template == c.search == 0
        else:
            assert c.template != 2 and c.search != 2 and 0 < c.search - c.template <= 3  # frame 2 has w = h = 0
    assert {c.search - c.template for c in choices if c.dataset == 0} == {1, 2, 3}

    ds = TrackingPairDataset(
        [(tn, 1.0), (coco, 1.0)], samples_per_epoch=12, seed=5, brightness_jitter=0.0, gray_prob=0.0
    )
    seen = set()
    for i in range(12):
        item = ds[i]
        seen.add(item["dataset"])
        if item["dataset"] == 0:
            color = tn_truth[item["sequence"]].color
        else:
            color = coco_truth[int(item["sequence"])].color
            assert item["template_index"] == item["search_index"] == 0
        assert item["template"].shape == (3, 128, 128) and item["search"].shape == (3, 256, 256)
        tb, sb = item["template_box"], item["search_box"]
        torch.testing.assert_close(tb[:2] + tb[2:] / 2, torch.tensor([0.5, 0.5]))
        assert _close_to(_denorm(item["template"])[64, 64], color, tol=15)
        cx, cy = ((sb[:2] + sb[2:] / 2) * 256).tolist()
        assert _close_to(_denorm(item["search"])[int(cy), int(cx)], color, tol=15)
    assert seen == {0, 1}
