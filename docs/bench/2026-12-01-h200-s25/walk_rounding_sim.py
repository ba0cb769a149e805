"""Session 25, on the CPU (no GPU needed): emulates the transition walk's rounding at head size 64 over many chunks,
from float64 maps built by the chunk formulas: the exact float64 walk against the default (float32 A = e^c_last I -
K~^T W, both product operands rounded to TF32) and against COMBA_HALF_MAPS (bf16 K~^T W and R, the decay exact).
`python walk_rounding_sim.py N const|weak [lowbeta]`: N chunks; one gate of -1e-5 everywhere, or random gates a
hundred times weaker than the tests'; lowbeta: beta a hundred times smaller (the delta rule then hardly contracts the
state, so the decay alone sets its memory). Prints the largest and last relative error of the state per form.
Session 25's output: const 257 tf32 4.0e-4 half 1.9e-3; weak 257 3.8e-4 / 1.9e-3; const 257 lowbeta 2.4e-3 /
1.7e-3; const 1024 lowbeta 3.2e-3 / 1.7e-3."""
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
K = V = 64
C = 64
N = int(sys.argv[1]) if len(sys.argv) > 1 else 257
mode = sys.argv[2] if len(sys.argv) > 2 else "const"


def tf32(x):  # round float32 to TF32 (10 mantissa bits), nearest-even approximated by adding half an ulp
    x = x.float()
    i = x.view(torch.int32)
    i = (i + 0x1000) & ~0x1FFF
    return i.view(torch.float32)


def maps(k, p, v, g, beta):
    c = torch.cumsum(g, 0)
    cf = c - g
    L = torch.tril((p @ k.T) * torch.exp(cf[:, None] - c[None, :]), -1)
    M = torch.linalg.inv(torch.eye(C, dtype=torch.float64) + beta[:, None] * L)
    W = M @ (beta * torch.exp(cf))[:, None].mul(p)
    U0 = M @ (beta[:, None] * v)
    kd = torch.exp(c[-1] - c)[:, None] * k
    KW = kd.T @ W
    return c[-1], KW, kd.T @ U0


errs = {"tf32": [], "half": []}
h = torch.zeros(K, V, dtype=torch.float64)
h32 = torch.zeros(K, V)
hh = torch.zeros(K, V)
for _t in range(N):
    k = F.normalize(torch.randn(C, K, dtype=torch.float64), dim=-1)
    p = 0.5 * k
    v = torch.randn(C, V, dtype=torch.float64)
    if mode == "const":
        g = torch.full((C,), -1e-5, dtype=torch.float64)
    else:
        g = F.logsigmoid(torch.randn(C, dtype=torch.float64) + 2.0) * 0.3 / 100
    beta = torch.sigmoid(torch.randn(C, dtype=torch.float64)) * (0.01 if "lowbeta" in sys.argv else 1.0)
    cl, KW, R = maps(k, p, v, g, beta)
    A = torch.exp(cl) * torch.eye(K, dtype=torch.float64) - KW
    h = A @ h + R
    h32 = (tf32(A.float()).double() @ tf32(h32).double()).float() + R.float()
    hh = (torch.exp(cl).float() * hh - (tf32(KW.bfloat16().float()).double() @ tf32(hh).double()).float()
          + R.bfloat16().float())
    errs["tf32"].append(((h32.double() - h).norm() / h.norm()).item())
    errs["half"].append(((hh.double() - h).norm() / h.norm()).item())
print(mode, N, {k: (round(max(v), 6), round(v[-1], 6)) for k, v in errs.items()})
