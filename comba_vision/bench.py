"""Operator benchmarks: our Comba kernels against fla's chunk_comba / chunk_gated_delta_rule and SDPA.

Used by ``tools/benchmark.py``; every figure is a median over repeated runs of one call.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import platform
import statistics
import time
from contextlib import nullcontext
from datetime import date

import torch
import torch.nn.functional as F

from .cuda_graph import capture
from .ops import comba, comba_bidirectional, comba_recurrent_reference

# (B, T, H, K): one Comba-T / Comba-S layer at 224px, larger images, and a language-model shape
OP_SHAPES = [(128, 197, 3, 64), (128, 197, 6, 64), (32, 1025, 3, 64), (8, 4097, 3, 64), (2, 16385, 3, 64),
             (8, 2048, 16, 128)]
CPU_SHAPES = [(8, 197, 3, 64)]
PROVIDERS = ("comba", "comba_bidir", "fla_comba", "fla_gdn", "sdpa")
# comba_bidir: both scan directions summed (comba_bidirectional), the operator of the image blocks


def _time(fn, device: torch.device, reps: int = 50, grad_to_none=None, cuda_graph: bool = False) -> float:
    """Median milliseconds of fn() (gradients of grad_to_none are reset between calls, so that timing a
    backward does not also time the accumulation into .grad). ``cuda_graph`` (CUDA): the calls are
    captured once as a CUDA graph (``_captured``) and its replays are timed: the device work without the
    host's dispatch and launches."""
    if device.type == "cuda":
        import triton.testing
        if cuda_graph:
            leaves, grad_to_none = tuple(grad_to_none or ()), None

            def reset():  # the captured backward then writes the gradients rather than adding to them
                for x in leaves:
                    x.grad = None
            fn = _captured(fn, before_capture=reset)
        return float(triton.testing.do_bench(fn, warmup=25, rep=reps * 4, grad_to_none=grad_to_none,
                                             return_mode="median"))
    if cuda_graph:
        raise ValueError(f"cuda_graph needs a CUDA device, got {device}")
    fn()
    times = []
    for _ in range(max(3, reps // 10)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _time_interleaved(steps: dict, rounds: int) -> dict:
    """Median milliseconds of each callable in ``steps``, timed in alternating rounds (one call of each per
    round, after one untimed call each). On a shared host whose load drifts, timing one callable's calls in a
    block and then the next's gives each a different share of the drift; alternating gives all the same."""
    for fn in steps.values():
        fn()
    times = {key: [] for key in steps}
    for _ in range(rounds):
        for key, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {key: statistics.median(ts) for key, ts in times.items()}


def _finish(rec: dict, records: list, device: torch.device, log) -> None:
    log(json.dumps(rec))
    records.append(rec)
    if device.type == "cuda":
        torch.cuda.empty_cache()


def full_op_shape(shape) -> tuple[int, int, int, int, int]:
    """(B, T, H, K, V) from (B, T, H, K) (V = K) or (B, T, H, K, V)."""
    return (*shape, shape[3]) if len(shape) == 4 else tuple(shape)


def make_op_inputs(shape, dtype, device, seed=0):
    """Operator inputs for shape (B, T, H, K) or (B, T, H, K, V) (V = K when not given)."""
    B, T, H, K, V = full_op_shape(shape)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    p = 0.5 * k
    v = torch.randn(B, T, H, V, generator=gen)
    g = F.logsigmoid(torch.randn(B, T, H, generator=gen) + 2.0) * 0.3
    beta = torch.sigmoid(torch.randn(B, T, H, generator=gen))
    return [x.to(device=device, dtype=dtype).requires_grad_() for x in (q, k, v, p, g, beta)]


def _fla_unguarded():
    """fla 0.6.0 refuses its gated backward on Hopper with Triton < 3.7.1; lift that guard (timing only)."""
    import fla.ops.common.chunk_o as chunk_o
    chunk_o.TRITON_ABOVE_3_7_1 = True
    from fla.ops.comba import chunk_comba
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    return chunk_comba, chunk_gated_delta_rule


def _provider_fn(name, xs):
    """(function of no arguments returning the output, the leaf tensors it differentiates)."""
    q, k, v, p, g, beta = xs
    if name == "comba":
        return (lambda: comba(q, k, v, p, g, beta)[0]), xs
    if name == "comba_bidir":
        return (lambda: comba_bidirectional(q, k, v, p, g, beta)), xs
    if name == "fla_comba":
        chunk_comba, _ = _fla_unguarded()
        return (lambda: chunk_comba(q, k, v, p, g, beta)[0]), xs
    if name == "fla_gdn":
        _, gdn = _fla_unguarded()
        return (lambda: gdn(q, k, v, g, beta)[0]), [q, k, v, g, beta]
    if name == "sdpa":
        qt, kt, vt = (x.detach().transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
        return (lambda: F.scaled_dot_product_attention(qt, kt, vt)), [qt, kt, vt]
    raise ValueError(f"unknown provider {name!r}; choose from {PROVIDERS}")


def bench_ops(shapes=None, providers=PROVIDERS, dtype=torch.bfloat16, device=None, reps=50, log=print,
              cuda_graph=False, on_record=None):
    """Forward and forward+backward ms of each provider at each shape; on_record(records so far) after each shape
    (what a run cut short keeps)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        dtype = torch.float32
    shapes = shapes or (OP_SHAPES if device.type == "cuda" else CPU_SHAPES)
    records = []
    for shape in shapes:
        for name in providers:
            rec = dict(shape=list(shape), provider=name, dtype=str(dtype).replace("torch.", ""))
            if cuda_graph:
                rec["cuda_graph"] = True
            try:
                xs = make_op_inputs(shape, dtype, device)
                fn, leaves = _provider_fn(name, xs)
                with torch.no_grad():
                    rec["fwd_ms"] = _time(fn, device, reps, cuda_graph=cuda_graph)
                    # no autograd graph from the default stream may stay alive into a capture (see _captured)
                    do = torch.randn_like(fn())

                def fwd_bwd(fn=fn, do=do):
                    o = fn()
                    o.backward(do)
                rec["fwdbwd_ms"] = _time(fwd_bwd, device, reps, grad_to_none=leaves, cuda_graph=cuda_graph)
            except Exception as e:  # a provider that is missing or fails is reported, not fatal
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            _finish(rec, records, device, log)
        if on_record is not None:
            on_record(records)
    return records


def check_op(shape=(2, 197, 3, 64), device=None, log=print):
    """Relative error of our operator (both directions) against the float64 step recurrence."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    xs = make_op_inputs(shape, torch.float32, device, seed=1)
    errs = {}
    for reverse in (False, True):
        o, _ = comba(*xs, reverse=reverse)
        ref, _ = comba_recurrent_reference(*[x.detach().cpu() for x in xs], reverse=reverse)
        errs["reverse" if reverse else "forward"] = ((o.detach().cpu().double() - ref).norm() / ref.norm()).item()
    log(f"check {tuple(shape)} on {device}: relative error vs float64 reference {errs}")
    return errs


def environment() -> dict:
    env = dict(date=str(date.today()), torch=torch.__version__, python=platform.python_version())
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        import fla
        env["fla"] = getattr(fla, "__version__", "?")
    except ImportError:
        pass
    env["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return env


# the ratios the issues set bars on: one direction against fla, both directions against SDPA and one direction
RATIOS = [("comba", "fla_comba"), ("comba_bidir", "sdpa"), ("comba_bidir", "comba")]


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or "error" in a or "error" in b:
        return "n/a"
    return f"{a['fwd_ms'] / b['fwd_ms']:.2f}x, {a['fwdbwd_ms'] / b['fwdbwd_ms']:.2f}x"


def ops_table(records) -> str:
    """Markdown table: one row per shape, ms for each provider, and the RATIOS the issues set bars on."""
    by_shape: dict[tuple, dict] = {}
    for r in records:
        by_shape.setdefault(tuple(r["shape"]), {})[r["provider"]] = r
    provs = [p for p in PROVIDERS if any(p in d for d in by_shape.values())]
    head = "| (B, T, H, K[, V]) | " + " | ".join(f"{p} fwd / fwd+bwd (ms)" for p in provs) + \
        "".join(f" | {x} / {y} fwd, fwd+bwd" for x, y in RATIOS) + " |"
    lines = [head, "|" + "---|" * (len(provs) + 1 + len(RATIOS))]
    for shape, d in by_shape.items():
        cells = []
        for p in provs:
            r = d.get(p)
            if r is None or "error" in r:
                cells.append("n/a" if r is None else "error")
            else:
                cells.append(f"{r['fwd_ms']:.3f} / {r['fwdbwd_ms']:.3f}")
        ratios = [_ratio(d.get(x), d.get(y)) for x, y in RATIOS]
        lines.append(f"| {shape} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def _op_call(both: bool, merge: str = "stack"):
    """One direction's operator (its output), or both directions' merged by ``merge`` ("stack": as the mixer calls
    it)."""
    if both:
        return lambda *xs, **kw: comba_bidirectional(*xs, merge=merge, **kw)
    return lambda *xs, **kw: comba(*xs, **kw)[0]


def _profile_fwd_bwd(shape, dtype, iters: int = 5, both: bool = False):
    from torch.profiler import ProfilerActivity, profile
    op = _op_call(both)
    xs = make_op_inputs(shape, dtype, "cuda")
    do = torch.randn_like(op(*xs))
    for _ in range(3):
        op(*xs).backward(do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            for x in xs:
                x.grad = None
            op(*xs).backward(do)
        torch.cuda.synchronize()
    return prof


def profile_op(shape, dtype=torch.bfloat16, log=print):
    """Per-kernel CUDA time of one forward+backward of our operator (torch.profiler)."""
    prof = _profile_fwd_bwd(shape, dtype)
    log(f"profile {shape} ({dtype}), 5 iterations:")
    log(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))


def kernel_times(shape, dtype=torch.bfloat16, iters: int = 5, both: bool = False) -> dict[str, float]:
    """Mean CUDA milliseconds per forward+backward (one direction, or both: ``both``) of each of our Triton
    kernels."""
    prof = _profile_fwd_bwd(shape, dtype, iters, both)
    return {e.key: e.device_time_total / 1e3 / iters for e in prof.key_averages() if e.key.startswith("_")}


OP_GRAD_NAMES = ("dq", "dk", "dv", "dp", "dg", "dbeta")


def comba_settings(exclude=()) -> dict[str, str]:
    """This process's COMBA_* environment settings (what a kernel record was measured under), but those excluded."""
    return {k: v for k, v in os.environ.items() if k.startswith("COMBA_") and k not in exclude}


def op_errors(shape, dtype=torch.bfloat16, device=None, both: bool = True, seed: int = 0,
              merge: str = "stack") -> dict[str, float]:
    """Relative errors (norm of the difference over the reference's norm) of the operator's output and six input
    gradients (both directions' by default, merged by ``merge``) against the PyTorch path in float64, for one random
    output gradient."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    op = _op_call(both, merge)
    xs = [x.detach().requires_grad_() for x in make_op_inputs(shape, dtype, device, seed=seed)]
    o = op(*xs)
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device, dtype)
    o.backward(do)
    xr = [x.detach().cpu().double().requires_grad_() for x in xs]
    ref = op(*xr, backend="torch")
    ref.backward(do.cpu().double())

    def rel(a, b):
        return ((a.detach().cpu().double() - b).norm() / b.norm().clamp_min(1e-30)).item()
    return dict(o=rel(o, ref), **{n: rel(x.grad, r.grad) for n, x, r in zip(OP_GRAD_NAMES, xs, xr)})


def bench_kernels(shapes, dtype=torch.bfloat16, iters: int = 5, log=print, check: bool = True,
                  on_record=None) -> list[dict]:
    """Per shape ((B, T, H, K) or (B, T, H, K, V), recorded as the latter): each Triton kernel's CUDA milliseconds
    in both directions' forward+backward (torch.profiler), their sum, and the largest relative error of output and
    gradients against float64 (op_errors; check=False: not computed, max_rel_err None: the float64 reference takes
    most of a long shape's time), under this process's COMBA_* settings (recorded). on_record(records so far) after
    each shape (the tool writes its JSON then, so that a run cut short keeps what it measured)."""
    if not torch.cuda.is_available():
        raise RuntimeError("benchmark.py kernels times CUDA kernels: no CUDA device here")
    settings = comba_settings()
    records = []
    for shape in shapes:
        shape = full_op_shape(shape)
        rec = dict(shape=shape, dtype=str(dtype).replace("torch.", ""), settings=settings)
        try:
            if check:
                rec["errors"] = op_errors(shape, dtype)
            rec["max_rel_err"] = max(rec["errors"].values()) if check else None
            rec["kernels_ms"] = dict(sorted(kernel_times(shape, dtype, iters, both=True).items(),
                                            key=lambda kv: -kv[1]))
            rec["total_ms"] = sum(rec["kernels_ms"].values())
        except Exception as e:  # one shape's failure (an illegal access poisons the process) is reported
            rec["error"] = f"{type(e).__name__}: {e}"[:300]
        log(json.dumps(rec))
        records.append(rec)
        if on_record is not None:
            on_record(records)
    return records


def kernels_table(records) -> str:
    lines = ["| (B, T, H, K, V) | settings | max rel err | kernels ms | by kernel (ms) |", "|---|---|---|---|---|"]
    for r in records:
        tag = " ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        if "error" in r:
            lines.append(f"| {r['shape']} | {tag} | error | | {r['error'][:80]} |")
            continue
        by = ", ".join(f"{k} {v:.3f}" for k, v in r["kernels_ms"].items())
        err = "not checked" if r["max_rel_err"] is None else f"{r['max_rel_err']:.1e}"
        lines.append(f"| {r['shape']} | {tag} | {err} | {r['total_ms']:.3f} | {by} |")
    return "\n".join(lines)


SWEEP_CONFIGS = [(4, 1), (4, 2), (4, 3), (8, 1), (8, 2), (2, 1)]


def sweep_kernels(shapes, configs=SWEEP_CONFIGS, dtype=torch.bfloat16, log=print, both: bool = False) -> dict:
    """Times every kernel of a forward+backward (both directions' with both) under each (num_warps, num_stages),
    all kernels at once (they run one after another, so each kernel's time is its own); returns the process's COMBA_*
    settings, the times and the best configuration per (kernel, padded head size)."""
    from .ops import triton_chunk
    # the process's other settings (the chunk size, switches); the launch options are the sweep's own
    settings = comba_settings(exclude=("COMBA_KERNEL_CONFIG",))
    results, best = [], {}
    for shape in shapes:
        bk = max(16, 1 << (shape[3] - 1).bit_length())
        for warps, stages in configs:
            names = ["_fwd_prepare", "_fwd_prepare_blocked", "_fwd_prepare_blocked2", "_fwd_state", "_fwd_output",
                     "_bwd_dv_local", "_bwd_state", "_bwd_state_halves", "_bwd_grads", "_bwd_grads_cc", "_bwd_grads_k",
                     "_chunk_affine", "_affine_scan", "_bwd_complete", "_bwd_dv_local_affine",
                     "_fwd_prepare_blocked_affine"]
            os.environ["COMBA_KERNEL_CONFIG"] = ",".join(
                f"{n}:{b}:{warps}:{stages}" for n in names for b in sorted({bk, min(bk, 64)}))
            triton_chunk._FITTED.clear()
            try:
                times = kernel_times(shape, dtype, both=both)
            except Exception as e:  # a configuration that does not compile or fit is skipped
                log(f"{shape} warps={warps} stages={stages}: {type(e).__name__}: {str(e)[:120]}")
                continue
            finally:
                os.environ.pop("COMBA_KERNEL_CONFIG", None)
            log(json.dumps(dict(shape=list(shape), warps=warps, stages=stages,
                                times={k: round(v, 4) for k, v in times.items()})))
            for name, ms in times.items():
                results.append(dict(shape=list(shape), bk=bk, kernel=name, warps=warps, stages=stages, ms=ms))
    for r in results:
        key = f"{r['kernel']}:{r['bk']}"
        # per (kernel, BK): the configuration with the least time summed over the shapes of that BK
        total = sum(x["ms"] for x in results if x["kernel"] == r["kernel"] and x["bk"] == r["bk"]
                    and (x["warps"], x["stages"]) == (r["warps"], r["stages"]))
        if key not in best or total < best[key]["total_ms"]:
            best[key] = dict(warps=r["warps"], stages=r["stages"], total_ms=total)
    log("best: " + json.dumps(best))
    return dict(settings=settings, results=results, best=best)


def prune_fla_autotune(max_configs: int) -> int:
    """Keeps only the first max_configs of each fla autotuner (to time fla within a bounded budget)."""
    import importlib
    import pkgutil

    import fla.ops
    from triton.runtime.autotuner import Autotuner
    n = 0
    for mod in pkgutil.walk_packages(fla.ops.__path__, "fla.ops."):
        try:
            m = importlib.import_module(mod.name)
        except Exception:
            continue
        for obj in vars(m).values():
            if isinstance(obj, Autotuner) and len(obj.configs) > max_configs:
                obj.configs = obj.configs[:max_configs]
                n += 1
    return n


MODEL_PAIRS = [("comba_tiny", "deit_tiny_patch16_224"), ("comba_small", "deit_small_patch16_224")]


def _model_step(model, x, train: bool, cuda_graph: bool = False, fused_adamw: bool = True):
    """One timed step: a bf16-autocast training step (CUDA) or an inference pass. ``cuda_graph``: the
    whole step (forward, backward and AdamW, or the inference pass) is captured once as a CUDA graph and
    each call replays it, so the step costs its device time without the host's launches. On CUDA AdamW is
    torch's fused one, as the trainer's (train.step.fused_optimizer_kwargs); ``fused_adamw=False``: the
    default multi-tensor (foreach) one, whose capturable step runs a few kernels per parameter tensor."""
    cuda = x.device.type == "cuda"
    if cuda_graph and not cuda:
        raise ValueError(f"cuda_graph needs a CUDA device, got {x.device}")

    def amp():
        # a captured graph must not reuse autocast's cast cache across replays
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not cuda_graph) if cuda else nullcontext()

    if not train:
        model.eval()

        def infer():
            with torch.no_grad() if cuda_graph else torch.inference_mode(), amp():
                model(x)
        return _captured(infer) if cuda_graph else infer
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=cuda_graph, fused=(fused_adamw and cuda) or None)
    y = torch.randint(0, 1000, (x.shape[0],), device=x.device)

    def step():
        with amp():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if not cuda_graph:
            opt.zero_grad(set_to_none=True)

    if cuda_graph:  # gradients None before the capture: the captured backward writes them, not adds to them
        return _captured(step, before_capture=lambda: opt.zero_grad(set_to_none=True))
    return step


def _captured(fn, warmup: int = 3, before_capture=None):
    """fn captured as a CUDA graph after ``warmup`` calls on a side stream (kernels compile and the
    allocator settles); returns a callable that replays the graph. Inputs and outputs are the tensors fn
    closes over; the callable holds fn, so that they (labels, optimizer state) live as long as the graph
    that reads and writes their memory (cuda_graph.capture: the blocks' fused kernels, thread_local).
    A backward is captured only if no autograd graph built on the default stream from fn's leaf tensors is
    still alive (cuda_graph.capture says why)."""
    graph, _ = capture(fn, warmup, before_capture)

    def replay():
        graph.replay()
    replay.captured = fn
    return replay


# batch per input size: (inference, training), as the models issue specifies
MODEL_BATCHES = {224: (256, 128), 512: (32, 32), 1024: (8, 8), 2048: (2, 2)}


def _comba_only(name: str, comba_kwargs: dict | None) -> dict:
    """The options meant for the Comba models (e.g. mixer_recompute) when name is one, else none."""
    return dict(comba_kwargs or {}) if name.startswith("comba") else {}


def bench_models(names, img_size=224, batch=None, train=None, device=None, reps=5, log=print, comba_kwargs=None,
                 compile=False, profile=False, cuda_graph=False, profile_top=15, fused_adamw=True):
    """Images per second (and peak GPU memory) of timm models at one input size.

    CUDA: a bf16-autocast training step (forward, backward, AdamW step) by default; CPU: inference.
    The batch defaults to MODEL_BATCHES on CUDA (64 / 8 at other sizes) and 8 on the CPU. On the CPU the
    models are timed together, alternating one step of each for ``2 * reps`` rounds (median per model), so
    that their ratio holds on a host whose load drifts; on CUDA one after the other (each model's peak
    memory is its own). ``comba_kwargs``
    go to the Comba models only (e.g. ``{"mixer_recompute": True}``) and into their records. ``compile``:
    every model runs as ``torch.compile(model)``. ``profile``: after the timing, one more step under
    torch.profiler; the record gets the step's device time per kernel (top ``profile_top``), the summed
    device time and the number of launches, and the table is logged. ``cuda_graph`` (CUDA): every model's
    whole step is captured once and replayed (``_model_step``), which times the device work alone.
    ``fused_adamw`` (CUDA training): torch's fused AdamW, the trainer's (default), else the foreach one.
    """
    import timm
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train = device.type == "cuda" if train is None else train
    if batch is None:
        batch = MODEL_BATCHES.get(img_size, (64, 64))[int(train)] if device.type == "cuda" else 8
    records, together = [], []
    for name in names:
        kwargs = _comba_only(name, comba_kwargs)
        rec = dict(model=name, img_size=img_size, batch=batch, mode="train" if train else "infer")
        if kwargs:
            rec["model_kwargs"] = kwargs
        if compile:
            rec["compiled"] = True
        if cuda_graph:
            rec["cuda_graph"] = True
        if train and device.type == "cuda":
            rec["optimizer"] = "adamw " + ("fused" if fused_adamw else "foreach")
        try:
            step = model = None  # the previous model, its optimizer state and graph pool are not counted here
            if cuda_graph and device.type == "cuda":  # the graph's memory pool is taken at capture (_model_step)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            model = timm.create_model(name, img_size=img_size, **kwargs).to(device)
            if compile:
                model = torch.compile(model)
            step = _model_step(model, torch.randn(batch, 3, img_size, img_size, device=device), train, cuda_graph,
                               fused_adamw)
            step()
            if device.type == "cpu":
                together.append((rec, step))  # timed below, alternating with the others
                continue
            torch.cuda.synchronize()
            if not cuda_graph:
                torch.cuda.reset_peak_memory_stats()
            _record_time(rec, _time(step, device, reps=reps * 10), batch)
            rec["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            if profile:
                rec["profile"] = profile_step(step, device, log, profile_top)
        except Exception as e:  # reported, not fatal (e.g. out of memory at a large size)
            rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        _finish(rec, records, device, log)
    if together:
        ms = _time_interleaved({i: step for i, (_, step) in enumerate(together)}, rounds=max(3, 2 * reps))
        for i, (rec, step) in enumerate(together):
            _record_time(rec, ms[i], batch)
            if profile:
                rec["profile"] = profile_step(step, device, log, profile_top)
            _finish(rec, records, device, log)
    return records


def _record_time(rec: dict, ms: float, batch: int) -> None:
    rec["ms_per_batch"] = ms
    rec["images_per_s"] = batch / ms * 1e3


def profile_step(step, device: torch.device, log=print, top: int = 15) -> dict:
    """Device time of one call of step() by kernel (torch.profiler): the top kernels, their sum over all
    kernels, the launch count and the step's wall time (a wall time well above the device sum means the
    step waits on the host: launches, dispatch, autograd)."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) * 1e3
    cuda = device.type == "cuda"

    def us(e):  # kernels on CUDA; on the CPU, each op's own time
        return e.device_time_total if cuda else e.self_cpu_time_total
    kernels = [e for e in prof.key_averages() if us(e) > 0 and (e.device_type.name == "CUDA") == cuda]
    kernels.sort(key=lambda e: -us(e))
    total = sum(us(e) for e in kernels) / 1e3
    out = dict(wall_ms=wall, device_ms=total, launches=sum(e.count for e in kernels),
               top={e.key[:80]: round(us(e) / 1e3, 4) for e in kernels[:top]})
    log(f"profile: wall {wall:.2f} ms, device {total:.2f} ms in {out['launches']} launches")
    for k, ms in out["top"].items():
        log(f"  {ms:8.3f} ms  {k}")
    return out


def plot_models(records, path) -> None:
    """Images/s against input size, one line per (model, mode), log-log; written as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    keys = sorted({(r["model"], r["mode"]) for r in records if "images_per_s" in r})
    for model, mode in keys:
        pts = sorted((r["img_size"], r["images_per_s"]) for r in records
                     if (r["model"], r["mode"]) == (model, mode) and "images_per_s" in r)
        ax.plot(*zip(*pts), marker="o", linestyle="-" if model.startswith("comba") else "--", label=f"{model} {mode}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("input size (px)")
    ax.set_ylabel("images / s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def models_table(records) -> str:
    """Markdown table: one row per (size, mode), images/s and peak GPU memory per model, and the
    Comba / DeiT throughput ratio of each MODEL_PAIRS pair."""
    models = list(dict.fromkeys(r["model"] for r in records))
    pairs = [(a, b) for a, b in MODEL_PAIRS if a in models and b in models]
    lines = ["| size | mode | batch | " + " | ".join(f"{m} img/s (GB)" for m in models)
             + "".join(f" | {a} / {b}" for a, b in pairs) + " |",
             "|" + "---|" * (3 + len(models) + len(pairs))]
    rows: dict[tuple, dict] = {}
    for r in records:
        rows.setdefault((r["img_size"], r["mode"], r["batch"]), {})[r["model"]] = r
    for (size, mode, batch), d in rows.items():
        cells = []
        for m in models:
            r = d.get(m)
            if r is None or "images_per_s" not in r:
                cells.append("n/a" if r is None else "error")
            else:
                mem = f" ({r['peak_mem_gb']:.2f})" if "peak_mem_gb" in r else ""
                cells.append(f"{r['images_per_s']:.1f}{mem}")
        for a, b in pairs:
            ra, rb = d.get(a, {}), d.get(b, {})
            ok = "images_per_s" in ra and "images_per_s" in rb
            cells.append(f"{ra['images_per_s'] / rb['images_per_s']:.2f}x" if ok else "n/a")
        lines.append(f"| {size} | {mode} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _saved_group(module_name: str) -> str:
    """'blocks.3.mixer.qkv' -> 'mixer', 'blocks.3.mlp.fc1' -> 'mlp', 'patch_embed.proj' -> 'patch_embed'."""
    parts = module_name.split(".")
    if len(parts) >= 3 and parts[0] == "blocks":
        return parts[2]
    return parts[0] or "other"


class _KeepForBackward(torch.autograd.Function):
    """Saves its arguments for a backward that never runs: what a custom op that keeps them does, as seen
    by the saved-tensor hooks in force (saved_activations's counter, or a checkpoint's)."""

    @staticmethod
    def forward(ctx, *tensors):
        ctx.save_for_backward(*tensors)
        return tensors[0].new_empty(0)

    @staticmethod
    def backward(ctx, grad):
        return (None,) * len(ctx.saved_tensors)


def saved_activations(name: str, img_size: int = 224, batch: int = 1, device=None, model_triton=None,
                      comba_kwargs: dict | None = None) -> dict:
    """Memory one training forward keeps for the backward (bf16 autocast), in MB per image, by unique
    storage, grouped by the part of the block that saved it (mixer / attn / mlp / norm1 / norm2; stem and
    head by their module). Comba's operator is counted under "mixer", and its work buffers
    (``work_buffer_shapes`` in ``work_buffer_dtypes`` on this device: as ``COMBA_HALF_BUFFERS`` says, float32
    where a GPU's state walk is grouped; none with ``COMBA_RECOMPUTE_BUFFERS=1``) also on their own as
    ``op_buffers_mb``.

    The Triton operator keeps its six inputs and those buffers; on the CPU the operator runs its PyTorch path,
    which keeps other tensors, so there ``model_triton`` (the default on the CPU) counts what the Triton op
    would keep instead of what the PyTorch path keeps, and likewise for the mixer's fused kernels (their
    inputs) around it. Parameters, gradients and optimizer state are not
    counted; the bf16 copies of the weights that autocast makes are (a fixed amount per batch).
    ``comba_kwargs`` go to a Comba model only, as in bench_models."""
    import timm

    import comba_vision.layers.comba_mixer as mixer_mod

    from .ops import triton_chunk
    from .ops.triton_chunk import work_buffer_dtypes, work_buffer_shapes
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model_triton = device.type == "cpu" if model_triton is None else model_triton
    model_kwargs = _comba_only(name, comba_kwargs)
    model = timm.create_model(name, img_size=img_size, **model_kwargs).to(device).train()
    # kept: one tensor per counted storage, alive until the end so that no later storage reuses its address
    kept, groups, where, inside, op_bytes = {}, {}, [], [False], [0]

    def count(t):
        st = t.untyped_storage()
        if not inside[0] and st.data_ptr() not in kept:
            kept[st.data_ptr()] = t
            g = where[-1] if where else "other"
            groups[g] = groups.get(g, 0) + st.nbytes()
        return t

    orig = mixer_mod.comba_bidirectional

    def operator(q, k, v, p, g, beta, scale=None, **kw):
        B, T, H, K = q.shape
        shapes = work_buffer_shapes(B, T, H, K, v.shape[-1], 2).values()
        dtypes = work_buffer_dtypes(B, T, H, K, v.shape[-1], 2, q.dtype, q.device)
        bufs = 0 if triton_chunk.RECOMPUTE_BUFFERS else sum(  # kept for the backward, or rebuilt there
            math.prod(s) * dt.itemsize for s, dt in zip(shapes, dtypes))
        op_bytes[0] += bufs
        if not model_triton:
            return orig(q, k, v, p, g, beta, scale, **kw)
        xs = [count(x.contiguous()) for x in (q, k, v, p, g, beta)]  # what the op keeps of its inputs
        groups["mixer"] = groups.get("mixer", 0) + bufs
        inside[0] = True
        try:
            return orig(*xs, scale, **kw)
        finally:
            inside[0] = False

    def fused(torch_fn):
        """The mixer's fused kernels keep their own inputs only (mixer_fused: c, z, the per-head parameters;
        the output-gate logits, the norm weight and the scans' sum, which the output kernel writes for both scans'
        outputs o2 [2, B, N, H, V]): saved through an autograd node (so that a checkpoint around them drops them
        as it would the kernels'), the PyTorch form run uncounted."""
        def run(*args):
            kept = [a for a in args if isinstance(a, torch.Tensor)]
            if torch_fn is mixer_mod.mixer_out_torch and kept[0].dim() == 5:
                kept[0] = kept[0][0] + kept[0][1]
            _KeepForBackward.apply(*kept)
            inside[0] = True
            try:
                return torch_fn(*args)
            finally:
                inside[0] = False
        return run

    real_checkpoint = mixer_mod.checkpoint

    def checkpointed(fn, *args, **kw):
        """torch.utils.checkpoint keeps its tensor arguments for the recomputation, outside saved-tensor hooks."""
        for a in args:
            if isinstance(a, torch.Tensor) and a.requires_grad:
                count(a)
        return real_checkpoint(fn, *args, **kw)

    # the mixer's one-node prep + scans (mixer_fused.mixer_scan, CUDA training) keeps what the prep and the
    # operator keep as two nodes: count it through those (the operator's entry point above)
    patches = {"comba_bidirectional": operator, "checkpoint": checkpointed, "mixer_scan_applies": lambda t: False}
    if model_triton:
        patches.update(fused_applies=lambda t: True, mixer_prep=fused(mixer_mod.mixer_prep_torch),
                       mixer_out=fused(mixer_mod.mixer_out_torch))
    saved_attrs = {k: getattr(mixer_mod, k) for k in patches}
    hooks = []
    for n, m in model.named_modules():
        group = _saved_group(n)
        hooks.append(m.register_forward_pre_hook(lambda _m, _a, g=group: where.append(g)))
        hooks.append(m.register_forward_hook(lambda _m, _a, _o: where.pop() and None))
    for k, f in patches.items():
        setattr(mixer_mod, k, f)
    try:
        x = torch.randn(batch, 3, img_size, img_size, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16), \
                torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
            model(x)
    finally:
        for k, f in saved_attrs.items():
            setattr(mixer_mod, k, f)
        for h in hooks:
            h.remove()
    mb = 2.0 ** 20 * batch
    return dict(model=name, model_kwargs=model_kwargs, img_size=img_size, batch=batch, device=device.type,
                modelled_triton_op=model_triton,
                mb_per_image=sum(groups.values()) / mb, groups={k: v / mb for k, v in groups.items()},
                op_buffers_mb=op_bytes[0] / mb)


def saved_table(records) -> str:
    """Markdown table of saved_activations records: MB per image, total and by group."""
    groups = list(dict.fromkeys(g for r in records for g in sorted(r["groups"], key=lambda g: -r["groups"][g])))
    lines = ["| model | size | MB / image | " + " | ".join(groups) + " | of which op work buffers |",
             "|" + "---|" * (4 + len(groups))]
    for r in records:
        cells = [f"{r['groups'][g]:.1f}" if g in r["groups"] else "-" for g in groups]
        name = r["model"] + "".join(f", {k}={v}" for k, v in r.get("model_kwargs", {}).items())
        lines.append(f"| {name} | {r['img_size']} | {r['mb_per_image']:.1f} | " + " | ".join(cells)
                     + f" | {r['op_buffers_mb']:.1f} |")
    return "\n".join(lines)


# tracker speed: the backbones on CUDA; on the CPU a small Comba and the smallest timm ViT
TRACKER_BACKBONES = ("comba_tiny", "comba_small", "deit_tiny_patch16_224", "deit_small_patch16_224")
CPU_TRACKER_BACKBONES = ("comba_micro", "vit_tiny_patch16_224")


def synthetic_track_frames(n: int = 30, height: int = 480, width: int = 640, seed: int = 0):
    """``(frames, boxes)``: n RGB uint8 frames of noise with a brighter box drifting right and down by about one
    pixel per frame, and its xywh boxes (for timing a tracker on frames of a realistic size)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 160, (height, width, 3), dtype=np.uint8)
    frames, boxes = [], []
    for i in range(n):
        x, y, w, h = 200.0 + 1.2 * i, 150.0 + 0.8 * i, 80.0, 60.0
        frame = base.copy()
        frame[int(y):int(y + h), int(x):int(x + w)] += 90
        frames.append(frame)
        boxes.append([x, y, w, h])
    return frames, boxes


def _tracker_speed(rec: dict, name, template_size, search_size, batch, dtype, device, reps, full, frames,
                   backbone_kwargs, cuda_graph=False) -> None:
    """Fills rec with one backbone's timings (its own function, so the model is freed before the next one)."""
    from .tracking.model import OneStreamTracker
    from .tracking.tracker import CombaTracker, GraphedForward
    torch.manual_seed(0)
    model = OneStreamTracker(name, template_size=template_size, search_size=search_size,
                             **(backbone_kwargs or {})).to(device).eval()
    rec["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    z = torch.randn(batch, 3, template_size, template_size, device=device)
    x = torch.randn(batch, 3, search_size, search_size, device=device)

    # autocast to dtype on CUDA; float32 (and the CPU) run without
    amp_dtype = dtype if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16) else None
    graphed = GraphedForward(model, amp_dtype) if cuda_graph else None

    def forward():
        if graphed is not None:
            return graphed(z, x)["pred_boxes"]
        with torch.inference_mode(), (torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else nullcontext()):
            return model(z, x)["pred_boxes"]
    forward()  # warm-up (kernel compilation, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        forward()
        torch.cuda.synchronize()
        rec["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    ms = _time(forward, device, reps=reps)
    rec["model_ms_per_frame"] = ms / batch
    rec["model_fps"] = batch / ms * 1e3
    if not full:
        return
    frame_list, boxes = synthetic_track_frames(frames)
    tracker = CombaTracker(model, device=device, amp=amp_dtype is not None, amp_dtype=amp_dtype or torch.bfloat16,
                           cuda_graph=cuda_graph)
    tracker.initialize(frame_list[0], boxes[0])
    frame_iter = itertools.cycle(frame_list[1:])

    def track():
        tracker.track(next(frame_iter))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    ms = _time(track, device, reps=reps)
    rec["full_ms_per_frame"] = ms
    rec["full_fps"] = 1e3 / ms


def bench_tracker(backbones=None, template_size=128, search_size=256, batch=1, dtype=torch.bfloat16,
                  device=None, reps=50, full=True, frames=30, backbone_kwargs=None, cuda_graph=False, log=print):
    """Speed of the one-stream tracker (``OneStreamTracker``) on each backbone, in eval mode.

    ``model_*``: the network's forward (template + search crops -> ``pred_boxes``) on a batch of random crops,
    under ``dtype`` autocast on CUDA (float32: none; the CPU always runs float32), timed by ``_time`` (median,
    after a warm-up); ``fps = batch / time``. ``full_*`` (``full``, batch 1): ``CombaTracker.track`` per frame
    on synthetic 640x480 frames (``synthetic_track_frames``), i.e. with the search crop cut from the frame,
    normalised and copied to the device and the box decoded and mapped back (the tracker follows its own
    predictions; a crop costs the same wherever it lies). CUDA also records the peak memory of one forward
    pass (weights included). ``backbone_kwargs`` go to every backbone's ``timm.create_model`` (e.g.
    ``{"depth": 2}``); the backbones are never pretrained. Default backbones: TRACKER_BACKBONES on CUDA,
    CPU_TRACKER_BACKBONES on the CPU. ``cuda_graph`` (CUDA only): both timings replay a captured CUDA graph
    of the network (``tracking.tracker.GraphedForward``, what ``CombaTracker(cuda_graph=True)`` uses).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph needs a CUDA device, got {device}")
    if device.type == "cpu":
        dtype = torch.float32
    backbones = list(backbones or (TRACKER_BACKBONES if device.type == "cuda" else CPU_TRACKER_BACKBONES))
    records = []
    for name in backbones:
        rec = dict(backbone=name, template_size=template_size, search_size=search_size, batch=batch,
                   dtype=str(dtype).replace("torch.", ""), device=device.type, cuda_graph=bool(cuda_graph))
        if backbone_kwargs:
            rec["backbone_kwargs"] = dict(backbone_kwargs)
        try:
            _tracker_speed(rec, name, template_size, search_size, batch, dtype, device, reps, full, frames,
                           backbone_kwargs, cuda_graph)
        except Exception as e:  # reported, not fatal (e.g. out of memory, a backbone that is not supported)
            rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        _finish(rec, records, device, log)
    return records


def tracker_table(records) -> str:
    """Markdown table: one row per tracker record, model and end-to-end speed, and for a Comba backbone of
    MODEL_PAIRS its model fps over its DeiT partner's (same sizes, batch and dtype)."""
    partner = dict(MODEL_PAIRS)
    lines = ["| backbone | template / search | batch | dtype | CUDA graph | params (M) | model ms / frame "
             "| model fps | peak mem (MB) | full ms / frame | full fps | model fps vs DeiT |",
             "|" + "---|" * 12]
    key = lambda r: (r["template_size"], r["search_size"], r["batch"], r["dtype"], r.get("cuda_graph", False))  # noqa: E731
    by = {(r["backbone"], key(r)): r for r in records}
    for r in records:
        head = (f"| {r['backbone']} | {r['template_size']} / {r['search_size']} | {r['batch']} | {r['dtype']} | "
                f"{'yes' if r.get('cuda_graph') else 'no'} |")
        if "error" in r:
            lines.append(head + " " + " | ".join(["error"] + [""] * 5 + [r["error"][:60]]) + " |")
            continue
        other = by.get((partner.get(r["backbone"]), key(r)), {})
        ratio = f"{r['model_fps'] / other['model_fps']:.2f}x" if "model_fps" in other else "n/a"
        cells = [f"{r['params_m']:.2f}", f"{r['model_ms_per_frame']:.2f}", f"{r['model_fps']:.1f}",
                 f"{r['peak_mem_mb']:.0f}" if "peak_mem_mb" in r else "n/a",
                 f"{r['full_ms_per_frame']:.2f}" if "full_ms_per_frame" in r else "n/a",
                 f"{r['full_fps']:.1f}" if "full_fps" in r else "n/a", ratio]
        lines.append(head + " " + " | ".join(cells) + " |")
    return "\n".join(lines)
