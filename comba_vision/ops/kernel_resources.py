"""Registers, spills and shared memory of the operator's Triton kernels, compiled for an NVIDIA GPU without one.

Session 12's ncu runs found every operator kernel held to 12.5% occupancy by its registers; what a kernel change
does to them can be read before any GPU time is spent. ``kernel_resources`` runs the operator's forward and
backward launch code on CPU tensors with the launches recorded instead of run (so no kernel executes), compiles
each recorded launch for the target architecture through Triton's own JIT (a stand-in driver names the target) and
reads the register and spill counts from ptxas (``-v``, the ptxas Triton ships) and the shared memory from Triton's
metadata. The launch options are the ones a GPU run would use (``KERNEL_CONFIGS``, ``COMBA_KERNEL_CONFIG``, bf16
products); on CPU tensors the state kernels keep their full V block and never walk in groups (both depend on the
GPU's multiprocessor count). Triton's version here may differ from the GPU machine's: compare kernels with each
other, not with ncu to the register.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from contextlib import contextmanager

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.runtime.driver import driver

from ..bench import make_op_inputs
from . import triton_chunk as tc


class _TargetOnlyDriver:
    """What Triton's JIT asks of a driver to compile (not to launch): the device, its stream and its target."""

    def __init__(self, arch: int):
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target


@contextmanager
def _recorded_launches():
    """tc._launch replaced by a recorder of (kernel, args, meta with the GPU's launch options)."""
    launches = []

    def record(kernel, grid, args, meta, per_v_block=False, fixed_bv=False, identity_blocks=False):
        launches.append((kernel, args, *tc.launch_options(kernel, meta, fixed_bv)))
        return meta["BV"]

    real = tc._launch
    tc._launch = record
    try:
        yield launches
    finally:
        tc._launch = real


# sm_90 (H100 / H200) per multiprocessor: registers, warps, programs, shared memory a multiprocessor can give its
# programs, shared memory the driver reserves per program; registers are allocated 8 a thread (256 a warp) at a time
SM90 = dict(registers=65536, warps=64, programs=32, shared=233472, reserved=1024)


def programs_per_sm(registers: int, warps: int, shared: int, limits: dict = SM90) -> int:
    """Programs of `warps` warps that fit one multiprocessor at `registers` a thread and `shared` bytes each (the
    theoretical occupancy ncu reports is this times warps over the warp limit)."""
    by_regs = limits["registers"] // (-(-registers // 8) * 8 * 32) // warps
    by_shared = limits["shared"] // (shared + limits["reserved"])
    return min(by_regs, by_shared, limits["warps"] // warps, limits["programs"])


def parse_ptxas(text: str) -> dict:
    """registers, spill_stores and spill_loads (bytes) from ptxas -v output for one kernel."""
    regs = re.search(r"Used (\d+) registers", text)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if regs is None or spill is None:
        raise RuntimeError(f"no register or spill figures in the ptxas output:\n{text}")
    return dict(registers=int(regs.group(1)), spill_stores=int(spill.group(1)), spill_loads=int(spill.group(2)))


def _ptxas() -> str:
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Triton's ptxas is not at {path}: this Triton has no NVIDIA backend")
    return path


def _ptxas_figures(ptx: str) -> dict:
    arch = re.search(r"^\.target\s+(\S+)", ptx, re.M)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        out = subprocess.run([_ptxas(), f"-arch={arch.group(1) if arch else 'sm_90a'}", "-v", src,
                              "-o", os.path.join(tmp, "kernel.cubin")], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"ptxas failed:\n{out.stderr}")
    return parse_ptxas(out.stderr)


def kernel_resources(shape, dtype: torch.dtype = torch.bfloat16, directions: int = 2, variant: str = "splr",
                     arch: int = 90) -> list[dict]:
    """One row per distinct kernel launch of one forward+backward at shape (B, T, H, K, V): kernel, tile rows,
    product precision, warps, stages, registers a thread, spill stores and loads (bytes), shared memory (bytes)
    and, for sm_90, the programs that fit one multiprocessor."""
    if tc._interpreting():
        raise RuntimeError("kernel_resources compiles the kernels: run it without TRITON_INTERPRET=1")
    if directions not in (1, 2):
        raise ValueError(f"directions must be 1 or 2, got {directions!r}")
    K = shape[3]
    q, k, v, p, g, beta = (x.detach() for x in make_op_inputs(shape, dtype, "cpu"))
    g, beta = g.float(), beta.float()  # float32, as the mixer gives them
    reverse = tc.BOTH if directions == 2 else 0
    iplr = variant == "iplr"
    with _recorded_launches() as launches:
        # both directions with SHARED_DO: the operator's own output sum (chunk_fwd_sum), atomic with ATOMIC_SUM
        o, _, saved = tc.comba_fwd_triton(q, k, v, p, g, beta, K ** -0.5, None, False, iplr, reverse,
                                          sum_out=directions == 2 and tc.SHARED_DO)
        # both directions with SHARED_DO: one dO for both, as comba_bidirectional's merge "sum" passes it
        do = torch.ones_like(v if directions == 2 and tc.SHARED_DO else o)
        tc.comba_bwd_triton(q, k, v, p, g, beta, K ** -0.5, saved, do, None, False, iplr, reverse)
    rows, seen = [], set()
    previous = driver._active  # None until a driver was first asked for (none exists on a machine without a GPU)
    driver.set_active(_TargetOnlyDriver(arch))
    try:
        for kernel, args, name, meta in launches:  # name: the kernel's, or its variant's (CONFIG_AS)
            key = (name, tuple(sorted((n, str(x)) for n, x in meta.items() if n != "I0")))
            if key in seen:
                continue
            seen.add(key)
            compiled = kernel.warmup(*args, grid=(1,), **meta)
            row = dict(kernel=name, BT=meta.get("BT"), PREC=meta.get("PREC"), warps=meta.get("num_warps", 4),
                       stages=meta.get("num_stages"), **_ptxas_figures(compiled.asm["ptx"]),
                       shared=compiled.metadata.shared)
            row["programs_per_sm"] = (programs_per_sm(row["registers"], row["warps"], row["shared"])
                                      if arch == 90 else None)
            rows.append(row)
    finally:
        driver._active = previous
        for kernel, *_ in launches:  # nothing compiled for the stand-in target stays cached
            kernel.device_caches.clear()
    return rows
