from .block_kernels import fused_block_kernels
from .chunk_torch import comba_chunk_torch
from .comba import comba, comba_bidirectional
from .reference import comba_recurrent_reference

__all__ = ["comba", "comba_bidirectional", "comba_recurrent_reference", "comba_chunk_torch", "fused_block_kernels"]
