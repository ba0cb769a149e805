"""tools/train_imagenet.py end to end on the CPU: demo accuracy, exact resume, torchrun (gloo), bad input."""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from comba_vision.train import trainer
from comba_vision.train.config import load_config, parse_overrides
from comba_vision.train.data import write_digits_imagefolder

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "tools" / "train_imagenet.py")


def _env(tmp_path):
    env = dict(os.environ, COMBA_VISION_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    env.pop("TRITON_INTERPRET", None)
    return env


def _run(args, tmp_path, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=timeout)


def _summary(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits_imagefolder(tmp_path_factory.mktemp("digits") / "tree")


def test_demo_reaches_90_percent_and_logs(tmp_path):
    """The README's main command: no arguments, built-in digits, >= 90% val top-1 (asserted by the run
    itself through min_val_top1 and again here), TensorBoard scalars, summary.csv, eval-only."""
    res = _run(["--output", str(tmp_path / "out")], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out" / "demo_digits"
    rows = _summary(out / "summary.csv")
    assert len(rows) == 10 and float(rows[-1]["val_top1"]) >= 90.0, rows[-1]
    assert (out / "last.pth").is_file() and (out / "best.pth").is_file()
    assert not list(out.glob("*.tmp"))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/images_per_s", "val/val_top1", "val/val_top5"} <= tags
    assert len(acc.Scalars("val/val_top1")) == 10

    ev = _run(["--eval-only", "--checkpoint", str(out / "best.pth"), "--output", str(tmp_path / "out")], tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    line = [ln for ln in ev.stderr.splitlines() + ev.stdout.splitlines() if ln.startswith("eval model")][0]
    assert float(line.split("top-1 ")[1].split("%")[0]) >= 90.0


def _small_cfg(digits, out, **over):
    base = dict(dataset="", data_dir=str(digits), model="comba_micro",
                model_kwargs=dict(img_size=32, patch_size=8, depth=1), epochs=2, batch_size=16,
                max_steps_per_epoch=3, workers=0, warmup_epochs=1, lr=1e-3, mixup=0.8, cutmix=1.0, aa=None,
                reprob=0.25, hflip=0.0, color_jitter=0.0, aug_repeats=0, model_ema=True, model_ema_decay=0.9,
                output=str(out), experiment="run", log_interval=1, crop_pct=1.0)
    base.update(over)
    return load_config(None, base)


def test_resume_is_exact(digits, tmp_path):
    trainer.train(_small_cfg(digits, tmp_path / "a"))
    trainer.train(_small_cfg(digits, tmp_path / "b", stop_after_epochs=1))
    assert len(_summary(tmp_path / "b" / "run" / "summary.csv")) == 1
    trainer.train(_small_cfg(digits, tmp_path / "b"), resume=str(tmp_path / "b" / "run" / "last.pth"))
    a = torch.load(tmp_path / "a" / "run" / "last.pth", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "last.pth", weights_only=False)
    assert a["epoch"] == b["epoch"] == 1 and a["step"] == b["step"] == 6
    for part in ("model", "model_ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k} differs after resume"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    ra = _summary(tmp_path / "a" / "run" / "summary.csv")[-1]
    rb = _summary(tmp_path / "b" / "run" / "summary.csv")[-1]
    assert ra["train_loss"] == rb["train_loss"] and ra["val_top1"] == rb["val_top1"]


def test_torchrun_two_cpu_processes(digits, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", SCRIPT,
           "--dataset", "''", "--data-dir", str(digits), "--model", "comba_micro",
           "--model-kwargs", "{img_size: 32, patch_size: 8, depth: 1}", "--epochs", "1", "--batch-size", "16",
           "--max-steps-per-epoch", "4", "--workers", "0", "--aa", "null", "--aug-repeats", "3",
           "--output", str(tmp_path / "out"), "--experiment", "ddp", "--min-val-top1", "null"]
    env = _env(tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""  # both ranks on the CPU, also on a machine with one GPU
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "weights identical across 2 ranks" in res.stderr + res.stdout
    assert (tmp_path / "out" / "ddp" / "last.pth").is_file()


def test_missing_or_misshaped_data(tmp_path, capsys, monkeypatch):
    """The CLI's exit status 2 and the message that names the problem: once as a process, then (the same
    main()) in this one, which saves a Python start-up per case."""
    import importlib.util
    res = _run(["--dataset", "''", "--data-dir", str(tmp_path / "nowhere")], tmp_path)
    assert res.returncode == 2 and "does not exist" in res.stderr and "ImageFolder" in res.stderr
    spec = importlib.util.spec_from_file_location("train_imagenet_cli", SCRIPT)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setenv("COMBA_VISION_CACHE", str(tmp_path / "cache"))

    def run(data_dir):
        code = cli.main(["--dataset", "''", "--data-dir", str(data_dir), "--output", str(tmp_path / "out")])
        return code, capsys.readouterr().err
    (tmp_path / "bad" / "train").mkdir(parents=True)
    (tmp_path / "bad" / "train" / "img.png").write_bytes(b"x")
    code, err = run(tmp_path / "bad")
    assert code == 2 and "no class folders" in err
    (tmp_path / "bad" / "train" / "a").mkdir()
    (tmp_path / "bad" / "train" / "a" / "1.png").write_bytes(b"x")
    code, err = run(tmp_path / "bad")
    assert code == 2 and "val is missing" in err.replace(str(tmp_path / "bad") + "/", ""), err


def test_unreadable_images_are_skipped_and_counted(digits, tmp_path):
    import shutil
    tree = tmp_path / "tree"
    shutil.copytree(digits, tree)
    victim = sorted((tree / "train" / "3").glob("*.png"))
    victim[0].write_bytes(b"not an image at all")
    data = victim[1].read_bytes()
    victim[1].write_bytes(data[: len(data) // 2])          # truncated PNG
    cfg = _small_cfg(tree, tmp_path / "out", epochs=1, max_steps_per_epoch=None, batch_size=64, mixup=0.0,
                     cutmix=0.0, model_ema=False)
    metrics = trainer.train(cfg)
    assert metrics["skipped_images"] >= 2


def test_decoding_dataset_skips_an_image_that_opens_but_does_not_decode(tmp_path):
    """A PNG cut in half opens (its header is whole) and fails when its pixels are decoded: the dataset skips it
    for the next sample and logs it as timm does (what SkipCounter counts), whatever timm's own loop does."""
    from PIL import Image
    from timm.data import create_dataset

    from comba_vision.train.data import DecodingImageDataset, SkipCounter, decoding_dataset
    root = tmp_path / "train"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (40 * i, 80, 120)).save(root / cls / f"{i}.png")
    data = (root / "a" / "1.png").read_bytes()
    (root / "a" / "1.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        Image.open(root / "a" / "1.png").convert("RGB")
    ds = decoding_dataset(create_dataset("", root=str(root), search_split=False, is_training=True))
    assert type(ds) is DecodingImageDataset
    skips = SkipCounter().install()
    try:
        items = [ds[i] for i in range(len(ds))]
    finally:
        logging.getLogger("timm.data.dataset").removeHandler(skips)
    assert skips.value == 1
    assert all(img.mode == "RGB" and img.size == (16, 16) for img, _ in items)
    assert [t for _, t in items] == [0, 0, 0, 1, 1, 1]  # the skipped index took the next sample (same class)


@pytest.mark.parametrize("opt", ["adamw", "sgd"])  # the NaN guard on the device (fused AdamW), on the host (SGD)
def test_non_finite_loss_stops_and_keeps_checkpoint(digits, tmp_path, request, opt):
    cfg = _small_cfg(digits, tmp_path / "out", stop_after_epochs=1, opt=opt)
    trainer.train(cfg)
    last = tmp_path / "out" / "run" / "last.pth"
    digest = hashlib.sha256(last.read_bytes()).hexdigest()

    request.getfixturevalue("nan_models")  # from here on the models output NaN
    with pytest.raises(trainer.NonFiniteLossError, match="non-finite loss"):
        trainer.train(_small_cfg(digits, tmp_path / "out", opt=opt), resume=str(last))
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    assert not list(last.parent.glob("*.tmp"))


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: comba_tiny\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="batchsize"):
        parse_overrides(["--batchsize", "3"])
    assert parse_overrides(["--batch-size", "3", "--model-kwargs", "{a: 1}", "--compile"]) == \
        dict(batch_size=3, model_kwargs={"a": 1}, compile=True)
    # YAML 1.1 would read 5e-4 as a string; hyphens in values survive --key=value
    assert parse_overrides(["--lr", "5e-4", "--data-dir=/d/my-set"]) == dict(lr=5e-4, data_dir="/d/my-set")
    with pytest.raises(ValueError, match="'epochs' expects int"):
        load_config(None, dict(epochs="ten"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("name", ["comba_tiny_in1k.yaml", "comba_small_in1k.yaml", "demo_digits.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(str(ROOT / "configs" / name))
    if name != "demo_digits.yaml":
        recipe = (cfg.epochs, cfg.lr_base, cfg.lr_base_size, cfg.weight_decay, cfg.warmup_epochs)
        assert recipe == (300, 1e-3, 1024, 0.05, 5)
        assert (cfg.mixup, cfg.cutmix, cfg.smoothing, cfg.reprob, cfg.aug_repeats) == (0.8, 1.0, 0.1, 0.25, 3)
        assert cfg.aa == "rand-m9-mstd0.5-inc1" and cfg.model_ema and cfg.interpolation == "bicubic"


def test_gradient_accumulation_counts_updates(digits, tmp_path):
    """3 micro-batches with accum_steps=2: two optimizer updates (the last group is short) per epoch."""
    trainer.train(_small_cfg(digits, tmp_path / "out", epochs=1, accum_steps=2, model_ema=False))
    ck = torch.load(tmp_path / "out" / "run" / "last.pth", weights_only=False)
    assert ck["step"] == 2 and ck["best_source"] == "model"


def test_tar_shards_are_read(digits, tmp_path):
    """DATA/val.tar (class folders inside a tar) is read by timm's tar reader, next to DATA/train/."""
    import shutil
    import tarfile

    from timm.data import create_dataset

    from comba_vision.train.data import check_layout
    shutil.copytree(digits / "train", tmp_path / "train")
    with tarfile.open(tmp_path / "val.tar", "w") as t:
        for cls in sorted(p.name for p in (digits / "val").iterdir()):
            t.add(digits / "val" / cls, arcname=cls)
    check_layout(str(tmp_path), ("train", "val"))
    val = create_dataset("", root=trainer._split_root(str(tmp_path), "val"), search_split=False)
    ref = create_dataset("", root=trainer._split_root(str(digits), "val"), search_split=False)
    assert type(val.reader).__name__ == "ReaderImageInTar" and len(val) == len(ref)
    assert val.reader.class_name_to_idx == ref.reader.class_to_idx  # same labels as the folder reader


def test_teardown_distributed_destroys_the_group(tmp_path):
    """The command-line entry points end by destroying the process group (left to the interpreter's exit a
    gloo group can abort a rank after a finished run); with no group it does nothing."""
    import torch.distributed as dist

    from comba_vision.train.trainer import teardown_distributed
    teardown_distributed()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    teardown_distributed()
    assert not dist.is_initialized()
