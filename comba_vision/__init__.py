"""comba_vision: Comba (bilinear RNN with closed-loop control) backbones for vision.

Importing the package registers ``comba_micro``, ``comba_tiny`` and ``comba_small`` with timm.
"""
from . import models  # noqa: F401  (registers the timm models)
from .ops import comba

__version__ = "0.1.0"
__all__ = ["comba", "models", "__version__"]
