"""Shared helpers for the operator tests: realistic inputs, relative errors, reference gradients."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from comba_vision.ops import comba, comba_recurrent_reference


def make_inputs(B, T, H, K, V, *, dtype=torch.float32, device="cpu", init=False, seed=0, decay=0.3):
    """Inputs shaped as the Comba layer makes them: unit-norm keys, p = b * k, g <= 0, beta in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    b = torch.sigmoid(torch.randn(H, generator=gen))
    p = k * b[:, None]
    v = torch.randn(B, T, H, V, generator=gen)
    g = F.logsigmoid(torch.randn(B, T, H, generator=gen) + 2.0) * decay
    beta = torch.sigmoid(torch.randn(B, T, H, generator=gen))
    xs = [x.to(device=device, dtype=dtype) for x in (q, k, v, p, g, beta)]
    h0 = torch.randn(B, H, K, V, generator=gen).to(device) if init else None
    return xs, h0


def rel_err(x, ref):
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def run_with_grads(fn, xs, h0, seed=1):
    """Runs fn(*xs, h0) -> (o, ht), backprops a fixed random projection of both, returns values and grads."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    h0 = h0.detach().clone().requires_grad_() if h0 is not None else None
    o, ht = fn(*xs, h0)
    gen = torch.Generator().manual_seed(seed)
    ro = torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device)
    rh = torch.randn(ht.shape, generator=gen, dtype=torch.float64).to(ht.device)
    loss = (o.double() * ro).sum() + (ht.double() * rh).sum()
    loss.backward()
    grads = [x.grad for x in xs] + ([h0.grad] if h0 is not None else [])
    return o.detach(), ht.detach(), grads


GRAD_NAMES = ["dq", "dk", "dv", "dp", "dg", "dbeta", "dh0"]


def compare_to_reference(xs, h0, *, variant, reverse, backend, scale=None):
    """Relative errors {name: err} of backend against the float64 step recurrence on the same inputs."""
    def ours(q, k, v, p, g, beta, h):
        return comba(q, k, v, p, g, beta, scale, h, True, variant=variant, reverse=reverse, backend=backend)

    def ref(q, k, v, p, g, beta, h):
        return comba_recurrent_reference(q, k, v, p, g, beta, scale, h, True, variant=variant, reverse=reverse)

    o, ht, grads = run_with_grads(ours, xs, h0)
    xs64 = [x.detach().cpu().double() for x in xs]
    h064 = h0.detach().cpu().double() if h0 is not None else None
    ro, rht, rgrads = run_with_grads(ref, xs64, h064)
    errs = {"o": rel_err(o, ro), "ht": rel_err(ht, rht)}
    for name, a, b in zip(GRAD_NAMES, grads, rgrads):
        assert a is not None, f"no gradient reached {name}"
        assert a.dtype == (h0.dtype if name == "dh0" else xs[0].dtype), f"{name} has dtype {a.dtype}"
        errs[name] = rel_err(a, b)
    return errs


def record_cast_misses(monkeypatch) -> list:
    """Patches ops.linear's weight-copy lookup so that every copy made at the call rather than served from a
    cast_once context (absent there, or its piece changed since) is appended to the returned list."""
    import comba_vision.ops.linear as L
    misses, stack = [], L._stack

    def made(p, d):
        out = stack(p, d)
        hit = getattr(L._CASTS, "table", {}).get(L._key(p, d))
        if hit is None or out is not hit[2]:
            misses.append(p)
        return out
    monkeypatch.setattr(L, "_stack", made)
    return misses


def spy_launches(monkeypatch, tc, key: str | None = None, record=None) -> list:
    """Records (kernel name, meta[key]) of every launch through triton_chunk._launch (tc), or record(kernel name,
    args, meta)."""
    launched = []
    launch = tc._launch

    def spy(kernel, grid, args, meta, **kw):
        name = getattr(kernel, "fn", kernel).__name__
        launched.append(record(name, args, meta) if record else (name, meta.get(key)))
        return launch(kernel, grid, args, meta, **kw)
    monkeypatch.setattr(tc, "_launch", spy)
    return launched


def poison_allocations(monkeypatch) -> None:
    """torch.empty / torch.empty_like return NaN-filled float tensors (what an allocator may hand back is garbage),
    so that an element a kernel should have written, or zeroed, and did not shows as NaN. Undone with monkeypatch."""
    for name in ("empty", "empty_like"):
        alloc = getattr(torch, name)

        def new(*a, _alloc=alloc, **kw):
            t = _alloc(*a, **kw)
            return t.fill_(float("nan")) if t.is_floating_point() else t
        monkeypatch.setattr(torch, name, new)

