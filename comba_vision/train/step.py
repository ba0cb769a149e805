"""The optimizer update without host synchronisation, and the whole training step as one CUDA graph.

A training step that asks the host whether the loss is finite (``loss.item()``, ``if not isfinite(norm)``)
waits for the GPU every step: at 224px a Comba-T step on an H200 is about 27 ms of device work but the
host needs longer than that to issue it, so every wait is time the GPU then idles. Here the NaN guard stays
on the device:

- the gradient norm and a 0/1 flag "loss or norm not finite" are computed on the device;
- the flag goes to a *fused* torch optimizer as ``found_inf`` (the mechanism GradScaler uses): the fused
  kernel then leaves the weights, the moments and the step count exactly as they were;
- the trainer adds the flags up on the device and reads the count once a log interval (where the main rank
  logs the loss anyway) and before every checkpoint, then stops the run with :class:`NonFiniteLossError`. The
  skipped updates never touched the weights, so nothing non-finite reaches a checkpoint.

:class:`GraphedTrainStep` captures forward, loss, backward, gradient norm and this guarded update once as a
CUDA graph and replays it for every batch (the host then issues one launch a step instead of some 1300).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from ..cuda_graph import capture

# timm optimizer names whose torch.optim class has a fused step that honours found_inf and can be captured in a
# CUDA graph (capturable=True). Fused SGD honours found_inf too, but a skipped first step leaves its momentum
# buffer uninitialised (torch creates it empty and the kernel returns early): SGD keeps the host-side guard.
FUSED_OPTIMIZERS = ("adamw", "adam")
CAPTURABLE_OPTIMIZERS = FUSED_OPTIMIZERS


class NonFiniteLossError(RuntimeError):
    pass


def fused_optimizer_kwargs(opt: str, device: torch.device, cuda_graph: bool = False) -> dict:
    """Extra keyword arguments for timm's create_optimizer_v2: a fused optimizer (and capturable for a CUDA
    graph) where torch has one for ``opt``, else none (the update then takes the host-side NaN guard)."""
    if opt.lower() not in FUSED_OPTIMIZERS or device.type not in ("cuda", "cpu"):
        return {}
    kw = dict(fused=True)
    if cuda_graph:
        kw["capturable"] = True
    return kw


def guards_on_device(optimizer, scaler=None) -> bool:
    """Whether ``optimizer`` can skip a non-finite update by itself (a fused torch optimizer; an fp16
    GradScaler keeps its own skipping and the host-side guard)."""
    return scaler is None and bool(getattr(optimizer, "defaults", {}).get("fused"))


def total_grad_norm(params, clip_grad: float | None) -> torch.Tensor:
    """The gradients' global 2-norm, clipping them to ``clip_grad`` if given; on the device, no sync."""
    params = [p for p in params if p.grad is not None]
    if clip_grad:
        return torch.nn.utils.clip_grad_norm_(params, clip_grad, foreach=True)
    return torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True)


def guarded_update(model: nn.Module, optimizer, clip_grad: float | None, bad: torch.Tensor,
                   distributed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient norm (clipped if asked), then the fused optimizer's step with ``found_inf`` = (``bad`` or the
    norm not finite): a non-finite update is skipped on the device. ``bad`` (float 0/1, one element) marks
    a non-finite loss seen in this update's micro-batches; in a distributed run it is maxed over the ranks
    first (the gradients, and so the norm, are the same on every rank already). Returns (norm, flag).
    The caller zeroes the gradients."""
    norm = total_grad_norm(model.parameters(), clip_grad)
    flag = torch.maximum(bad, (~torch.isfinite(norm)).to(bad.dtype))
    if distributed and dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    optimizer.found_inf = flag
    try:
        optimizer.step()
    finally:
        optimizer.found_inf = None
    return norm, flag


def nonfinite_loss(loss: torch.Tensor) -> torch.Tensor:
    """1.0 where the (detached) loss is not finite, else 0.0; float32, on the loss's device."""
    return (~torch.isfinite(loss.detach())).float()


