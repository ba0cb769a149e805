"""comba_vision: Comba (bilinear RNN with closed-loop control) backbones for vision."""
from .ops import comba

__version__ = "0.1.0"
__all__ = ["comba", "__version__"]
