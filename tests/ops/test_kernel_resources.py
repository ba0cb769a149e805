"""comba_vision.ops.kernel_resources / tools/kernel_resources.py: the operator's kernels compiled for sm_90 here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import triton

from comba_vision.ops.kernel_resources import parse_ptxas, programs_per_sm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def test_parse_ptxas():
    text = ("ptxas info    : Compiling entry function '_bwd_grads' for 'sm_90a'\n"
            "ptxas info    : Function properties for _bwd_grads\n"
            "    952 bytes stack frame, 956 bytes spill stores, 1008 bytes spill loads\n"
            "ptxas info    : Used 255 registers, used 1 barriers, 952 bytes cumulative stack size\n")
    assert parse_ptxas(text) == dict(registers=255, spill_stores=956, spill_loads=1008)
    with pytest.raises(RuntimeError, match="no register or spill figures"):
        parse_ptxas("ptxas fatal   : Unresolved extern function")


def test_programs_per_sm():
    """Against ncu's occupancy on the H200 (session 12): 255 registers held 4-warp programs to 2 (12.5%), 2-warp
    ones to 4; and each limit alone: shared memory, the warp limit, the program limit."""
    assert programs_per_sm(255, 4, 106496) == 2
    assert programs_per_sm(248, 2, 13312) == 4
    assert programs_per_sm(64, 4, 200 * 1024) == 1   # shared memory: 201 KiB of 228
    assert programs_per_sm(32, 8, 0) == 8            # 64 warps
    assert programs_per_sm(16, 1, 0) == 32           # 32 programs


@pytest.mark.skipif(not os.path.exists(PTXAS), reason="this Triton ships no ptxas")
def test_tool_reports_every_launch_with_the_gpu_options(tmp_path):
    """Both directions, bf16, Comba's head sizes (K = 32, V = 64) and a short last chunk (T = 70): one row per
    kernel and tile the operator launches, with the launch options of KERNEL_CONFIGS, bf16 products where
    BF16_DOTS applies (every kernel at this head size, the one-kernel gradient in its ordered form), and figures
    ptxas can give (at most 255 registers a thread)."""
    from comba_vision.ops.triton_chunk import BT, KERNEL_CONFIGS
    out = tmp_path / "rows.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "kernel_resources.py"), "--shape", "1,70,1,32,64",
                    "--json", str(out)], check=True, env=env, cwd=ROOT, capture_output=True, timeout=600)
    rows = json.loads(out.read_text())["rows"]
    # whole chunks of BT positions (COMBA_CHUNK_SIZE), the last 6 positions on a 16-row tile
    assert sorted((r["kernel"], r["BT"]) for r in rows) == sorted([
        ("_fwd_prepare_blocked" if BT == 64 else "_fwd_prepare_blocked2", BT), ("_fwd_prepare", 16), ("_fwd_state", BT),
        ("_bwd_dv_local", BT), ("_bwd_dv_local", 16), ("_bwd_state", BT), ("_bwd_grads", BT), ("_bwd_grads", 16)])
    for r in rows:
        cfg = KERNEL_CONFIGS.get((r["kernel"], 32))
        if cfg:
            assert (r["warps"], r["stages"]) == (cfg["num_warps"], cfg["num_stages"]), r
        assert r["PREC"] == "bf16", r  # the gradient kernel's too since session 24 (BF16_GRADS_ONE)
        assert 0 < r["registers"] <= 255 and r["spill_loads"] >= 0 and r["shared"] >= 0, r
        assert r["programs_per_sm"] == programs_per_sm(r["registers"], r["warps"], r["shared"]) >= 1, r
