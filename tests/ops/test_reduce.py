"""sum_rows (comba_vision.ops.reduce) against torch's float64 sum."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops.reduce import sum_rows

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape", [(784, 2, 192), (1, 5), (130, 12), (65, 3, 7), (0, 4)])
def test_sum_rows_matches_float64(shape):
    """Row counts below, at and past one tile (64), column counts that end inside a column block, a 3-D
    partial buffer (summed over its first dimension only) and no rows at all."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    out = sum_rows(x)
    ref = x.double().sum(0)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert (out.double() - ref).abs().max().item() <= 1e-5 * max(1.0, x.abs().sum(0).max().item() if len(x) else 1.0)


def test_sum_rows_takes_float32_only():
    with pytest.raises(ValueError, match="float32"):
        sum_rows(torch.zeros(3, 4, dtype=torch.float16))
