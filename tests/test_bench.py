"""The benchmark module on the CPU: records, tables and the plot (timings themselves are not asserted, only the
medians of known sleeps)."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path

import pytest
import torch

from comba_vision import bench


def _benchmark_tool():
    """tools/benchmark.py loaded as a module (its main(argv) is the command line)."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_tool", Path(__file__).resolve().parents[1] / "tools" / "benchmark.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


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
    seen = []  # on_record: the records so far after each shape (what benchmark.py writes to its JSON each time)
    recs = bench.bench_ops([(1, 4, 1, 16), (1, 5, 1, 16)], ["nope"], reps=1, log=lambda *_: None,
                           on_record=lambda r: seen.append(len(r)))
    assert "unknown provider" in recs[0]["error"] and seen == [1, 2]


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
    # options for the Comba models only (a ViT given mixer_recompute would fail to build)
    both = bench.bench_models(["comba_micro", "vit_tiny_patch16_224"], img_size=32, batch=2, train=True, reps=1,
                              log=lambda *_: None, comba_kwargs={"mixer_recompute": True})
    assert [r.get("model_kwargs") for r in both] == [{"mixer_recompute": True}, None]
    assert all(r["images_per_s"] > 0 and "error" not in r for r in both)


def test_time_interleaved_alternates_and_takes_medians():
    calls = []

    def sleeper(key, ms):
        def fn():
            calls.append(key)
            time.sleep(ms / 1e3)
        return fn
    ms = bench._time_interleaved({"a": sleeper("a", 2), "b": sleeper("b", 20)}, rounds=5)
    assert calls == ["a", "b"] * 6  # one untimed call each, then 5 alternating rounds
    assert 2 <= ms["a"] < 20 <= ms["b"]  # each callable's own median


def test_ops_shapes_with_a_value_head_size():
    """(B, T, H, K, V): the model's shapes (Comba-T has K = 32, V = 64)."""
    xs = bench.make_op_inputs((1, 9, 2, 16, 32), torch.float32, "cpu")
    assert [tuple(x.shape) for x in xs] == [(1, 9, 2, 16)] * 2 + [(1, 9, 2, 32), (1, 9, 2, 16), (1, 9, 2), (1, 9, 2)]
    rec = bench.bench_ops([(1, 9, 2, 16, 32)], ["comba_bidir"], reps=1, log=lambda *_: None)[0]
    assert rec["shape"] == [1, 9, 2, 16, 32] and "error" not in rec


