"""The benchmark module on the CPU: records, tables and the plot (timings themselves are not asserted)."""
from __future__ import annotations

import json

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
