import time, torch, timm, importlib.util, comba_vision
import sys; combamod = sys.modules["comba_vision.ops.comba"]
from comba_vision.ops import chunk_torch as newmod
spec = importlib.util.spec_from_file_location("old", "/tmp/chunk_old.py"); old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
torch.manual_seed(0)
m = timm.create_model("comba_tiny").eval(); d = timm.create_model("deit_tiny_patch16_224").eval()
x = torch.randn(8, 3, 224, 224)
def comba_old(): combamod.comba_chunk_torch_bidir = old.comba_chunk_torch_bidir; return m(x)
def comba_new(): combamod.comba_chunk_torch_bidir = newmod.comba_chunk_torch_bidir; return m(x)
runs = {"comba_new": comba_new, "comba_old": comba_old, "deit": lambda: d(x)}
res = {k: [] for k in runs}
with torch.inference_mode():
    for f in runs.values(): f(); f()
    for _ in range(12):
        for k, f in runs.items():
            t = time.perf_counter(); f(); res[k].append(time.perf_counter() - t)
med = {k: sorted(v)[len(v) // 2] for k, v in res.items()}
print({k: f"{v*1e3:.0f} ms" for k, v in med.items()}, f"new/deit {med['comba_new']/med['deit']:.2f}x  old/deit {med['comba_old']/med['deit']:.2f}x")
