from .comba_vit import CombaViT, comba_micro, comba_small, comba_tiny, count_macs

__all__ = ["CombaViT", "comba_micro", "comba_tiny", "comba_small", "count_macs"]
