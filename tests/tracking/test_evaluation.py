"""Tracking evaluation: result files, GOT-10k (against the official toolkit), LaSOT (pytracking rules), zips, plots."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from comba_vision.tracking.evaluation import (
    LASOT_CENTER_THRESHOLDS,
    LASOT_OVERLAP_THRESHOLDS,
    evaluate_got10k,
    evaluate_lasot,
    got10k_iou,
    got10k_metrics,
    lasot_metrics,
    load_boxes,
    plot_curves,
    read_results,
    read_times,
    write_results,
    zip_got10k_submission,
)

SIZES = [(64, 48), (80, 60), (50, 70), (96, 40), (40, 40)]
N_FRAMES = 12
TRACKER = "mytracker"


def _random_boxes(rng: np.random.Generator, size: tuple[int, int], n: int) -> np.ndarray:
    """Boxes of 20-60% of the frame, centres up to a fifth of the frame outside it (so some stick out)."""
    w, h = size
    bw = rng.uniform(0.2, 0.6, n) * w
    bh = rng.uniform(0.2, 0.6, n) * h
    cx = rng.uniform(-0.2, 1.2, n) * w
    cy = rng.uniform(-0.2, 1.2, n) * h
    return np.round(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1), 4)


def _make_got10k(root, rng: np.random.Generator) -> list[str]:
    """A GOT-10k val tree in the official layout (what the toolkit reads), 5 sequences x 12 frames."""
    names = [f"GOT-10k_Val_{i + 1:06d}" for i in range(len(SIZES))]
    os.makedirs(root / "val")
    (root / "val" / "list.txt").write_text("\n".join(names) + "\n")
    for name, size in zip(names, SIZES):
        d = root / "val" / name
        d.mkdir()
        for f in range(N_FRAMES):
            Image.new("RGB", size, (f * 20, 0, 0)).save(d / f"{f + 1:08d}.jpg", quality=50)
        gt = _random_boxes(rng, size, N_FRAMES)
        np.savetxt(d / "groundtruth.txt", gt, fmt="%.4f", delimiter=",")
        cover = rng.integers(0, 9, N_FRAMES)
        cover[0] = 8
        cover[rng.integers(1, N_FRAMES, 2)] = 0  # some invisible frames in every sequence
        np.savetxt(d / "cover.label", cover, fmt="%d")
        np.savetxt(d / "absence.label", (cover == 0).astype(int), fmt="%d")
        np.savetxt(d / "cut_by_image.label", np.zeros(N_FRAMES, int), fmt="%d")
        (d / "meta_info.ini").write_text(
            f"[METAINFO]\nurl: https://example.invalid/v\nbegin: 00:00:01\nresolution: ({size[0]}, {size[1]})\n"
        )
    return names


def _write_tracker(root, result_dir, names, rng: np.random.Generator) -> None:
    """Perturbed ground truth as results, times with a zero and a NaN, a second repetition for one sequence."""
    for k, name in enumerate(names):
        gt = load_boxes(root / "val" / name / "groundtruth.txt")
        for rep in (1, 2) if k == 0 else (1,):
            pred = gt.copy()
            pred[:, :2] += rng.normal(0, 0.15, (N_FRAMES, 2)) * gt[:, 2:]
            pred[:, 2:] *= np.exp(rng.normal(0, 0.25, (N_FRAMES, 2)))
            pred[3] = [-30.0, -30.0, 10.0, 10.0]  # entirely outside the frame
            times = rng.uniform(0.005, 0.05, N_FRAMES)
            times[2] = 0.0
            if k == 1:
                times[4] = np.nan
            write_results(result_dir, name, pred, times=times if rep == 1 else None, repetition=rep)


@pytest.fixture(scope="module")
def got10k_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("got10k")
    rng = np.random.default_rng(0)
    root = base / "data"
    names = _make_got10k(root, rng)
    result_dir = base / "results" / "GOT-10k" / TRACKER  # where ExperimentGOT10k(result_dir=base/results) looks
    _write_tracker(root, result_dir, names, rng)
    return base, root, result_dir, names


# ----------------------------------------------------------------------------------------------------------------
# GOT-10k
# ----------------------------------------------------------------------------------------------------------------
def test_got10k_matches_official_toolkit(got10k_tree):
    import matplotlib

    matplotlib.use("Agg")
    pytest.importorskip("got10k")
    from got10k.experiments import ExperimentGOT10k

    base, root, result_dir, names = got10k_tree
    exp = ExperimentGOT10k(str(root), subset="val", result_dir=str(base / "results"), report_dir=str(base / "rep"))
    ref = exp.report([TRACKER])[TRACKER]
    ours = evaluate_got10k(result_dir, root, split="val")

    overall = ref["overall"]
    assert ours["ao"] == pytest.approx(overall["ao"], abs=1e-9)
    assert ours["sr50"] == pytest.approx(overall["sr"], abs=1e-9)
    assert ours["sr75"] == pytest.approx(overall["succ_curve"][75], abs=1e-9)
    np.testing.assert_allclose(ours["success_curve"], overall["succ_curve"], rtol=0, atol=1e-9)
    assert ours["speed_fps"] == pytest.approx(overall["speed_fps"], rel=1e-9)
    assert 0.05 < ours["ao"] < 0.95 and 0 < ours["sr75"] < ours["sr50"] < 1  # a non-degenerate case
    for name in names:
        ref_seq, seq = ref["seq_wise"][name], ours["per_sequence"][name]
        assert seq["ao"] == pytest.approx(ref_seq["ao"], abs=1e-9)
        assert seq["sr50"] == pytest.approx(ref_seq["sr"], abs=1e-9)
        assert seq["speed_fps"] == pytest.approx(ref_seq["speed_fps"], rel=1e-9)
        assert seq["length"] == ref_seq["length"] == N_FRAMES - 1
    assert ours["num_sequences"] == len(names)


def test_got10k_image_size_from_first_frame_without_meta(got10k_tree, tmp_path):
    base, root, result_dir, names = got10k_tree
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    for name in names:
        os.remove(copy / "val" / name / "meta_info.ini")
    a = evaluate_got10k(result_dir, root)
    b = evaluate_got10k(result_dir, copy)
    assert a["ao"] == b["ao"] and a["sr50"] == b["sr50"]


def test_got10k_metrics_by_hand():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 5, 10], [50, 50, 10, 10]], float)
    out = got10k_metrics([gt], [pred], [np.array([1, 1, 1, 1])], [(100, 100)])
    # first frame dropped; IoUs 1, 0.5, 0 averaged over frames; SR is strict (0.5 is not a success)
    assert out["ao"] == pytest.approx(0.5)
    assert out["sr50"] == pytest.approx(1 / 3) and out["sr75"] == pytest.approx(1 / 3)
    assert out["speed_fps"] == -1
    # repetitions are pooled: [R, N, 4] or a list of runs
    out = got10k_metrics([gt], [np.stack([pred, gt])], [np.ones(4)], [(100, 100)], times=[np.array([0.5, 0, 0.25])])
    assert out["ao"] == pytest.approx((1.5 + 3) / 6) and out["num_frames"] == 6
    assert out["speed_fps"] == pytest.approx(3.0)  # mean of 1/0.5 and 1/0.25; zero times ignored
    out = got10k_metrics([gt], [pred.tolist()], [np.array([1, 1, 0, 1])], [(100, 100)])  # cover == 0 left out
    assert out["ao"] == pytest.approx(0.5) and out["num_frames"] == 2
    # frame-weighted over sequences, not per-sequence first
    out = got10k_metrics([gt, gt[:2]], [pred, gt[:2]], [np.ones(4), np.ones(2)], [(100, 100)] * 2)
    assert out["ao"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_got10k_bound_is_the_toolkits_shift_not_a_crop():
    # x = -10 is clipped to 0 and the width kept (the box is shifted into the frame): IoU 1 with [0, 0, 20, 10]
    assert got10k_iou(np.array([[-10.0, 0, 20, 10]]), np.array([[0.0, 0, 20, 10]]), bound=(100, 100))[0] == (
        pytest.approx(1.0)
    )
    # the width is cut at the right border
    assert got10k_iou(np.array([[90.0, 0, 20, 10]]), np.array([[90.0, 0, 10, 10]]), bound=(100, 100))[0] == (
        pytest.approx(1.0)
    )
    assert got10k_iou(np.array([[90.0, 0, 20, 10]]), np.array([[90.0, 0, 10, 10]]))[0] == pytest.approx(0.5)


def test_got10k_errors(got10k_tree, tmp_path):
    base, root, result_dir, names = got10k_tree
    bad = tmp_path / "res"
    shutil.copytree(result_dir, bad)
    gt = load_boxes(root / "val" / names[2] / "groundtruth.txt")
    write_results(bad, names[2], gt[:-1])
    with pytest.raises(ValueError, match=rf"{names[2]}.*{N_FRAMES - 1}.*{N_FRAMES}"):
        evaluate_got10k(bad, root)
    shutil.rmtree(bad / names[2])
    with pytest.raises(FileNotFoundError, match=rf"{names[2]}_001\.txt"):
        evaluate_got10k(bad, root)
    with pytest.raises(ValueError, match="withheld"):
        evaluate_got10k(bad, root, split="test")


# ----------------------------------------------------------------------------------------------------------------
# Result files
# ----------------------------------------------------------------------------------------------------------------
def test_write_read_roundtrip_and_layouts(tmp_path):
    boxes = np.array([[1.23456, 2, 3, 4], [5, 6, 7.5, 8]])
    p = write_results(tmp_path, "seq", boxes, times=[0.1, 0.2])
    assert p == os.path.join(tmp_path, "seq", "seq_001.txt")
    assert open(p).read() == "1.2346,2.0000,3.0000,4.0000\n5.0000,6.0000,7.5000,8.0000\n"
    np.testing.assert_allclose(read_results(tmp_path, "seq"), np.round(boxes, 4))
    np.testing.assert_allclose(read_times(tmp_path, "seq"), [0.1, 0.2])
    assert sorted(os.listdir(tmp_path / "seq")) == ["seq_001.txt", "seq_time.txt"]  # no temporary left behind
    p = write_results(tmp_path / "lasot", "cat-1", boxes, fmt="lasot")
    assert p == os.path.join(tmp_path, "lasot", "cat-1.txt")
    np.testing.assert_allclose(read_results(tmp_path / "lasot", "cat-1", fmt="lasot"), np.round(boxes, 4))
    # pytracking's own LaSOT files are tab-separated integers; whitespace works too
    (tmp_path / "lasot" / "cat-2.txt").write_text("1\t2\t3\t4\n5 6  7 8\n\n")
    np.testing.assert_array_equal(read_results(tmp_path / "lasot", "cat-2", fmt="lasot"), [[1, 2, 3, 4], [5, 6, 7, 8]])
    with pytest.raises(ValueError, match="times"):
        write_results(tmp_path, "seq", boxes, times=[0.1])
    with pytest.raises(ValueError, match="format"):
        write_results(tmp_path, "seq", boxes, fmt="otb")


def test_malformed_and_missing_files(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("1,2,3,4\n1,2,3,4\n1,2,3\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 3: expected 4 fields"):
        load_boxes(f)
    f.write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ValueError, match=r"r\.txt, line 2: non-numeric"):
        load_boxes(f)
    f.write_text("1,2,3,4\n\n1,2,3,4\n")
    with pytest.raises(ValueError, match="line 2"):
        load_boxes(f)
    f.write_text("1,2,nan,4\n")
    with pytest.raises(ValueError, match="line 1: non-finite"):
        load_boxes(f)
    with pytest.raises(FileNotFoundError, match=r"nope[/\\]nope_001\.txt"):
        read_results(tmp_path, "nope")


def test_zip_submission_layout(tmp_path):
    names = ["GOT-10k_Test_000001", "GOT-10k_Test_000002"]
    for n in names:
        write_results(tmp_path / "res", n, np.ones((3, 4)), times=[0.01] * 3)
    write_results(tmp_path / "res", names[1], np.ones((3, 4)), repetition=2)
    members = zip_got10k_submission(tmp_path / "res", tmp_path / "sub.zip", sequences=names)
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        listed = sorted(zf.namelist())
        assert zf.read(f"{names[0]}/{names[0]}_001.txt").decode().splitlines()[0] == "1.0000,1.0000,1.0000,1.0000"
    assert (
        listed
        == sorted(members)
        == sorted(
            [f"{n}/{n}_001.txt" for n in names]
            + [f"{n}/{n}_time.txt" for n in names]
            + [f"{names[1]}/{names[1]}_002.txt"]
        )
    )
    assert sorted(zip_got10k_submission(tmp_path / "res", tmp_path / "all.zip")) == sorted(members)
    os.remove(tmp_path / "res" / names[1] / f"{names[1]}_time.txt")
    with pytest.raises(FileNotFoundError, match="GOT-10k_Test_000003"):
        zip_got10k_submission(tmp_path / "res", tmp_path / "bad.zip", sequences=names + ["GOT-10k_Test_000003"])
    with pytest.raises(FileNotFoundError, match=names[1]):
        zip_got10k_submission(tmp_path / "res", tmp_path / "bad.zip", sequences=names)
    assert not os.path.exists(tmp_path / "bad.zip")


# ----------------------------------------------------------------------------------------------------------------
# LaSOT
# ----------------------------------------------------------------------------------------------------------------
def _gt(n: int = 10) -> np.ndarray:
    return np.array([[50.0 + 3 * i, 40.0 + 2 * i, 100.0, 100.0] for i in range(n)])


def test_lasot_perfect_tracker():
    gt = _gt()
    out = lasot_metrics([gt, gt[:5]], [gt.copy(), gt[:5].copy()])
    # strict IoU > 1.0 never holds at the last of the 21 thresholds: pytracking's ceiling is 20/21
    np.testing.assert_array_equal(out["success_curve"], [1.0] * 20 + [0.0])
    assert out["auc"] == pytest.approx(20 / 21)
    assert out["precision20"] == 1.0 and out["norm_precision"] == 1.0
    np.testing.assert_array_equal(out["precision_curve"], np.ones(51))


def test_lasot_centre_offsets():
    gt = _gt()
    n = len(gt)
    near = gt + [6.0, 8.0, 0, 0]  # centre error 10 px, normalised 0.1
    out = lasot_metrics([gt], [near])
    assert out["precision20"] == 1.0 and out["norm_precision"] == 1.0
    np.testing.assert_allclose(out["precision_curve"], np.where(LASOT_CENTER_THRESHOLDS >= 10, 1.0, 1 / n))
    far = gt + [30.0, 0, 0, 0]  # 30 px, normalised 0.3: only the first frame (set to the ground truth) succeeds
    out = lasot_metrics([gt], [far])
    assert out["precision20"] == pytest.approx(1 / n) and out["norm_precision"] == pytest.approx(1 / n)
    np.testing.assert_allclose(out["precision_curve"], np.where(LASOT_CENTER_THRESHOLDS >= 30, 1.0, 1 / n))


def test_lasot_known_iou_auc():
    gt = _gt()
    n = len(gt)
    half = gt.copy()
    half[:, 2] = 50.0  # same corner, half the width: IoU exactly 0.5
    out = lasot_metrics([gt], [half])
    ious = np.array([1.0] + [0.5] * (n - 1))  # first frame is the ground truth
    expected = np.array([np.mean(ious > t) for t in np.linspace(0, 1, 21)])
    np.testing.assert_allclose(out["success_curve"], expected)
    assert out["auc"] == pytest.approx(expected.mean())
    assert out["success_curve"][9] == 1.0 and out["success_curve"][10] == pytest.approx(1 / n)  # t = 0.45, 0.5
    # per-sequence curves are averaged over sequences, not over frames
    out2 = lasot_metrics([gt, gt[:4]], [half, gt[:4].copy()])
    perfect = np.array([1.0] * 20 + [0.0])
    np.testing.assert_allclose(out2["success_curve"], (expected + perfect) / 2)
    assert out2["auc"] == pytest.approx((expected.mean() + 20 / 21) / 2)


def test_lasot_invisible_and_invalid_frames():
    gt = _gt()
    n = len(gt)
    visible = np.ones(n, bool)
    visible[[3, 4]] = False  # fully occluded / out of view: failures for every measure, still in the denominator
    gt_bad = gt.copy()
    gt_bad[6] = 0.0  # empty box, target flagged visible
    pred = gt_bad.copy()
    pred[6] = gt[6]
    out = lasot_metrics([gt_bad], [pred], [visible])
    assert out["success_curve"][0] == pytest.approx((n - 3) / n)
    assert out["precision20"] == pytest.approx((n - 3) / n)
    # pytracking marks the empty-box frame -1 (a success) for the normalised error when the target is visible
    assert out["norm_precision"] == pytest.approx((n - 2) / n)
    assert lasot_metrics([gt], [gt.copy()], [visible])["norm_precision"] == pytest.approx((n - 2) / n)


def test_lasot_empty_prediction_repeats_previous_box_and_errors():
    gt = np.array([[10.0, 10, 20, 20]] * 6)
    pred = gt.copy()
    pred[3] = [10, 10, 0, 20]
    assert lasot_metrics([gt], [pred])["auc"] == pytest.approx(20 / 21)
    pred[3] = [10, 10, -1, 20]
    with pytest.raises(ValueError, match="invalid results"):
        lasot_metrics([gt], [pred], names=["cat-1"])
    with pytest.raises(ValueError, match=r"cat-1.*5 frames.*6"):
        lasot_metrics([gt], [gt[:5]], names=["cat-1"])


def test_evaluate_lasot_layout(tmp_path):
    rng = np.random.default_rng(1)
    root, res = tmp_path / "lasot", tmp_path / "res"
    names = ["cat-1", "rubicCube-6"]
    gts, preds, vis = [], [], []
    for name in names:
        d = root / name.rsplit("-", 1)[0] / name
        d.mkdir(parents=True)
        n = int(rng.integers(8, 15))
        gt = np.round(np.column_stack([rng.uniform(0, 200, (n, 2)), rng.uniform(10, 80, (n, 2))]), 0)
        occ = (rng.random(n) < 0.2).astype(int)
        oov = (rng.random(n) < 0.2).astype(int)
        occ[0] = oov[0] = 0
        np.savetxt(d / "groundtruth.txt", gt, fmt="%d", delimiter=",")
        (d / "full_occlusion.txt").write_text(",".join(map(str, occ)))
        (d / "out_of_view.txt").write_text(",".join(map(str, oov)))
        pred = gt + rng.normal(0, 8, gt.shape) * [1, 1, 0, 0]
        write_results(res, name, pred, fmt="lasot")
        gts.append(gt)
        preds.append(np.round(pred, 4))
        vis.append((occ == 0) & (oov == 0))
    out = evaluate_lasot(res, root, sequences=names)
    ref = lasot_metrics(gts, preds, vis, names=names)
    for key in ("auc", "precision20", "norm_precision"):
        assert out[key] == pytest.approx(ref[key], abs=1e-12)
    assert 0 < out["auc"] < 20 / 21 and len(out["success_curve"]) == len(LASOT_OVERLAP_THRESHOLDS)
    assert evaluate_lasot(res, root, sequences="all")["auc"] == out["auc"]  # every sequence under the root
    with pytest.raises(FileNotFoundError, match="278 of the 280 LaSOT sequences"):
        evaluate_lasot(res, root)  # by default the protocol's 280 test sequences, two of them here
    os.remove(res / "cat-1.txt")
    with pytest.raises(FileNotFoundError, match=r"cat-1\.txt"):
        evaluate_lasot(res, root, sequences=names)


# ----------------------------------------------------------------------------------------------------------------
# Plots and CLI
# ----------------------------------------------------------------------------------------------------------------
def test_plot_curves_png(tmp_path):
    pytest.importorskip("matplotlib")
    curves = {"A": np.linspace(1, 0, 21), "B": np.linspace(0.9, 0, 21)}
    for kind, data in (("success", curves), ("precision", {"A": np.linspace(0, 1, 51)})):
        path = plot_curves(data, tmp_path / "plots" / f"{kind}.png", kind=kind)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="kind"):
        plot_curves(curves, tmp_path / "x.png", kind="roc")


def test_cli_got10k_val(got10k_tree, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    base, root, result_dir, names = got10k_tree
    spec = importlib.util.spec_from_file_location(
        "eval_tracker", os.path.join(os.path.dirname(__file__), "..", "..", "tools", "eval_tracker.py")
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    json_path = tmp_path / "m.json"
    rc = cli.main(
        [
            "--dataset",
            "got10k-val",
            "--results",
            str(result_dir),
            "--data-root",
            str(root),
            "--json",
            str(json_path),
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert rc == 0
    assert "AO" in capsys.readouterr().out
    data = json.loads(json_path.read_text())
    assert data["ao"] == pytest.approx(evaluate_got10k(result_dir, root)["ao"])
    assert os.path.getsize(tmp_path / "plots" / "got10k-val_success.png") > 0
    assert cli.main(["--dataset", "got10k-test", "--results", str(result_dir)]) == 2
