"""The benchmark module on the CPU: records, tables and the plot (timings themselves are not asserted)."""
from __future__ import annotations

import json

import pytest
import torch

from comba_vision import bench


def test_ops_records_and_table():
    recs = bench.bench_ops([(1, 20, 1, 16)], ["comba", "comba_bidir", "sdpa"], reps=3, log=lambda *_: None)
    assert [r["provider"] for r in recs] == ["comba", "comba_bidir", "sdpa"]
    assert all(r["fwd_ms"] > 0 and r["fwdbwd_ms"] > 0 and "error" not in r for r in recs)
    table = bench.ops_table(recs).splitlines()
    assert len(table) == 3 and table[2].startswith("| (1, 20, 1, 16) |")
    b, s = recs[1], recs[2]
    assert f"{b['fwd_ms'] / s['fwd_ms']:.2f}x, {b['fwdbwd_ms'] / s['fwdbwd_ms']:.2f}x" in table[2]
    assert "n/a" in table[2]  # no fla record: that ratio is not made up


def test_unknown_provider_is_reported_not_fatal():
    recs = bench.bench_ops([(1, 4, 1, 16)], ["nope"], reps=1, log=lambda *_: None)
    assert "unknown provider" in recs[0]["error"]


def test_models_records_table_and_plot(tmp_path):
    recs = bench.bench_models(["comba_micro"], img_size=32, batch=2, train=False, reps=1, log=lambda *_: None)
    recs += bench.bench_models(["comba_micro"], img_size=64, batch=2, train=False, reps=1, log=lambda *_: None)
    assert all(r["images_per_s"] > 0 and r["mode"] == "infer" for r in recs)
    table = bench.models_table(recs)
    assert "| 32 | infer | 2 |" in table and "| 64 | infer | 2 |" in table
    png = tmp_path / "m.png"
    bench.plot_models(recs, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(recs)  # records are plain JSON


def test_tracker_records_and_table(tmp_path):
    """The tracker benchmark on the CPU: a Comba and a timm ViT backbone (2 blocks, never pretrained), the
    network forward and the end-to-end CombaTracker frames, float32."""
    import importlib.util
    import math
    from pathlib import Path

    names = ["comba_micro", "vit_tiny_patch16_224"]
    recs = bench.bench_tracker(names, template_size=64, search_size=128, dtype=torch.bfloat16, device="cpu",
                               reps=3, frames=4, backbone_kwargs={"depth": 2}, log=lambda *_: None)
    assert [r["backbone"] for r in recs] == names
    keys = {"backbone", "template_size", "search_size", "batch", "dtype", "device", "cuda_graph", "backbone_kwargs",
            "params_m", "model_ms_per_frame", "model_fps", "full_ms_per_frame", "full_fps"}
    for r in recs:
        assert set(r) == keys, r  # no error, no peak memory on the CPU
        assert r["dtype"] == "float32" and r["batch"] == 1 and r["device"] == "cpu"  # the CPU runs float32
        for k in ("params_m", "model_ms_per_frame", "model_fps", "full_ms_per_frame", "full_fps"):
            assert math.isfinite(r[k]) and r[k] > 0, (k, r[k])
        assert r["model_fps"] * r["model_ms_per_frame"] == pytest.approx(1e3)
    table = bench.tracker_table(recs).splitlines()
    assert len(table) == 2 + len(names)
    for name, line in zip(names, table[2:]):
        assert line.startswith(f"| {name} | 64 / 128 | 1 | float32 | no |") and line.count("|") == table[0].count("|")
    json.dumps(recs)
    # the command line: JSON with the environment, the table printed, errors reported per backbone
    path = Path(__file__).resolve().parents[1] / "tools" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark_tool", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "tracker.json"
    tool.main(["tracker", "--backbones", "comba_micro", "resnet10t", "--template-size", "64", "--search-size",
               "128", "--batch", "2", "--reps", "3", "--no-full", "--backbone-kwargs", '{"drop_path_rate": 0.0}',
               "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["environment"]["device"] and [r["backbone"] for r in data["records"]] == ["comba_micro", "resnet10t"]
    ok, bad = data["records"]
    assert ok["batch"] == 2 and ok["model_fps"] > 0 and "full_fps" not in ok
    assert "not a Comba backbone" in bad["error"]
    assert "| resnet10t | 64 / 128 | 2 | float32 | no | error |" in bench.tracker_table(data["records"])
