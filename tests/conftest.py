import os

import torch

# Without a GPU the Triton kernels run under Triton's interpreter; this must be set before any
# kernel is decorated, i.e. before comba_vision.ops.triton_chunk is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
