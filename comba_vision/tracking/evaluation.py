"""Tracking evaluation: result files, the GOT-10k and LaSOT protocols, submission zips and plots.

Everything here is NumPy; matplotlib is imported only by :func:`plot_curves`. All scores are fractions in
``[0, 1]`` (pytracking prints the LaSOT ones as percentages: multiply by 100 to compare).

Result files
    A tracker's output for one sequence is an ``[N, 4]`` array of ``x, y, w, h`` boxes (0-based pixel
    coordinates of the top-left corner, width, height), one row per frame, the first row being the initial box.

    * ``fmt="got10k"`` (the GOT-10k toolkit / evaluation server layout):
      ``{dir}/{seq}/{seq}_001.txt`` (``_002``, ``_003`` for further repetitions of a stochastic tracker), one
      ``x,y,w,h`` line per frame, comma-separated, 4 decimals; ``{dir}/{seq}/{seq}_time.txt``, the seconds
      spent on each frame, one per line (``%.8f``, as the toolkit writes them).
    * ``fmt="lasot"`` (the pytracking / OSTrack layout): ``{dir}/{seq}.txt``, one ``x,y,w,h`` line per frame,
      **comma-separated floats with 4 decimals** (pytracking itself writes tab-separated integers for LaSOT;
      floats keep sub-pixel precision and its loader reads both), and ``{dir}/{seq}_time.txt``.

    The readers accept comma, tab or whitespace separators (mixed too). Files are written to a temporary file
    in the same folder and renamed into place, so a crash never leaves a half-written result.

GOT-10k protocol (:func:`got10k_metrics`, :func:`evaluate_got10k`)
    Reproduces ``got10k.experiments.ExperimentGOT10k.report`` of the official toolkit (``got10k`` 0.1.3,
    ``got10k/experiments/got10k.py`` and ``rect_iou`` in ``got10k/utils/metrics.py``) on the validation split:

    * the first frame is dropped; both boxes of every other frame are bounded by the image size ``(W, H)`` the
      toolkit's way, which is *not* a geometric crop: ``x = clip(x, 0, W)``, ``y = clip(y, 0, H)``, then
      ``w = clip(w, 0, W - x)``, ``h = clip(h, 0, H - y)`` with the already clipped ``x, y`` (a box sticking
      out on the left is shifted right, not cut);
    * IoU ``= inter / (union + eps)`` with ``eps`` the float64 machine epsilon, clipped to ``[0, 1]``;
    * only frames with ``cover > 0`` (``cover.label``; the toolkit does not use ``absence.label``) are kept;
    * the IoUs of all kept frames of all sequences (and of all repetitions ``_001, _002, ...``) are
      concatenated and averaged **over frames** (not per sequence first): ``ao = mean(iou)``,
      ``sr50 = mean(iou > 0.5)``, ``sr75 = mean(iou > 0.75)`` (strict ``>``, as the toolkit's ``sr``),
      success curve ``mean(iou > t)`` for the 101 thresholds ``t = linspace(0, 1, 101)``;
    * ``speed_fps = mean(1 / t)`` over all per-frame times that are not NaN and ``> 0`` (first frame included),
      ``-1`` when there are none.

    The image size comes from ``meta_info.ini``'s ``resolution`` as in the toolkit; when that file is absent
    the first frame (``00000001.jpg``) is opened with PIL (header only), which gives the same size on the
    official data. Note that the evaluation server ranks the test split by class-balanced mAO / mSR, which the
    local toolkit (and this module) do not compute: local val figures are frame-averaged.

LaSOT protocol (:func:`lasot_metrics`, :func:`evaluate_lasot`)
    Reproduces pytracking's ``pytracking/analysis/extract_results.py`` (``calc_seq_err_robust`` and
    ``extract_results`` with ``dataset == 'lasot'``; OSTrack's ``lib/test/analysis`` copy with its default
    ``exclude_invalid_frames=False`` is the same) and ``plot_results.get_auc_curve`` / ``get_prec_curve``:

    * a prediction with NaN or a negative width/height is an error; a prediction with zero width or height
      is replaced by the previous frame's (already repaired) prediction;
    * **the first frame is not dropped**: its prediction is overwritten with the ground truth, so it always
      counts as a success (IoU 1, centre error 0) in a frame with a valid, visible target;
    * ``valid = (gt_w > 0) & (gt_h > 0) & visible``, ``visible = (full_occlusion == 0) & (out_of_view == 0)``;
    * IoU with pytracking's ``+1`` pixel arithmetic (``br = x + w - 1``, ``size = br - tl + 1``, no epsilon),
      centre ``x + (w - 1) / 2``; the normalised centre error divides both centres by the ground truth
      ``(w, h)``;
    * invalid frames get IoU ``-1`` and centre error ``inf`` (failures at every threshold) and normalised
      centre error ``-1``; frames where the target is not visible then get ``inf`` for both centre errors.
      So a frame whose box is empty but whose target is flagged visible counts as a *success* for the
      normalised precision only (pytracking's behaviour, kept for equal numbers);
    * every sequence is divided by its full length (invalid and invisible frames count as failures rather
      than being excluded), then the per-sequence curves are averaged **over sequences**;
    * success ``mean(iou > t)`` for ``t = linspace(0, 1, 21)`` and ``auc = mean(success_curve)``: because the
      last threshold is 1.0 and the comparison is strict, a perfect tracker scores ``auc = 20/21 = 0.952``
      (pytracking's well-known ceiling of 95.2); precision ``mean(err <= t)`` for ``t = 0, 1, ..., 50`` px,
      reported at 20 px; normalised precision for ``t = 0, 0.01, ..., 0.5``, reported at 0.2.

    Deviations: a result file of another length than the ground truth is an error (pytracking silently
    truncates longer ones); curves are kept in float64 (pytracking stores them in float32, a 1e-7 difference);
    thresholds are ``np.linspace`` values, equal to pytracking's ``torch.arange`` ones within one ulp.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

PathLike = str | os.PathLike

GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
LASOT_OVERLAP_THRESHOLDS = np.linspace(0.0, 1.0, 21)
LASOT_CENTER_THRESHOLDS = np.arange(51, dtype=np.float64)  # pixels
LASOT_NORM_CENTER_THRESHOLDS = np.arange(51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20  # 20 px on LASOT_CENTER_THRESHOLDS, 0.2 on LASOT_NORM_CENTER_THRESHOLDS

_SPLIT = re.compile(r"[,\s]+")
_FORMATS = ("got10k", "lasot")

__all__ = [
    "GOT10K_THRESHOLDS",
    "LASOT_CENTER_THRESHOLDS",
    "LASOT_NORM_CENTER_THRESHOLDS",
    "LASOT_OVERLAP_THRESHOLDS",
    "evaluate_got10k",
    "evaluate_lasot",
    "got10k_iou",
    "got10k_metrics",
    "lasot_metrics",
    "load_boxes",
    "load_values",
    "plot_curves",
    "read_results",
    "read_times",
    "result_path",
    "time_path",
    "write_results",
    "zip_got10k_submission",
]


# ----------------------------------------------------------------------------------------------------------------
# Parsing and writing
# ----------------------------------------------------------------------------------------------------------------
def _content_lines(path: PathLike) -> list[str]:
    """Lines of a text file with the trailing blank lines removed; FileNotFoundError names the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def load_boxes(path: PathLike, allow_nonfinite: bool = False) -> np.ndarray:
    """Read an ``[N, 4]`` float64 box file (one ``x,y,w,h`` per line; comma, tab or whitespace separated).

    Trailing blank lines are ignored. A line with another number of fields than 4, a non-numeric field, a
    blank line inside the file, or (unless ``allow_nonfinite``) a NaN / infinite value raises ValueError
    naming the file and the 1-based line number; a missing file raises FileNotFoundError naming the path.
    """
    path = os.fspath(path)
    rows: list[list[float]] = []
    for i, line in enumerate(_content_lines(path), start=1):
        fields = [f for f in _SPLIT.split(line.strip()) if f]
        if len(fields) != 4:
            raise ValueError(f"{path}, line {i}: expected 4 fields (x, y, w, h), got {len(fields)}: {line!r}")
        try:
            row = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{path}, line {i}: non-numeric field in {line!r}") from None
        if not allow_nonfinite and not all(math.isfinite(v) for v in row):
            raise ValueError(f"{path}, line {i}: non-finite value in {line!r}")
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def load_values(path: PathLike) -> np.ndarray:
    """Read every number of a label / time file into a flat float64 array.

    Accepts one value per line (``cover.label``, ``*_time.txt``), one comma-separated line (LaSOT's
    ``full_occlusion.txt``) or a table (a GOT-10k time file with one column per repetition). NaN is accepted.
    A non-numeric field raises ValueError naming the file and line; a missing file FileNotFoundError.
    """
    path = os.fspath(path)
    values: list[float] = []
    for i, line in enumerate(_content_lines(path), start=1):
        for f in _SPLIT.split(line.strip()):
            if not f:
                continue
            try:
                values.append(float(f))
            except ValueError:
                raise ValueError(f"{path}, line {i}: non-numeric field {f!r}") from None
    return np.asarray(values, dtype=np.float64)


