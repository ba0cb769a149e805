"""row_sums (comba_vision.ops.reductions): several views' row sums in one launch, against float64 sums."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops.reductions import row_sums
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_row_sums_of_several_views():
    """Views with rows ending inside a program's block and columns past one step, a transposed view (rows one
    element apart), a single row and column, empty views (no rows; rows of no columns: zeros) and a half-precision
    one, seven of them (two launches): each equals its float64 row sums."""
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(s, generator=gen) for s in [(37, 300), (129, 5), (1, 1), (0, 7), (70, 130), (6, 0)]]
    views = [base[0], base[1].t(), base[2], base[3], base[4].half(), base[4][5:40, ::3], base[5]]
    outs = row_sums(*[v.to(DEV) for v in views])
    assert len(outs) == len(views)
    for v, o in zip(views, outs):
        assert o.dtype == torch.float32 and o.shape == (v.shape[0],)
        assert torch.equal(o.cpu(), torch.zeros(v.shape[0])) if v.shape[1] == 0 else (
            o.numel() == 0 or rel_err(o, v.double().sum(-1)) <= 1e-6)
    with pytest.raises(ValueError, match="2-D"):
        row_sums(torch.zeros(2, 2, 2))
