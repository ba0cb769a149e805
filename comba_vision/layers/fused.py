"""Drop-in nn.LayerNorm and nn.Linear for the Comba blocks: the same parameters and state dicts, the fused
Triton kernels of comba_vision.ops where ops.block_kernels says so (by default on CUDA inside the package's
CUDA graphs, where they save device time; an eager step is host-bound and keeps PyTorch's kernels),
PyTorch's modules elsewhere."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..ops.layer_norm import add_layer_norm, fused_norm_applies, layer_norm
from ..ops.linear import fused_linear_applies, linear


class FusedLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last dimension. Fused (see the module docstring; with weight and bias): one Triton
    kernel forward and one backward; under autocast the output is then in the autocast dtype, which is what
    the Linear layers that read it cast it to anyway."""

    def _fused(self, x: torch.Tensor) -> bool:
        return (fused_norm_applies(x) and len(self.normalized_shape) == 1 and self.weight is not None
                and self.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused(x):
            return layer_norm(x, self.weight, self.bias, self.eps)
        return super().forward(x)

    def residual(self, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x + r, self(x + r)): a residual add and this norm, fused into one kernel each way where the norm
        is fused (ops.layer_norm.add_layer_norm)."""
        if self._fused(x) and r.shape == x.shape:
            return add_layer_norm(x, r, self.weight, self.bias, self.eps)
        s = x + r
        return s, self(s)


class FusedLinear(nn.Linear):
    """nn.Linear whose bias gradient, fused (see the module docstring), is one Triton column sum
    (comba_vision.ops.linear) instead of PyTorch's reduction kernel; the forward and the other gradients are
    the same cuBLAS GEMMs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused_linear_applies(x):
            return linear(x, self.weight, self.bias)
        return super().forward(x)


def fuse_linears(*modules: nn.Linear) -> None:
    """Turns existing nn.Linear modules (e.g. inside a timm Mlp) into FusedLinear in place: the same object,
    parameters and state-dict keys, only the forward changes (no new module, so no second initialisation)."""
    for m in modules:
        if type(m) is not nn.Linear:
            raise TypeError(f"fuse_linears takes plain nn.Linear modules, got {type(m).__name__}")
        m.__class__ = FusedLinear