def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise ValueError(f"unknown result format {fmt!r}; expected one of {_FORMATS}")


def result_path(result_dir: PathLike, seq_name: str, fmt: str = "got10k", repetition: int = 1) -> str:
    """Path of a sequence's box file: ``{dir}/{seq}/{seq}_{rep:03d}.txt`` (got10k) or ``{dir}/{seq}.txt``."""
    _check_format(fmt)
    result_dir = os.fspath(result_dir)
    if fmt == "got10k":
        return os.path.join(result_dir, seq_name, f"{seq_name}_{repetition:03d}.txt")
    if repetition != 1:
        raise ValueError("the lasot result layout holds a single run per sequence (repetition=1)")
    return os.path.join(result_dir, f"{seq_name}.txt")


def time_path(result_dir: PathLike, seq_name: str, fmt: str = "got10k") -> str:
    """Path of a sequence's time file: ``{dir}/{seq}/{seq}_time.txt`` (got10k) or ``{dir}/{seq}_time.txt``."""
    _check_format(fmt)
    result_dir = os.fspath(result_dir)
    if fmt == "got10k":
        return os.path.join(result_dir, seq_name, f"{seq_name}_time.txt")
    return os.path.join(result_dir, f"{seq_name}_time.txt")


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it into place."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _as_boxes(boxes: Any, what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what}: expected an [N, 4] array of x, y, w, h boxes, got shape {arr.shape}")
    return arr