def test_models_profile_and_compile_options(monkeypatch):
    """--profile: one more step under torch.profiler, its ops by time; --compile: the timed model is
    torch.compile's (a stand-in here: compiling on the CPU needs a C compiler and minutes)."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    rec = bench.bench_models(["comba_micro"], img_size=32, batch=2, train=False, device="cpu", reps=1,
                             log=lambda *_: None, compile=True, profile=True)[0]
    assert rec["compiled"] and len(compiled) == 1 and "error" not in rec
    prof = rec["profile"]
    tops = list(prof["top"].values())
    assert prof["launches"] > 50 and prof["wall_ms"] > 0 and 0 < prof["device_ms"]
    assert tops == sorted(tops, reverse=True) and sum(tops) <= prof["device_ms"] + 1e-6
    assert any("conv" in k for k in prof["top"])  # the depthwise conv is among the top ops on the CPU


def test_ops_cuda_graph_needs_cuda():
    rec = bench.bench_ops([(1, 4, 1, 16)], ["comba"], device="cpu", reps=1, log=lambda *_: None, cuda_graph=True)[0]
    assert rec["cuda_graph"] and "cuda_graph needs a CUDA device" in rec["error"]


def test_models_cuda_graph_needs_cuda():
    rec = bench.bench_models(["comba_micro"], img_size=32, batch=2, train=True, device="cpu", reps=1,
                             log=lambda *_: None, cuda_graph=True)[0]
    assert rec["cuda_graph"] and "cuda_graph needs a CUDA device" in rec["error"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["comba_micro", "vit_tiny_patch16_224"])
def test_graphed_training_step_matches_eager(name):
    """The captured whole training step (forward, backward, AdamW) updates the weights as the eager step
    does, replay after replay: two replays against two eager steps from the same start."""
    import copy

    import timm

    import comba_vision  # noqa: F401  (registers the Comba models)
    torch.manual_seed(0)
    kw = dict(depth=2) if name.startswith("vit") else {}
    eager = timm.create_model(name, img_size=64, **kw).cuda()
    graphed = copy.deepcopy(eager)
    x = torch.randn(4, 3, 64, 64, device="cuda")
    torch.manual_seed(1)
    step_e = bench._model_step(eager, x, train=True)
    torch.manual_seed(1)  # the same labels
    step_g = bench._model_step(graphed, x, train=True, cuda_graph=True)
    start = [p.detach().clone() for p in graphed.parameters()]
    # _model_step ran 3 warm-up steps before the capture (which records, not runs): the eager model catches up
    from comba_vision.ops import fused_block_kernels
    with fused_block_kernels():  # the kernels the graph was captured with (ops.block_kernels)
        for _ in range(3):
            step_e()
        for _ in range(2):
            step_e()
            step_g()
    torch.cuda.synchronize()
    # the updates since the capture, all parameters together: AdamW moves each weight by about lr a step
    # whatever its gradient's size, so a per-tensor comparison would weigh bf16 noise in tiny gradients
    d_g = torch.cat([(a - b).flatten() for a, b in zip(graphed.parameters(), start)])
    d_e = torch.cat([(a - b).flatten() for a, b in zip(eager.parameters(), start)])
    err = ((d_g - d_e).norm() / d_e.norm()).item()
    assert d_e.norm() > 0 and err < 0.05, err


_GRAPHED_OPS_CHILD = """
import json, sys
from comba_vision import bench
recs = bench.bench_ops([(8, 197, 3, 64)], ["comba"], reps=2, log=lambda *_: None, cuda_graph=True)
print(json.dumps(recs[0]))
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_ops_first_backward_capture():
    """The first forward+backward capture of a process in ``bench_ops(cuda_graph=True)`` (session 15: it failed
    with cudaErrorStreamCaptureImplicit while the eager output that gave the gradient's shape was kept alive, its
    leaves' gradient-accumulation nodes tagged with the default stream). A child process, so that the capture is
    the process's first (a failed capture leaves its stream current, and later captures then pass)."""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _GRAPHED_OPS_CHILD], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rec = json.loads(run.stdout.strip().splitlines()[-1])
    assert "error" not in rec, rec["error"]
    assert 0 < rec["fwd_ms"] < rec["fwdbwd_ms"], rec


