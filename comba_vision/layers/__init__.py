from .comba_mixer import CombaBlock, CombaMixer, count_recurrence_macs, recurrence_macs
from .fused import FusedLayerNorm, FusedLinear, fuse_linears

__all__ = ["CombaBlock", "CombaMixer", "FusedLayerNorm", "FusedLinear", "count_recurrence_macs", "fuse_linears",
           "recurrence_macs"]
