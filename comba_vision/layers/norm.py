"""LayerNorm for the Comba blocks: nn.LayerNorm's parameters and state dict, the fused Triton kernels of
comba_vision.ops.layer_norm on CUDA (COMBA_FUSED_NORM=0 turns them off), PyTorch's elsewhere."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..ops.layer_norm import fused_norm_applies, layer_norm


class FusedLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last dimension. On CUDA (with weight and bias) one Triton kernel forward and one
    backward; under autocast the output is then in the autocast dtype, which is what the Linear layers that
    read it cast it to anyway."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (fused_norm_applies(x) and len(self.normalized_shape) == 1 and self.weight is not None
                and self.bias is not None):
            return layer_norm(x, self.weight, self.bias, self.eps)
        return super().forward(x)
