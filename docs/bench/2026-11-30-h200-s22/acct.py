"""What one Comba-T block keeps for the backward on the fused (CUDA-graph) path, shapes and bytes per token:
run on the CPU under TRITON_INTERPRET=1 with every fused path forced on (values meaningless, shapes real)."""
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
import torch, timm  # noqa
sys.path.insert(0, ".")
import comba_vision  # noqa
import comba_vision.ops.linear as L, comba_vision.ops.layer_norm as LN, comba_vision.ops.dwconv as DW  # noqa
import comba_vision.ops.mixer_fused as MF, comba_vision.ops.mixer_joint as MJ  # noqa
import comba_vision.layers.comba_mixer as CM, comba_vision.layers.fused as FU  # noqa
T = lambda *a, **k: True  # noqa
for m in (L, LN, DW):
    m.applies = T
for m in (MF, CM):
    m.fused_applies = T
for m in (MF, MJ, CM):
    m.mixer_scan_applies = T
CM.mixer_joint_applies = lambda y, conv: conv.bias is not None
img = int(sys.argv[1]) if len(sys.argv) > 1 else 64
model = timm.create_model("comba_tiny", img_size=img).train()
N = (img // 16) ** 2
seen, rows, where = set(), [], ["-"]
for n, mod in model.named_modules():
    if n.count(".") == 1 and n.startswith("blocks."):
        mod.register_forward_pre_hook(lambda m, a, n=n: where.append(n))
        mod.register_forward_hook(lambda m, a, o: where.pop() and None)


def pack(t):
    st = t.untyped_storage()
    if st.data_ptr() not in seen and not isinstance(t, torch.nn.Parameter):
        seen.add(st.data_ptr())
        rows.append((where[-1], tuple(t.shape), str(t.dtype).replace("torch.", ""), st.nbytes()))
    return t


x = torch.randn(1, 3, img, img)
with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
    model.forward_features(x)
tot = 0
for w, shape, dt, nb in rows:
    if w in ("blocks.3",):
        print(f"{w:10s} {str(shape):28s} {dt:9s} {nb / N:8.1f} B/token")
        tot += nb
print("block 3 total", tot / N, "B/token;", "all", sum(r[3] for r in rows) / N, "B/token, N =", N)
