"""Session 24, CPU: each model's inference time at 224px (batch 8, 3 forwards after 2 warm-up) and the time of its MLP
GELU calls inside it, timed directly (torch.profiler had attributed 3x more to GELU in comba_tiny). Run from the
repository root: python docs/bench/2026-12-01-h200-s24/cpu_gelu_probe.py"""
import sys
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, ".")
import comba_vision  # noqa: E402,F401

ts = []


class TimedGELU(nn.GELU):
    def forward(self, x):
        t0 = time.perf_counter()
        y = F.gelu(x)
        ts.append(time.perf_counter() - t0)
        return y


for name in ("comba_tiny", "deit_tiny_patch16_224"):
    m = timm.create_model(name).eval()
    for b in m.blocks:
        b.mlp.act.__class__ = TimedGELU
    x = torch.randn(8, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(2):
            m(x)
        ts.clear()
        t0 = time.perf_counter()
        for _ in range(3):
            m(x)
        tot = (time.perf_counter() - t0) / 3
    print(name, f"model {tot * 1e3:.1f} ms, gelu {sum(ts) / 3 * 1e3:.2f} ms per forward ({len(ts) // 3} calls)")