def test_tracker_records_and_table(tmp_path):
    """The tracker benchmark on the CPU: a Comba and a timm ViT backbone (2 blocks, never pretrained), the
    network forward and the end-to-end CombaTracker frames, float32."""
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
    tool = _benchmark_tool()
    out = tmp_path / "tracker.json"
    tool.main(["tracker", "--backbones", "comba_micro", "resnet10t", "--template-size", "64", "--search-size",
               "128", "--batch", "2", "--reps", "3", "--no-full", "--backbone-kwargs", '{"drop_path_rate": 0.0}',
               "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["environment"]["device"] and [r["backbone"] for r in data["records"]] == ["comba_micro", "resnet10t"]
    ok, bad = data["records"]
    assert ok["batch"] == 2 and ok["model_fps"] > 0 and "full_fps" not in ok
    assert "not a Comba backbone" in bad["error"]
    # the command line takes the GPU where there is one (bf16 there; the CPU runs float32)
    assert f"| resnet10t | 64 / 128 | 2 | {bad['dtype']} | no | error |" in bench.tracker_table(data["records"])


def test_saved_activations_grouped_and_table():
    """Saved-for-backward accounting on the CPU: a Comba and a ViT model, groups summing to the total, the
    operator's work buffers as their shapes and dtypes say (bf16 autocast: buffer_dtypes), and the per-image figure
    independent of the batch."""
    from comba_vision.ops.triton_chunk import buffer_dtypes, work_buffer_shapes
    comba_rec = bench.saved_activations("comba_micro", img_size=64, batch=2, device="cpu")
    vit_rec = bench.saved_activations("vit_tiny_patch16_224", img_size=64, batch=2, device="cpu")
    for r in (comba_rec, vit_rec):
        assert r["mb_per_image"] == pytest.approx(sum(r["groups"].values()))
        assert r["groups"]["mlp"] > 0 and r["groups"]["norm1"] > 0
    assert "attn" in vit_rec["groups"] and "mixer" not in vit_rec["groups"] and vit_rec["op_buffers_mb"] == 0
    model = __import__("timm").create_model("comba_micro", img_size=64)
    mixer = model.blocks[0].mixer
    T = model.patch_embed.num_patches + getattr(model, "num_prefix_tokens", 0)
    shapes = work_buffer_shapes(1, T, mixer.num_heads, mixer.head_dim_k, mixer.head_dim_v, 2).values()
    per_layer = sum(dt.itemsize * math.prod(s) for s, dt in zip(shapes, buffer_dtypes(torch.bfloat16)))
    assert comba_rec["op_buffers_mb"] == pytest.approx(len(model.blocks) * per_layer / 2**20)
    assert comba_rec["groups"]["mixer"] > comba_rec["op_buffers_mb"]
    one = bench.saved_activations("comba_micro", img_size=64, batch=1, device="cpu")["mb_per_image"]
    assert one < 2 * comba_rec["mb_per_image"] < 2 * one  # per image, plus a fixed part (the bf16 weights)
    table = bench.saved_table([comba_rec, vit_rec]).splitlines()
    assert table[2].startswith("| comba_micro | 64 | ") and table[3].startswith("| vit_tiny_patch16_224 | 64 | ")


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1 (no GPU)")
def test_saved_activations_model_of_the_triton_op_matches_the_op(monkeypatch):
    """On the CPU the accounting models what the Triton custom ops keep (the operator and the mixer's fused
    kernels); running the real ops (Triton under the interpreter) and counting what they actually saved gives
    the same bytes, group by group, also with the mixer's checkpoints and with half-precision work buffers
    (COMBA_HALF_BUFFERS=1: the bf16 autocast inputs' dtype, half the float32 buffers' bytes; values are not
    compared, so the interpreter's bf16 products do not matter)."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(cm, "fused_applies", lambda t: True)  # the fused kernels on CPU tensors, interpreted
    op_mb = {}
    # the float32 work buffers kept, rebuilt in the backward, or kept in bf16
    for recompute, half in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", recompute)
        monkeypatch.setattr(tc, "HALF_BUFFERS", "1" if half else "0")
        monkeypatch.delenv("COMBA_BACKEND", raising=False)
        modelled = bench.saved_activations("comba_micro", img_size=32, batch=1, model_triton=True)
        monkeypatch.setenv("COMBA_BACKEND", "triton")
        real = bench.saved_activations("comba_micro", img_size=32, batch=1, model_triton=False)
        assert real["groups"] == pytest.approx(modelled["groups"], rel=1e-9), (recompute, half)
        assert (modelled["op_buffers_mb"] == 0) == recompute
        op_mb[recompute, half] = modelled["op_buffers_mb"]
    assert op_mb[False, True] == pytest.approx(op_mb[False, False] / 2)
    monkeypatch.setattr(tc, "HALF_BUFFERS", "0")
    kw = dict(img_size=32, batch=1, comba_kwargs={"mixer_recompute": True})
    real = bench.saved_activations("comba_micro", model_triton=False, **kw)
    monkeypatch.delenv("COMBA_BACKEND", raising=False)
    assert real["groups"] == pytest.approx(bench.saved_activations("comba_micro", model_triton=True, **kw)["groups"],
                                           rel=1e-9)


def test_saved_activations_with_mixer_recompute():
    """mixer_recompute=True keeps less for the backward in the mixers (the operator's own share unchanged)
    and nothing changes outside them."""
    plain = bench.saved_activations("comba_micro", img_size=64, batch=2, device="cpu")
    lean = bench.saved_activations("comba_micro", img_size=64, batch=2, device="cpu",
                                   comba_kwargs={"mixer_recompute": True})
    assert lean["model_kwargs"] == {"mixer_recompute": True}
    assert lean["op_buffers_mb"] == pytest.approx(plain["op_buffers_mb"])
    around_op = plain["groups"]["mixer"] - plain["op_buffers_mb"]  # all the mixer keeps but the work buffers
    assert lean["groups"]["mixer"] < plain["groups"]["mixer"] - 0.3 * around_op
    # what the checkpoints keep counts too: at least each mixer's input and both scans' outputs
    model = __import__("timm").create_model("comba_micro", img_size=64)
    mixer, T = model.blocks[0].mixer, model.patch_embed.num_patches
    floor = len(model.blocks) * T * (4 * model.embed_dim + 2 * 2 * mixer.num_heads * mixer.head_dim_v)
    assert lean["groups"]["mixer"] - lean["op_buffers_mb"] >= floor / 2**20
    for g in ("mlp", "norm1", "norm2"):
        assert lean["groups"][g] == pytest.approx(plain["groups"][g])
    assert "mixer_recompute=True" in bench.saved_table([lean])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_saved_activations_on_cuda_count_the_operator():
    """On CUDA the real kernels run (the mixer's prep and scans as one node in training): the accounting still
    sees the operator and counts its work buffers as their shapes and dtypes say (bf16 under autocast with
    COMBA_HALF_BUFFERS=1, the default), in MB per image."""
    from comba_vision.ops.triton_chunk import work_buffer_dtypes, work_buffer_shapes
    batch = 2
    rec = bench.saved_activations("comba_micro", img_size=64, batch=batch, device="cuda")
    model = __import__("timm").create_model("comba_micro", img_size=64)
    mixer = model.blocks[0].mixer
    T = model.patch_embed.num_patches + getattr(model, "num_prefix_tokens", 0)
    dims = (batch, T, mixer.num_heads, mixer.head_dim_k, mixer.head_dim_v, 2)
    dtypes = work_buffer_dtypes(*dims, torch.bfloat16, "cuda")
    per_layer = sum(dt.itemsize * math.prod(s) for s, dt in zip(work_buffer_shapes(*dims).values(), dtypes))
    assert rec["op_buffers_mb"] == pytest.approx(len(model.blocks) * per_layer / 2**20 / batch)
    assert rec["groups"]["mixer"] > rec["op_buffers_mb"]


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_op_errors_against_float64():
    """op_errors (what `benchmark.py kernels` reports next to the kernel times): the Triton operator's output and
    six gradients in fp16 against the float64 torch path, both directions and one, within the fp16 bound and
    above zero (a real comparison); float32 inputs far tighter."""
    for both in (True, False):
        errs = bench.op_errors((1, 70, 2, 16, 16), torch.float16, both=both)
        assert list(errs) == ["o", *bench.OP_GRAD_NAMES]
        assert 0 < max(errs.values()) <= 5e-3, errs
    assert max(bench.op_errors((1, 70, 2, 16, 16), torch.float32).values()) <= 1e-4


def test_kernels_table_and_cli_without_cuda(monkeypatch, capsys):
    """The kernels table shows settings, error and the per-kernel split (an error record as such, a run with
    --no-check as not checked); without CUDA the subcommand stops with a message naming the reason."""
    recs = [dict(shape=(2, 197, 3, 64, 64), settings={"COMBA_HALF_BUFFERS": "0"}, max_rel_err=3.9e-3,
                 kernels_ms={"_bwd_grads_cc": 0.2, "_fwd_state": 0.1}, total_ms=0.3),
            dict(shape=(2, 16385, 3, 64, 64), settings={}, error="RuntimeError: illegal memory access"),
            dict(shape=(8, 4096, 3, 32, 64), settings={}, max_rel_err=None, kernels_ms={"_bwd_grads": 0.25},
                 total_ms=0.25)]
    table = bench.kernels_table(recs).splitlines()
    assert table[4] == "| (8, 4096, 3, 32, 64) | defaults | not checked | 0.250 | _bwd_grads 0.250 |"
    assert table[2] == ("| (2, 197, 3, 64, 64) | COMBA_HALF_BUFFERS=0 | 3.9e-03 | 0.300 | _bwd_grads_cc 0.200, "
                        "_fwd_state 0.100 |")
    assert table[3].startswith("| (2, 16385, 3, 64, 64) | defaults | error |") and "illegal" in table[3]
    if torch.cuda.is_available():
        return
    with pytest.raises(SystemExit):
        _benchmark_tool().main(["kernels"])
    assert "no CUDA device here" in capsys.readouterr().err


def test_sweep_cli_configs_and_directions(monkeypatch, tmp_path, capsys):
    """`benchmark.py sweep --configs W:S ... --both`: each configuration is applied to every kernel (through
    COMBA_KERNEL_CONFIG, removed afterwards), both directions are timed when asked, the least total time per
    (kernel, padded head size) is chosen; a malformed configuration is refused by name."""
    seen = []

    def fake_times(shape, dtype, iters=5, both=False):
        cfg = os.environ["COMBA_KERNEL_CONFIG"]
        seen.append((tuple(shape), both, cfg))
        warps = int(cfg.split(",")[0].split(":")[2])
        return {"_fwd_state": 0.1 * warps, "_bwd_grads": 1.0 / warps}

    monkeypatch.setattr(bench, "kernel_times", fake_times)
    monkeypatch.delenv("COMBA_KERNEL_CONFIG", raising=False)
    monkeypatch.setenv("COMBA_CHUNK_SIZE", "32")  # recorded with the results (this process's kernels do not change)
    out = tmp_path / "sweep.json"
    _benchmark_tool().main(["sweep", "--shapes", "2,196,3,32,64", "--configs", "2:1", "8:2", "--both",
                            "--out", str(out)])
    assert [(s, b) for s, b, _ in seen] == [((2, 196, 3, 32, 64), True)] * 2
    assert "_bwd_grads:32:2:1" in seen[0][2] and "_fwd_state:32:8:2" in seen[1][2]
    assert "COMBA_KERNEL_CONFIG" not in os.environ
    record = json.loads(out.read_text())
    assert record["settings"]["COMBA_CHUNK_SIZE"] == "32" and "COMBA_KERNEL_CONFIG" not in record["settings"]
    best = record["best"]
    assert (best["_fwd_state:32"]["warps"], best["_bwd_grads:32"]["warps"]) == (2, 8)
    assert best["_bwd_grads:32"]["total_ms"] == pytest.approx(0.125)
    with pytest.raises(SystemExit):
        _benchmark_tool().main(["sweep", "--configs", "4-1"])
    assert "warps:stages" in capsys.readouterr().err


def test_bench_kernels_without_check_and_after_each_shape(monkeypatch):
    """bench_kernels(check=False) (`benchmark.py kernels --no-check`) times the kernels without the float64
    reference (max_rel_err None), and hands the records so far to on_record after every shape, a failed one too
    (the tool rewrites its JSON there, so that a run cut short keeps what it measured)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def no_reference(*a, **k):
        raise AssertionError("op_errors called with check=False")

    def times(shape, dtype, iters, both):
        if shape[1] == 999:
            raise RuntimeError("illegal memory access")
        return {"_fwd_state": 0.1, "_bwd_grads": 0.3}
    monkeypatch.setattr(bench, "op_errors", no_reference)
    monkeypatch.setattr(bench, "kernel_times", times)
    seen = []
    recs = bench.bench_kernels([(2, 197, 3, 32, 64), (1, 999, 1, 16)], check=False, log=lambda s: None,
                               on_record=lambda r: seen.append(len(r)))
    assert seen == [1, 2]
    assert recs[0]["max_rel_err"] is None and list(recs[0]["kernels_ms"]) == ["_bwd_grads", "_fwd_state"]
    assert recs[0]["total_ms"] == pytest.approx(0.4)
    assert recs[1]["shape"] == (1, 999, 1, 16, 16) and "illegal" in recs[1]["error"]
