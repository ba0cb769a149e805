from .comba_mixer import CombaBlock, CombaMixer, count_recurrence_macs, recurrence_macs
from .norm import FusedLayerNorm

__all__ = ["CombaBlock", "CombaMixer", "FusedLayerNorm", "count_recurrence_macs", "recurrence_macs"]
