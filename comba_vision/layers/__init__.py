from .comba_mixer import CombaBlock, CombaMixer, count_recurrence_macs, recurrence_macs

__all__ = ["CombaBlock", "CombaMixer", "count_recurrence_macs", "recurrence_macs"]
