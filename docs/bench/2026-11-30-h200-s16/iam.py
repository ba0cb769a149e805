"""One case of the operator (bf16, CUDA) forward (+ backward): prints ok or the failing launch. Args: what B:T:H:K:V
with what in bidir, bidir_fwd, single, single_rev. Run under CUDA_LAUNCH_BLOCKING=1 to name the failing kernel."""
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402

from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba, comba_bidirectional  # noqa: E402

what, shape = sys.argv[1], tuple(int(x) for x in sys.argv[2].split(":"))
tag = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("COMBA_"))
xs = [x.detach().requires_grad_() for x in bench.make_op_inputs(shape, torch.bfloat16, "cuda")]
try:
    if what.startswith("bidir"):
        o = comba_bidirectional(*xs, merge="stack")
    else:
        o = comba(*xs, reverse=what == "single_rev", backend="triton")[0]
    torch.cuda.synchronize()
    print(what, shape, tag, "forward ok", flush=True)
    if what != "bidir_fwd":
        o.backward(torch.randn_like(o))
        torch.cuda.synchronize()
        print(what, shape, tag, "backward ok", bool(all(x.grad.isfinite().all() for x in xs)), flush=True)
except Exception as e:
    tb = traceback.extract_tb(e.__traceback__)
    frames = [f"{f.name}:{f.lineno}" for f in tb if "comba_vision" in f.filename]
    print(what, shape, tag, "FAILED", type(e).__name__, str(e)[:80], "at", " > ".join(frames[-4:]), flush=True)
