#!/usr/bin/env python3
"""Quick GPU correctness sweep (a subset of tests/ops run as a script, for short device sessions):
relative errors of the Triton kernels against the float64 recurrence, fp32 and bf16, both directions."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from tests.ops.helpers import compare_to_reference, make_inputs  # noqa: E402

CASES = [tuple(int(x) for x in c.split(",")) for c in sys.argv[1:]] or [
    (2, 197, 3, 64, 64), (1, 1025, 2, 64, 64), (2, 130, 1, 128, 128), (2, 65, 3, 32, 16)]
DTYPES = [(torch.bfloat16, 2e-2)] if os.environ.get("GPU_CHECK_BF16_ONLY") else [(torch.float32, 1e-3),
                                                                                 (torch.bfloat16, 2e-2)]
worst = 0.0
for B, T, H, K, V in CASES:
    for dtype, bound in DTYPES:
        for variant, reverse in (("splr", False), ("iplr", True)):
            xs, h0 = make_inputs(B, T, H, K, V, dtype=dtype, init=True, device="cuda", seed=T)
            errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
            m = max(errs.values())
            print(f"{(B, T, H, K, V)} {str(dtype)[6:]} {variant} {'rev' if reverse else 'fwd'} max {m:.2e} "
                  f"{'OK' if m <= bound else 'FAIL'} " + " ".join(f"{k}={v:.1e}" for k, v in errs.items()), flush=True)
            worst = max(worst, m / bound)
print("ALL OK" if worst <= 1 else "FAILURES")
