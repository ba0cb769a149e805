"""Partial-row reductions as the fused kernels leave them, timed inside a CUDA graph (100 replays of 20 calls):
column sums of [P, C] (what the kernels write now) against row sums of the transposed [C, P] layout."""
import torch


def timed(fn, reps=20, outer=50):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(outer):
        g.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / outer / reps * 1e3  # us per call


for name, P, C in [("ln [784,2,192]", 784, 384), ("prep dpar [784,4,3]", 784, 12), ("out dwp [784*3,64]", 2352, 64),
                   ("ln s [196,384]", 196, 384)]:
    x = torch.randn(P, C, device="cuda")
    xt = torch.randn(C, P, device="cuda")
    ones = torch.ones(P, device="cuda")
    t0 = timed(lambda x=x: x.sum(0))
    t1 = timed(lambda xt=xt: xt.sum(-1))
    t2 = timed(lambda xt=xt, ones=ones: torch.mv(xt, ones))
    print(f"{name}: col sum {t0:.1f} us, row sum of transposed {t1:.1f} us, mv {t2:.1f} us", flush=True)