def write_results(
    result_dir: PathLike,
    seq_name: str,
    boxes: Any,
    times: Any = None,
    fmt: str = "got10k",
    repetition: int = 1,
) -> str:
    """Write one sequence's ``[N, 4]`` xywh boxes (and optional ``[N]`` seconds per frame); returns the box path.

    See the module docstring for the two layouts. Boxes are written with 4 decimals, comma-separated; times
    with ``%.8f``. Non-finite boxes or a times array of another length are a ValueError.
    """
    arr = _as_boxes(boxes, f"results of {seq_name}")
    if not np.isfinite(arr).all():
        raise ValueError(f"results of {seq_name}: boxes must be finite")
    path = result_path(result_dir, seq_name, fmt, repetition)
    atomic_write_text(path, "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in arr))
    if times is not None:
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(t) != len(arr):
            raise ValueError(f"times of {seq_name}: {len(t)} values for {len(arr)} boxes")
        atomic_write_text(time_path(result_dir, seq_name, fmt), "".join(f"{v:.8f}\n" for v in t))
    return path


def read_results(result_dir: PathLike, seq_name: str, fmt: str = "got10k", repetition: int = 1) -> np.ndarray:
    """Read one sequence's ``[N, 4]`` boxes from a result folder (FileNotFoundError naming the path if absent)."""
    return load_boxes(result_path(result_dir, seq_name, fmt, repetition))


def read_times(result_dir: PathLike, seq_name: str, fmt: str = "got10k") -> np.ndarray | None:
    """Read one sequence's per-frame times (all repetitions' columns, flattened); None when there is no file."""
    path = time_path(result_dir, seq_name, fmt)
    return load_values(path) if os.path.isfile(path) else None


def _got10k_repetitions(result_dir: str, seq_name: str) -> list[str]:
    """Box files ``{seq}_NNN.txt`` of a sequence folder sorted by repetition (the toolkit reads them all)."""
    folder = os.path.join(result_dir, seq_name)
    pattern = re.compile(re.escape(seq_name) + r"_(\d+)\.txt")
    found = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            m = pattern.fullmatch(name)
            if m:
                found.append((int(m.group(1)), os.path.join(folder, name)))
    if not found:
        raise FileNotFoundError(f"results for sequence {seq_name} not found: {result_path(result_dir, seq_name)}")
    return [p for _, p in sorted(found)]


def zip_got10k_submission(
    result_dir: PathLike, zip_path: PathLike, sequences: Sequence[str] | None = None
) -> list[str]:
    """Zip GOT-10k results in the evaluation server's layout; returns the archive member names.

    The archive holds, for every sequence, ``{seq}/{seq}_001.txt`` (and any further repetitions
    ``{seq}/{seq}_002.txt``, ...) and ``{seq}/{seq}_time.txt``, at the top level of the zip (what the
    toolkit's ``report`` on the test split produces). ``sequences`` (e.g. the 180 names of
    ``test/list.txt``) are all required: if any lacks its ``_001`` or time file, FileNotFoundError names
    them. Without ``sequences`` every sub-folder of ``result_dir`` holding a ``{seq}_001.txt`` is taken.
    The zip is written to a temporary file and renamed into place.
    """
    result_dir = os.fspath(result_dir)
    zip_path = os.fspath(zip_path)
    if sequences is None:
        if not os.path.isdir(result_dir):
            raise FileNotFoundError(f"result folder not found: {result_dir}")
        sequences = sorted(d for d in os.listdir(result_dir) if os.path.isfile(result_path(result_dir, d, "got10k")))
        if not sequences:
            raise FileNotFoundError(f"no GOT-10k results ({{seq}}/{{seq}}_001.txt) in {result_dir}")
    missing = [
        s
        for s in sequences
        if not (os.path.isfile(result_path(result_dir, s)) and os.path.isfile(time_path(result_dir, s)))
    ]
    if missing:
        shown = ", ".join(missing[:20]) + (f", ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise FileNotFoundError(
            f"GOT-10k submission incomplete: {len(missing)} sequence(s) lack {{seq}}_001.txt or {{seq}}_time.txt "
            f"in {result_dir}: {shown}"
        )
    members: list[tuple[str, str]] = []
    for s in sequences:
        for p in _got10k_repetitions(result_dir, s):
            members.append((p, f"{s}/{os.path.basename(p)}"))
        members.append((time_path(result_dir, s), f"{s}/{s}_time.txt"))
    folder = os.path.dirname(os.path.abspath(zip_path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(zip_path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for src, arcname in members:
                zf.write(src, arcname)
        os.replace(tmp, zip_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return [a for _, a in members]


# ----------------------------------------------------------------------------------------------------------------
# GOT-10k
# ----------------------------------------------------------------------------------------------------------------
def _bound_boxes(boxes: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """The toolkit's bounding of xywh boxes by the image size ``(W, H)`` (corner clipped, then size)."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    width, height = float(bound[0]), float(bound[1])
    out[:, 0] = np.clip(out[:, 0], 0, width)
    out[:, 1] = np.clip(out[:, 1], 0, height)
    out[:, 2] = np.clip(out[:, 2], 0, width - out[:, 0])
    out[:, 3] = np.clip(out[:, 3], 0, height - out[:, 1])
    return out


def got10k_iou(pred: np.ndarray, gt: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Per-row IoU of two ``[N, 4]`` xywh arrays as the GOT-10k toolkit computes it (see the module docstring)."""
    a = _as_boxes(pred, "pred")
    b = _as_boxes(gt, "gt")
    if a.shape != b.shape:
        raise ValueError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    if bound is not None:
        a = _bound_boxes(a, bound)
        b = _bound_boxes(b, bound)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _speed_fps(times: np.ndarray) -> float:
    """``mean(1 / t)`` over the times that are not NaN and > 0, or -1 when there are none (the toolkit's rule)."""
    t = times[~np.isnan(times)]
    t = t[t > 0]
    return float(np.mean(1.0 / t)) if len(t) else -1.0


def _got10k_scores(ious: np.ndarray) -> dict[str, Any]:
    if len(ious) == 0:
        raise ValueError("no frame to evaluate (every frame after the first has cover == 0)")
    return {
        "ao": float(np.mean(ious)),
        "sr50": float(np.mean(ious > 0.5)),
        "sr75": float(np.mean(ious > 0.75)),
        "success_curve": np.mean(ious[:, None] > GOT10K_THRESHOLDS[None, :], axis=0),
    }


def got10k_metrics(
    gt: Sequence[np.ndarray],
    results: Sequence[Any],
    covers: Sequence[np.ndarray],
    img_sizes: Sequence[tuple[float, float]],
    times: Sequence[np.ndarray | None] | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """GOT-10k AO / SR / success curve, equal to the official toolkit's val report (module docstring).

    Args:
        gt: per sequence, the ``[N, 4]`` xywh ground truth.
        results: per sequence, the ``[N, 4]`` predictions, or ``[R, N, 4]`` / a list of ``R`` such arrays for
            ``R`` repetitions (all are pooled, as the toolkit does).
        covers: per sequence, the ``[N]`` ``cover.label`` values (frames with ``cover > 0`` are scored).
        img_sizes: per sequence, the image ``(width, height)``.
        times: optional, per sequence, the seconds per frame (any shape, NaN / non-positive ignored) or None.
        names: optional sequence names for error messages and ``per_sequence``.

    Returns:
        ``ao``, ``sr50``, ``sr75`` (fractions), ``success_curve`` (``[101]`` over ``GOT10K_THRESHOLDS``),
        ``speed_fps`` (-1 without times), ``num_frames`` (scored frames, all repetitions) and ``per_sequence``
        (``{name: {ao, sr50, sr75, speed_fps, length}}``).
    """
    n = len(gt)
    if not (len(results) == len(covers) == len(img_sizes) == n) or (times is not None and len(times) != n):
        raise ValueError("gt, results, covers, img_sizes (and times) must have one entry per sequence")
    if n == 0:
        raise ValueError("no sequence to evaluate")
    names = list(names) if names is not None else [f"sequence {i}" for i in range(n)]
    all_ious: list[np.ndarray] = []
    all_times: list[np.ndarray] = []
    per_sequence: dict[str, dict[str, Any]] = {}
    for i in range(n):
        name = names[i]
        anno = _as_boxes(gt[i], f"ground truth of {name}")
        res = results[i]
        if isinstance(res, (list, tuple)) and res and all(np.ndim(r) == 2 for r in res):
            runs = list(res)  # R repetitions, possibly given as a list
        else:
            arr = np.asarray(res, dtype=np.float64)
            runs = [arr] if arr.ndim == 2 else list(arr)
        cover = np.asarray(covers[i], dtype=np.float64).reshape(-1)
        if len(cover) != len(anno):
            raise ValueError(f"{name}: cover has {len(cover)} values for {len(anno)} ground-truth frames")
        keep = cover[1:] > 0
        seq_ious = []
        for run in runs:
            boxes = _as_boxes(run, f"results of {name}")
            if len(boxes) != len(anno):
                raise ValueError(f"{name}: result has {len(boxes)} frames, ground truth has {len(anno)}")
            seq_ious.append(got10k_iou(boxes[1:], anno[1:], bound=img_sizes[i])[keep])
        ious = np.concatenate(seq_ious)
        all_ious.append(ious)
        seq_t = np.asarray([] if times is None or times[i] is None else times[i], dtype=np.float64).reshape(-1)
        all_times.append(seq_t)
        entry: dict[str, Any] = {"length": len(anno) - 1, "speed_fps": _speed_fps(seq_t)}
        if len(ious):
            s = _got10k_scores(ious)
            entry.update(ao=s["ao"], sr50=s["sr50"], sr75=s["sr75"])
        else:
            entry.update(ao=float("nan"), sr50=float("nan"), sr75=float("nan"))
        per_sequence[name] = entry
    ious = np.concatenate(all_ious)
    out = _got10k_scores(ious)
    out["speed_fps"] = _speed_fps(np.concatenate(all_times))
    out["num_frames"] = len(ious)
    out["per_sequence"] = per_sequence
    return out


def _read_list(path: str) -> list[str]:
    return [s.strip() for s in _content_lines(path) if s.strip()]


def _got10k_image_size(seq_dir: str) -> tuple[float, float]:
    """``(W, H)``: ``meta_info.ini``'s resolution as the toolkit reads it, else the first frame's size (PIL)."""
    meta = os.path.join(seq_dir, "meta_info.ini")
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                nums = re.findall(r"\d+(?:\.\d*)?", value)
                if key.strip() == "resolution" and len(nums) == 2:
                    return float(nums[0]), float(nums[1])
    frame = os.path.join(seq_dir, "00000001.jpg")
    if not os.path.isfile(frame):
        raise FileNotFoundError(f"cannot get the image size of {seq_dir}: no meta_info.ini and no {frame}")
    from PIL import Image

    with Image.open(frame) as im:
        return float(im.size[0]), float(im.size[1])


def evaluate_got10k(result_dir: PathLike, dataset_root: PathLike, split: str = "val") -> dict[str, Any]:
    """Evaluate GOT-10k-layout results against ``{dataset_root}/{split}`` (the official layout).

    Reads ``{split}/list.txt`` and, per sequence, ``groundtruth.txt``, ``cover.label`` and the image size
    (``meta_info.ini`` or ``00000001.jpg``), and from ``result_dir`` every repetition ``{seq}/{seq}_NNN.txt``
    plus ``{seq}/{seq}_time.txt`` when present. Returns :func:`got10k_metrics`' dict plus ``num_sequences``.
    The test split's ground truth is withheld: use :func:`zip_got10k_submission` for it.
    """
    if split == "test":
        raise ValueError("GOT-10k test ground truth is withheld: zip the results with zip_got10k_submission")
    result_dir = os.fspath(result_dir)
    split_dir = os.path.join(os.fspath(dataset_root), split)
    names = _read_list(os.path.join(split_dir, "list.txt"))
    gts, runs, covers, sizes, times = [], [], [], [], []
    for name in names:
        seq_dir = os.path.join(split_dir, name)
        gts.append(load_boxes(os.path.join(seq_dir, "groundtruth.txt")))
        covers.append(load_values(os.path.join(seq_dir, "cover.label")))
        sizes.append(_got10k_image_size(seq_dir))
        runs.append([load_boxes(p) for p in _got10k_repetitions(result_dir, name)])
        times.append(read_times(result_dir, name))
    out = got10k_metrics(gts, runs, covers, sizes, times=times, names=names)
    out["num_sequences"] = len(names)
    return out


# ----------------------------------------------------------------------------------------------------------------
# LaSOT (pytracking's analysis)
# ----------------------------------------------------------------------------------------------------------------
def _lasot_sequence_curves(
    pred: np.ndarray, anno: np.ndarray, visible: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success, precision and normalised-precision curves of one sequence (pytracking's calc_seq_err_robust)."""
    if np.isnan(pred).any() or (pred[:, 2:] < 0).any():
        raise ValueError(f"{name}: invalid results (NaN or negative width/height)")
    if np.isnan(anno).any():
        raise ValueError(f"{name}: NaN in the ground truth")
    if len(pred) != len(anno):
        raise ValueError(f"{name}: result has {len(pred)} frames, ground truth has {len(anno)}")
    if len(visible) != len(anno):
        raise ValueError(f"{name}: visibility has {len(visible)} frames, ground truth has {len(anno)}")
    pred = pred.copy()
    for i in range(1, len(pred)):  # empty predictions repeat the previous (repaired) box
        if (pred[i, 2:] == 0).any():
            pred[i] = pred[i - 1]
    pred[0] = anno[0]
    valid = (anno[:, 2] > 0) & (anno[:, 3] > 0) & visible

    with np.errstate(divide="ignore", invalid="ignore"):
        tl = np.maximum(pred[:, :2], anno[:, :2])
        br = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, anno[:, :2] + anno[:, 2:] - 1.0)
        inter = np.clip(br - tl + 1.0, 0, None).prod(axis=1)
        union = pred[:, 2:].prod(axis=1) + anno[:, 2:].prod(axis=1) - inter
        overlap = inter / union
        pred_c = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
        anno_c = anno[:, :2] + 0.5 * (anno[:, 2:] - 1.0)
        center = np.sqrt(((pred_c - anno_c) ** 2).sum(axis=1))
        center_norm = np.sqrt(((pred_c / anno[:, 2:] - anno_c / anno[:, 2:]) ** 2).sum(axis=1))
    overlap[~valid] = -1.0
    center[~valid] = np.inf
    center_norm[~valid] = -1.0
    center[~visible] = np.inf
    center_norm[~visible] = np.inf
    if np.isnan(overlap).any():
        raise ValueError(f"{name}: NaN in the computed overlaps")
    length = len(anno)  # LaSOT: invalid / invisible frames count as failures, they are not excluded
    success = (overlap[:, None] > LASOT_OVERLAP_THRESHOLDS[None, :]).sum(axis=0) / length
    precision = (center[:, None] <= LASOT_CENTER_THRESHOLDS[None, :]).sum(axis=0) / length
    norm_precision = (center_norm[:, None] <= LASOT_NORM_CENTER_THRESHOLDS[None, :]).sum(axis=0) / length
    return success, precision, norm_precision


def lasot_metrics(
    gt: Sequence[np.ndarray],
    results: Sequence[np.ndarray],
    visible: Sequence[np.ndarray] | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """LaSOT success AUC, precision at 20 px and normalised precision at 0.2, as pytracking computes them.

    See the module docstring for the exact protocol (first frame set to the ground truth, invalid and
    invisible frames counted as failures, per-sequence curves averaged over sequences).

    Args:
        gt: per sequence, the ``[N, 4]`` xywh ground truth.
        results: per sequence, the ``[N, 4]`` predictions.
        visible: per sequence, an ``[N]`` bool array (``full_occlusion == 0 & out_of_view == 0``); None means
            visible everywhere.
        names: optional sequence names for error messages and ``per_sequence``.

    Returns:
        Fractions in ``[0, 1]``: ``auc`` (mean of ``success_curve``), ``precision20``, ``norm_precision``, the
        curves ``success_curve`` ``[21]``, ``precision_curve`` ``[51]``, ``norm_precision_curve`` ``[51]``
        (over ``LASOT_*_THRESHOLDS``), ``num_sequences`` and ``per_sequence`` (``{name: {auc, precision20,
        norm_precision}}``).
    """
    n = len(gt)
    if len(results) != n or (visible is not None and len(visible) != n):
        raise ValueError("gt, results (and visible) must have one entry per sequence")
    if n == 0:
        raise ValueError("no sequence to evaluate")
    names = list(names) if names is not None else [f"sequence {i}" for i in range(n)]
    succ, prec, norm = [], [], []
    per_sequence: dict[str, dict[str, float]] = {}
    for i in range(n):
        anno = _as_boxes(gt[i], f"ground truth of {names[i]}")
        pred = _as_boxes(results[i], f"results of {names[i]}")
        vis = np.ones(len(anno), bool) if visible is None else np.asarray(visible[i]).astype(bool).reshape(-1)
        s, p, q = _lasot_sequence_curves(pred, anno, vis, names[i])
        succ.append(s)
        prec.append(p)
        norm.append(q)
        per_sequence[names[i]] = {
            "auc": float(s.mean()),
            "precision20": float(p[PRECISION_INDEX]),
            "norm_precision": float(q[PRECISION_INDEX]),
        }
    success_curve = np.mean(succ, axis=0)
    precision_curve = np.mean(prec, axis=0)
    norm_precision_curve = np.mean(norm, axis=0)
    return {
        "auc": float(success_curve.mean()),
        "precision20": float(precision_curve[PRECISION_INDEX]),
        "norm_precision": float(norm_precision_curve[PRECISION_INDEX]),
        "success_curve": success_curve,
        "precision_curve": precision_curve,
        "norm_precision_curve": norm_precision_curve,
        "num_sequences": n,
        "per_sequence": per_sequence,
    }


def _lasot_sequences(root: str, sequences: Sequence[str] | PathLike | None) -> list[str]:
    """The sequences to score: a given list or list file; by default the protocol's 280 test sequences
    (``testing_set.txt`` at the root if present, else the official list); ``"all"``: every sequence on disk."""
    if sequences is not None and not isinstance(sequences, (str, os.PathLike)):
        return list(sequences)
    if sequences is not None and os.fspath(sequences) != "all":
        return _read_list(os.fspath(sequences))
    if sequences is None:
        listed = os.path.join(root, "testing_set.txt")
        if os.path.isfile(listed):
            return _read_list(listed)
        from .datasets import LASOT_TEST_SEQUENCES
        return sorted(LASOT_TEST_SEQUENCES, key=lambda n: (n.rsplit("-", 1)[0], int(n.rsplit("-", 1)[1])))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"LaSOT root not found: {root}")
    found = []
    for cls in sorted(os.listdir(root)):
        cls_dir = os.path.join(root, cls)
        if os.path.isdir(cls_dir):
            for seq in sorted(os.listdir(cls_dir)):
                if os.path.isfile(os.path.join(cls_dir, seq, "groundtruth.txt")):
                    found.append(seq)
    if not found:
        raise FileNotFoundError(f"no LaSOT sequence ({{class}}/{{seq}}/groundtruth.txt) under {root}")
    return found


def evaluate_lasot(
    result_dir: PathLike, dataset_root: PathLike, sequences: Sequence[str] | PathLike | None = None
) -> dict[str, Any]:
    """Evaluate pytracking-layout results (``{result_dir}/{seq}.txt``) on LaSOT.

    Ground truth is read from ``{root}/{class}/{seq}/groundtruth.txt``, ``full_occlusion.txt`` and
    ``out_of_view.txt`` (the class is the name before the last ``-``). ``sequences``: a list of names, or a
    text file with one per line, or ``"all"`` (every sequence found under the root); by default the
    280-sequence protocol-II test set (``{root}/testing_set.txt`` when it exists, else the official list).
    Returns :func:`lasot_metrics`' dict.
    """
    root = os.fspath(dataset_root)
    names = _lasot_sequences(root, sequences)
    missing = [n for n in names if not os.path.isdir(os.path.join(root, n.rsplit("-", 1)[0], n))]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(names)} LaSOT sequences to score are not under {root} (e.g. "
            f"{', '.join(missing[:3])}); give the sequences to score (a list, a file, or 'all')")
    gts, preds, visible = [], [], []
    for name in names:
        seq_dir = os.path.join(root, name.rsplit("-", 1)[0], name)
        anno = load_boxes(os.path.join(seq_dir, "groundtruth.txt"), allow_nonfinite=True)
        occluded = load_values(os.path.join(seq_dir, "full_occlusion.txt"))
        out_of_view = load_values(os.path.join(seq_dir, "out_of_view.txt"))
        for label, arr in (("full_occlusion.txt", occluded), ("out_of_view.txt", out_of_view)):
            if len(arr) != len(anno):
                raise ValueError(f"{name}: {label} has {len(arr)} values for {len(anno)} ground-truth frames")
        gts.append(anno)
        visible.append((occluded == 0) & (out_of_view == 0))
        preds.append(read_results(result_dir, name, fmt="lasot"))
    return lasot_metrics(gts, preds, visible, names=names)


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------
_PLOT_KINDS = {
    # kind: (x label, y label, title)
    "success": ("Overlap threshold", "Overlap Precision [%]", "Success plot"),
    "precision": ("Location error threshold [pixels]", "Distance Precision [%]", "Precision plot"),
    "norm_precision": ("Location error threshold", "Distance Precision [%]", "Normalized Precision plot"),
}


def plot_curves(
    named_curves: dict[str, Any], path_png: PathLike, kind: str = "success", title: str | None = None
) -> str:
    """Plot one curve per tracker to a PNG, pytracking-style (in %, legend ``name [score]``, best first).

    ``named_curves`` maps a name to a curve of fractions: a success curve over evenly spaced IoU thresholds in
    ``[0, 1]`` (21 for LaSOT, 101 for GOT-10k; the score is its mean, i.e. the AUC, which for GOT-10k is
    about the AO), a precision curve over 0..50 px (score at 20 px) or a normalised precision curve over
    0..0.5 (score at 0.2). Uses the Agg canvas directly (no pyplot, no global backend change). Returns the path.
    """
    if kind not in _PLOT_KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; expected one of {tuple(_PLOT_KINDS)}")
    if not named_curves:
        raise ValueError("nothing to plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xlabel, ylabel, default_title = _PLOT_KINDS[kind]
    entries = []
    for name, curve in named_curves.items():
        y = np.asarray(curve, dtype=np.float64).reshape(-1)
        if kind == "success":
            x = np.linspace(0.0, 1.0, len(y))
            score = y.mean()
        else:
            if len(y) != len(LASOT_CENTER_THRESHOLDS):
                raise ValueError(f"{kind} curve of {name!r} has {len(y)} points, expected 51")
            x = LASOT_CENTER_THRESHOLDS if kind == "precision" else LASOT_NORM_CENTER_THRESHOLDS
            score = y[PRECISION_INDEX]
        entries.append((float(score), name, x, y))
    entries.sort(key=lambda e: -e[0])

    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = ["-", "--", "-.", ":"]
    for i, (score, name, x, y) in enumerate(entries):
        ax.plot(x, 100.0 * y, styles[(i // 10) % len(styles)], linewidth=2, label=f"{name} [{100.0 * score:.1f}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or default_title, xlim=(x[0], x[-1]), ylim=(0, 100))
    ax.grid(True, linestyle="-.")
    ax.legend(loc="lower left" if kind == "success" else "lower right", fontsize=9)
    fig.tight_layout()
    path = os.fspath(path_png)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path


def to_jsonable(obj: Any) -> Any:
    """NumPy arrays / scalars to lists / floats, NaN and inf to None (strict JSON has neither), recursively."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
