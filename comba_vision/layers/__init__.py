from .comba_mixer import CombaBlock, CombaMixer, count_recurrence_macs, recurrence_macs
from .fused import FusedLayerNorm, FusedLinear, PatchConv2d, fuse_linears, gemm_patch_conv

__all__ = ["CombaBlock", "CombaMixer", "FusedLayerNorm", "FusedLinear", "PatchConv2d", "count_recurrence_macs",
           "fuse_linears", "gemm_patch_conv", "recurrence_macs"]