class GraphedTrainStep:
    """One training step captured as a CUDA graph: forward (autocast), loss, backward, gradient norm and the
    guarded update (:func:`guarded_update`). Calling it copies the batch into the graph's input buffers and
    the optimizer's current learning rates (as the scheduler left them in ``param_groups``) into the graph's
    learning-rate tensors, replays, and returns the graph's (loss, norm, flag) tensors, valid until the next
    call.

    Building it runs ``warmup`` eager steps on the first batch (kernels compile, the optimizer creates its
    state), then puts the weights, the optimizer state and the CUDA RNG back as they were, so the capture
    changes nothing a checkpoint holds. Needs a single CUDA process, a capturable fused optimizer
    (``fused_optimizer_kwargs(..., cuda_graph=True)``) and batches of one shape (timm's training loader drops
    the last, short batch).
    """

    def __init__(self, model: nn.Module, criterion, optimizer, x: torch.Tensor, y: torch.Tensor,
                 clip_grad: float | None = None, amp_dtype: torch.dtype | None = torch.bfloat16, warmup: int = 3):
        if x.device.type != "cuda":
            raise ValueError(f"cuda_graph needs the batch on a CUDA device, got {x.device}")
        if not (optimizer.defaults.get("fused") and optimizer.defaults.get("capturable")):
            raise ValueError("cuda_graph needs a fused, capturable optimizer (adamw or adam; see "
                             "fused_optimizer_kwargs)")
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.clip_grad, self.amp_dtype = clip_grad, amp_dtype
        self.x, self.y = x.detach().clone(), y.detach().clone()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.lrs = [torch.tensor(lr, dtype=torch.float32, device=x.device) for lr in lrs]
        for g, t in zip(optimizer.param_groups, self.lrs):
            g["lr"] = t  # the capture reads the learning rate from these tensors

        # what the warm-up changes, to be put back: weights, buffers, optimizer state, CUDA RNG
        tensors = list(model.parameters()) + list(model.buffers())
        saved = [t.detach().clone() for t in tensors]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
                       for p in params if p in optimizer.state}
        rng = torch.cuda.get_rng_state(x.device)
        try:
            # gradients None before every warm-up step and the capture: the captured backward writes them, never
            # adds to them
            self.graph, self.out = capture(self._step, warmup, lambda: optimizer.zero_grad(set_to_none=True),
                                           x.device)
            with torch.no_grad():
                for t, s in zip(tensors, saved):
                    t.copy_(s)
                for p in params:  # in place: the graph holds these tensors' memory
                    for k, v in optimizer.state.get(p, {}).items():
                        if torch.is_tensor(v) and p in saved_state:
                            v.copy_(saved_state[p][k])
                        elif torch.is_tensor(v):
                            v.zero_()  # a fresh state: Adam's moments and step count start at zero
            torch.cuda.set_rng_state(rng, x.device)
        finally:
            for g, lr in zip(optimizer.param_groups, lrs):
                g["lr"] = lr  # floats again, for the scheduler, logging and state_dict

    def _step(self):
        amp = torch.autocast("cuda", dtype=self.amp_dtype, cache_enabled=False) if self.amp_dtype else \
            torch.autocast("cuda", enabled=False)
        with amp:
            loss = self.criterion(self.model(self.x), self.y)
        loss.backward()
        norm, flag = guarded_update(self.model, self.optimizer, self.clip_grad, nonfinite_loss(loss))
        return loss.detach(), norm, flag

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if x.shape != self.x.shape or y.shape != self.y.shape:
            raise ValueError(f"the CUDA graph was captured for batches {tuple(self.x.shape)} with targets "
                             f"{tuple(self.y.shape)}; got {tuple(x.shape)} and {tuple(y.shape)} (cuda_graph needs "
                             f"equal batches: timm's training loader drops the last short one)")
        self.x.copy_(x, non_blocking=True)
        self.y.copy_(y, non_blocking=True)
        for t, g in zip(self.lrs, self.optimizer.param_groups):
            t.fill_(g["lr"])
        self.graph.replay()
        return self.out


def check_finite_count(count: torch.Tensor, since: int, step: int, where: str) -> None:
    """Host check of the device's count of skipped (non-finite) updates: raises NonFiniteLossError if any.
    This reads ``count`` (one synchronisation): call it where the loop synchronises anyway."""
    n = int(count.item())
    if n:
        raise NonFiniteLossError(
            f"non-finite loss or gradient norm in {n} of the updates {since + 1}..{step} ({where}): those updates "
            f"were skipped on the device, so the weights stayed finite; stopping. Lower the learning rate or "
            f"enable clip_grad.")


__all__ = ["CAPTURABLE_OPTIMIZERS", "FUSED_OPTIMIZERS", "GraphedTrainStep", "NonFiniteLossError",
           "check_finite_count", "fused_optimizer_kwargs", "guarded_update", "guards_on_device",
           "nonfinite_loss", "total_grad_norm"]
