"""Triton chunkwise Comba: forward and backward kernels (chunk size 64, or 32 with COMBA_CHUNK_SIZE; float32 state
and solve).

Launches (B*H programs on the second grid axis everywhere, 2*B*H when both scan directions share the
launches, ``REVERSE = BOTH``; NT = number of chunks):

forward
  1. ``_fwd_prepare``  grid (NT, B*H):   in-chunk P K^T with decays, the unit-lower-triangular inverse
     M = (I + Diag(beta) L)^-1 by row substitution in registers, W = M Diag(beta e^cf) P, U0 = M Diag(beta) V.
  2. ``_fwd_state``    grid (V/BV, B*H): walks the chunks in order holding the state [K, BV] on chip;
     stores the state at each chunk start and turns U0 into u = U0 - W h in place.
  3. ``_fwd_output``   grid (NT, B*H):   o = Diag(e^c) Q h + lower(Q K^T * decay) u; below head size 128
     (``FUSED_OUTPUT``) ``_fwd_state`` writes o itself as it walks each chunk and 3 is not launched.
backward
  4. ``_bwd_dv_local`` grid (NT, B*H):   dU = lower(Q K^T * decay)^T dO.
  5. ``_bwd_state``    grid (V/BV, B*H): walks the chunks backwards holding dh [K, BV]; completes
     dU += Diag(e^(c_last - c)) K dh and stores dh at each chunk end (and dh0).
  6. ``_bwd_grads``    grid (NT, B*H):   every input gradient of one chunk from M, u, dU, h, dh.
  At padded head sizes 32 and 64 (``PRE_BKS``) and from 128: 4 and 5 also write the K-wide per-token products of the
  gradients (P h0, the Q h0, K dh and <h0, dh> terms of dg). From 128 (``SPLIT_BWD_MIN_BK``; from 64 in sessions
  14-25) 6 is split into ``_bwd_grads_cc`` (C x C and per-token gradients) and ``_bwd_grads_k`` (dq, dk, dp per K
  block), and 5 runs in two K halves (``_bwd_state_halves``).
  Long sequences with few programs (``_walk_mode``): by default the transition walk (``TRANSITION_WALK``) replaces
  2 and 5: ``_chunk_affine`` grid (NT, B*H) writes each chunk's affine map of the state (A, R), ``_affine_scan``
  walks the maps, then ``_fwd_output`` (``COMPLETE_U``: u and o) or ``_bwd_complete`` (dU and the dc terms) grid
  (NT, B*H). Both that walk and, with ``COMBA_TRANSITION_WALK=0``, the state kernels walk groups of G chunks in
  parallel, in three launches (each group's summary from zero, grid (V/BV + K/BV, B*H, NT/G); ``_state_carry``
  over the groups, grid (V/BV, B*H); each group again from its true start, grid (V/BV, B*H, NT/G)).
  Below head size 128 (where the split gradient kernels run, with ``COMBA_SPLIT_BWD_MIN_BK=64``, only with
  ``COMBA_SPLIT_TAIL=1``, the gradient of that chunk then from one ``_bwd_grads`` launch) a last chunk of at most
  32 positions runs on a 16- or 32-row tile (``_tail_rows``): 1, 3, 4 and 6 launch once more for it, grid
  (1, B*H) (1 as ``_fwd_prepare`` by row substitution), and 2 and 5 take it in a step of their own.

``REVERSE`` maps the scan position s to the token T - 1 - s inside the loads and stores, so the
reverse scan reads the caller's tensors in place.  All arithmetic is float32 (inputs are converted
on load); products use three-pass TF32 for float32 inputs and TF32 for half-precision inputs, except that
for bf16 inputs up to head size 64 the prepare, state and local-dU kernels take bf16 operands (BF16_DOTS), and so
does the one-kernel gradient at head sizes 32 and 64 but for two products (BF16_GRADS_ONE).
The diagonal blocks' doubling inverse and the grouped walk's carry use three-pass TF32 whatever the inputs.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# COMBA_CHUNK_SIZE (default 64; 32 is a session-18 trial, correct on the H200 but slower at every measured shape in
# session 19: Comba-T graphed 0.99x / 0.99x / 1.92x DeiT-T at 224 / 1024 / 2048px against 1.01x / 1.37x / 2.64x): the
# positions of a chunk. 32 quarters the chunk-parallel kernels' C x C tiles and halves their [C, K] and [C, V] ones
# (fewer registers a program, which limit those kernels: docs/KERNELS.md, session 12), for twice the state walks'
# steps. At 32 the prepare inverts blockwise in two 16-row blocks (_fwd_prepare_blocked2) and the one-launch fused
# forward (COMBA_FUSED_FWD) is not offered.
BT = int(os.environ.get("COMBA_CHUNK_SIZE", "64"))
if BT not in (32, 64):
    raise ValueError(f"COMBA_CHUNK_SIZE must be 32 or 64, got {BT}")
# Two choices kept switchable for comparison (both on by default; checked on the H100 in bf16 and fp32):
# COMBA_SPLIT_BWD (default 1): from padded head size COMBA_SPLIT_BWD_MIN_BK (default 128), split the gradient
# kernel in two (C x C part, then K-blocked dq/dk/dp) so that its K-wide tiles and accumulators do not spill
# registers. From 64 in sessions 14-25 (then, against the one kernel without precomputed products, on the H200, bf16,
# both directions, forward+backward: 0.981 -> 0.899 ms at (128, 197, 3, 64), 1.37 -> 1.19 at (32, 1025)). Since
# session 26 head size 64 takes the one kernel with the precomputed products (PRE_BKS) and the short last chunk on
# its own tile (TAIL_TILE): both directions' forward+backward kernels on the H200 0.613 -> 0.544 ms at
# (128, 197, 3, 64), 0.813 -> 0.773 at (32, 1025), 0.977 -> 0.983 at (8, 4097), 0.995 -> 0.997 at (2, 16385)
# (_bwd_grads 0.264 against _bwd_grads_cc + _bwd_grads_k 0.283 at 16385; docs/BENCHMARKS.md "H200, session 26").
SPLIT_BWD_MIN_BK = (int(os.environ.get("COMBA_SPLIT_BWD_MIN_BK", "128"))
                    if os.environ.get("COMBA_SPLIT_BWD", "1") == "1" else 1 << 30)
# COMBA_BLOCKED_INVERSE (default 1): invert the in-chunk triangular matrix blockwise (four 16x16 diagonal
# blocks by row substitution, the rest by products; two blocks for 32-position chunks) instead of 63 (31)
# row-substitution steps on the whole tile.
BLOCKED_INVERSE = os.environ.get("COMBA_BLOCKED_INVERSE", "1") == "1"
# COMBA_FUSED_FWD=1: inference (no gradient needed) of comba_bidirectional through _fused_bidir_fwd, one
# launch for both directions. Correct on the H200 (tests/ops/test_bidirectional.py) but slower there than
# the chunk pipeline at every measured shape (docs/KERNELS.md): off by default.
FUSED_FWD = os.environ.get("COMBA_FUSED_FWD", "0") == "1"
# COMBA_PRE_MIN_BK (default 128): from this padded head size the backward takes the K-wide products of the
# per-token gradients (P h0, Q h0, K dh, <h0, dh>) where their operands already are, instead of recomputing
# them in the gradient kernel: P h0 and the Q h0 term of dc in _bwd_dv_local (which has q and dO), the K dh
# and <h0, dh> terms in _bwd_state (which holds dh). The split gradient kernel then holds no K-wide tile.
PRE_MIN_BK = int(os.environ.get("COMBA_PRE_MIN_BK", "128"))
# COMBA_PRE_BKS (default "32,64" since session 26, "32" before): padded head sizes below PRE_MIN_BK that also take
# the precomputed products.
# At 32 (Comba-T/S) the gradient kernel otherwise needs 120 KB of shared memory and spills 212 registers,
# so one program fits a multiprocessor (ncu: 6% occupancy). With them, both directions' forward+backward
# kernels on the H200 (2026-11-29, bf16, V = 64): 0.66 against 0.89 ms at (128, 197, 3, 32), 0.79 against
# 1.02 at (32, 1025, 3, 32), 0.93 against 1.12 at (8, 4097, 3, 32), 1.87 against 1.88 at (2, 16385, 3, 32).
# At 64 it gained 2% (1.16 against 1.19 ms at (128, 197, 3, 64)); in sessions 14-25 head size 64 took the split
# gradient kernels, which need the precomputed products anyway (comba_bwd_triton: pre = split or ...); since session
# 26 it takes the one kernel with them (SPLIT_BWD_MIN_BK), so the default is "32,64".
PRE_BKS = {int(b) for b in os.environ.get("COMBA_PRE_BKS", "32,64").split(",") if b.strip().isdigit()}  # "none": {}
# COMBA_ORDERED_GRADS ("auto" by default since session 24): the one-kernel gradient kernel with the precomputed products
# (head size 32, the models', and since session 26 head size 64) loads each [BT, BV] tile just before its first use and
# q, k, p after the V loop, and adds the dq and dk terms of h0, dO, u, dh after the C x C part, loading those tiles
# again (_grads_v_block_pre, _grads_v_terms), so that fewer tiles are live at once. "auto": where it takes bf16 products
# (BF16_GRADS_ONE; the only form tried whose bf16 products Triton 3.6 builds right), "1": also on TF32 products, "0":
# never (every tile of a V block loaded at its start, dq, dk, dp accumulated in the V loop). On TF32 products the order
# alone is slower: H200, session 24, bf16 inputs, both directions' fwd+bwd, _bwd_grads 0.263 -> 0.281 ms at (8, 4096, 3,
# 32, 64).
ORDERED_GRADS = os.environ.get("COMBA_ORDERED_GRADS", "auto")
if ORDERED_GRADS not in ("auto", "0", "1"):
    raise ValueError(f"COMBA_ORDERED_GRADS must be auto, 0 or 1, got {ORDERED_GRADS!r}")
# COMBA_BIDIR_ONE_LAUNCH (default 1): comba_bidirectional runs both scan directions in the same launches (the
# direction folded into the batch axis of every grid, REVERSE = BOTH) instead of two calls of the operator.
# On the H200 (session 5) correct (tests/ops -m gpu) and 1.25x-1.8x faster forward+backward at image shapes.
BIDIR_ONE_LAUNCH = os.environ.get("COMBA_BIDIR_ONE_LAUNCH", "1") == "1"
# COMBA_RECOMPUTE_BUFFERS=1: the autograd formula keeps only the operator's inputs and runs the prepare and
# state kernels again in the backward to rebuild M, W, U, h, instead of keeping those buffers from
# the forward (they are most of the operator's training memory). Exact (the same kernels, the same bits);
# its time cost not yet measured on a GPU: off.
RECOMPUTE_BUFFERS = os.environ.get("COMBA_RECOMPUTE_BUFFERS", "0") == "1"
# COMBA_STATE_HALVES (default 1): from padded head size 128, _bwd_state_halves (dh in two K halves).
STATE_HALVES_MIN_BK = 128 if os.environ.get("COMBA_STATE_HALVES", "1") == "1" else 1 << 30
# COMBA_DOUBLING_INVERSE (default 1): the 16x16 diagonal blocks of the blocked inverse by products,
# (I + N)^-1 = (I - N)(I + N^2)(I + N^4)(I + N^8), instead of 15 row-substitution steps. On by default since
# the whole GPU suite passed with it on the H200 (bf16 and fp32) and the forward got faster (docs/KERNELS.md);
# COMBA_DOUBLING_INVERSE=0 gives the row substitution back.
DOUBLING_INVERSE = os.environ.get("COMBA_DOUBLING_INVERSE", "1") == "1"
# COMBA_TAIL_TILE (default 1): a short last chunk (at most 32 of its 64 positions used, or 16 of 32; e.g. 196 = 3 * 64
# + 4 tokens at 224px) runs on a 16- or 32-row tile: the chunk-parallel kernels take it in a launch of its own,
# the state kernels in a last (first, backwards) step of their own; below padded head size 128 where the one-kernel
# gradient runs (the default), or with SPLIT_TAIL (_tail_rows).
TAIL_TILE = os.environ.get("COMBA_TAIL_TILE", "1") == "1"
# COMBA_TAIL_TILE_MAX_CHUNKS (default 32; session 27): the short last chunk takes its own tile only up to this many
# chunks. Its launches cost a fixed few microseconds each whatever the length (a grid of one chunk row, run one after
# the other: on the H200 at (2, 16385, 3, 64), by ncu, 4-10 us for each of seven kernels, about 0.04 ms a
# forward+backward for one token), while on a whole tile inside the other chunks' launches it costs one more program
# in NT - 1, about 1 / (NT - 1) of the kernels' time. Image lengths (197: 4 chunks, 1025: 17) keep the tile.
TAIL_TILE_MAX_CHUNKS = int(os.environ.get("COMBA_TAIL_TILE_MAX_CHUNKS", "32"))
# COMBA_SPLIT_TAIL (default 0; session 25): the short last chunk on its own tile where the split gradient kernels run
# too (from SPLIT_BWD_MIN_BK, which is 64 only with COMBA_SPLIT_BWD_MIN_BK=64; not where the K-halves state kernel
# runs, from 128). H200, session 26, with the split kernels at head size 64: both directions' forward+backward kernels
# 0.613 -> 0.564 ms at (128, 197, 3, 64), 0.977 -> 1.011 at (8, 4097); the one kernel (the default since) took 0.544.
# The split kernels take whole chunks only, so the last chunk goes through the one-kernel _bwd_grads on its small tile,
# TF32 products in the previous order (the form Triton 3.6 built right everywhere; bf16 forms of it faulted). At
# (128, 197, 3, 64) a quarter of every chunk-parallel kernel's programs are the 5-token last chunks on whole tiles.
SPLIT_TAIL = os.environ.get("COMBA_SPLIT_TAIL", "0") == "1"
# COMBA_HALF_MAPS (default 1 since session 26; 0: float32 maps): the transition walk's maps in bf16 for half inputs,
# half the bytes its walk reads a chunk (at head size 64 the walk reads [64, 64] A and R, 32 KB a chunk, twice or
# three times over). A then holds the correction K~^T W alone and the walk applies the decay e^c_last to the state
# exactly, from the chunk's gates in float32 (the float32 A = e^c_last I - K~^T W is rounded to TF32 whole in the
# walk's product, its decay included).
# H200, session 26 (bf16, both directions' forward+backward kernels): 0.977 -> 0.857 ms at (8, 4097, 3, 64),
# 0.995 -> 0.884 at (2, 16385, 3, 64) (_affine_scan 0.228 -> 0.133 and 0.244 -> 0.160, _chunk_affine 0.115 -> 0.091),
# 0.644 -> 0.624 at (8, 4096, 3, 32); errors against float64 unchanged (5.2e-3 largest; with one tiny constant gate
# 5.8e-3 both ways, gates 100x weaker 6.4e-3 both ways). The head-64 walk compiles to 168 registers (104-116 before).
HALF_MAPS = os.environ.get("COMBA_HALF_MAPS", "1") == "1"
# COMBA_ALIGN_BOTH (default 0; session 28, written and interpreter-tested, not yet timed): both directions in one
# launch on the same token blocks where every chunk is on a whole tile (no short last chunk's tile, beyond
# TAIL_TILE_MAX_CHUNKS or with TAIL_TILE off): the forward scan starts with NT * 64 - T masked positions (identity
# steps), so its chunk j covers the reverse scan's chunk NT - 1 - j (_scan_rows' REVERSE 3). The first kernel to use
# it: after the transition walk, _fwd_output_both writes the summed output of both directions from one program per
# token block (Q K^T and the loads shared, no zero fill, no atomics), and _bwd_grads_both (below head size 128) both
# directions' gradients, the second added in order to what the first stored (no zero fill, no atomics). On sm_90
# (compiled here, kernel_resources) _bwd_grads_both spills 804 bytes a thread at head 64 and 652 at head 32 against
# _bwd_grads' 404 and 280 (two inlined copies instead of its loop over the directions: 1036 at head 64), and
# _fwd_output_both takes 251 registers at head 64 with no spills. H200, session 29: correct (errors against float64
# as the default's) but slower, _bwd_grads_both 0.294 against _bwd_grads' 0.271 ms, both directions' kernels 0.850
# -> 0.877 ms at (2, 16385, 3, 64): off. docs/KERNELS.md has the flag-ordered alternative.
ALIGN_BOTH = os.environ.get("COMBA_ALIGN_BOTH", "0") == "1"
# COMBA_ATOMIC_SUM (default 1 since session 28; 0: a [2, ...] pair per result, summed afterwards): both scan
# directions in one launch, where the one _bwd_grads kernel writes every gradient (below padded head size 128,
# SPLIT_BWD_MIN_BK), add their gradients atomically into one zeroed [B, T, H, *] buffer per input (dq, dk, dv, dp in the
# inputs' dtype, dg and dbeta float32), and with the operator's own output sum (chunk_fwd_sum, SHARED_DO) the output
# launch (_fwd_state's storing walk or _fwd_output, OUT_ADD) adds both directions' outputs into one zeroed
# [B, T, H, V] o, instead of storing [2, B, T, H, *] and summing the pairs (five elementwise adds over bf16 tensors,
# 0.039 ms at (128, 197, 3, 64) and 0.050 at (2, 16385, 3, 64) on the H200). Each element gets exactly two
# contributions on top of zero, so the sum does not depend on their order (deterministic); it rounds as the adds do,
# the two parts each rounded to the dtype first. H200, session 26 (gradients only, six fill kernels): the zero fills
# (0.017-0.021 ms) and the atomics (+0.010-0.019 ms in _bwd_grads) took nearly all of the gain back. Session 28: the
# gradient buffers zeroed by two multi-tensor launches (_zero_all) and the output summed too: every CUDA kernel of a
# call 0.585 -> 0.561 ms at (128, 197, 3, 64), 0.896 -> 0.872 at (2, 16385, 3, 64); graphed forward+backward
# 0.592 -> 0.578 and 0.899-0.902 -> 0.889-0.892 ms. The models' mixer paths ask for both directions' gradients
# unsummed (sum_directions=False) and never take it.
ATOMIC_SUM = os.environ.get("COMBA_ATOMIC_SUM", "1") == "1"
# COMBA_ZERO_IN_KERNELS (default 1 since session 29; 0: a fill launch): ATOMIC_SUM's summed output zeroed by the
# prepare kernel, which runs before the output kernel adds into it (_zero_chunk: the forward direction's programs
# store zeros over their chunk's tokens), instead of a fill launch of its own. H200, every CUDA kernel of one call at
# (2, 16385, 3, 64): the fill (0.0047 ms) gone, the prepare unchanged (0.1237 -> 0.1240 ms). Measured and dropped in
# the same session: the six gradient buffers zeroed by _bwd_dv_local (0.063 -> 0.078-0.080 ms, after or before its
# work, against 0.005 ms for the two multi-tensor launches), and dg, dbeta added atomically in bf16 to save their
# casts (0.003 ms; _bwd_grads 0.269 -> 0.289 ms with scalar bf16 atomics).
ZERO_IN_KERNELS = os.environ.get("COMBA_ZERO_IN_KERNELS", "1") == "1"
# COMBA_COMPLETE_IN_GRADS (default 1 since session 30; 0: _bwd_complete): after the backward transition walk, the
# one-kernel gradient (_bwd_grads, below padded head size 128) completes dU itself (dU += Diag(e^(c_last - c)) K dh,
# one [BT, K] x [K, BV] product a V block) and adds the K dh and <h0, dh> terms of dc, instead of the _bwd_complete
# launch writing them for it. H200, both directions' forward+backward kernels: 0.827 -> 0.798 ms at (8, 4097, 3,
# 64), 0.858 -> 0.829 at (2, 16385, 3, 64) (_bwd_complete's 0.057 gone, _bwd_grads 0.273 -> 0.301; sm_90 spills
# 404 -> 300 bytes at head 64, 280 -> 132 at 32); errors against float64 there unchanged (largest 5.2e-3). Not on
# CUDA at V <= 16 (_complete_in_grads): there Triton 3.6 built the ordered bf16 form wrong on the H200 (session 30,
# docs/bench/2026-12-02-h200-s30/call2_probe_log.txt: dv, dp, dbeta off by 110% at (1, 4100, 1, 32, 16), an illegal
# memory access with two heads; right with ORDERED_GRADS=0, at V = 32, and in the interpreter), as it had the folded
# _bwd_dv_local at V = 16 (_fold).
COMPLETE_IN_GRADS = os.environ.get("COMBA_COMPLETE_IN_GRADS", "1") == "1"
# COMBA_SHARED_DO (default 1 since session 27; 0: dO stacked per direction): comba_bidirectional with merge "sum" or
# "mean" on the one-launch path returns the two scans' outputs summed by the operator itself (custom op
# chunk_fwd_sum), so its gradient is one [B, T, H, V] dO that both directions' backward kernels read (_do_rows),
# instead of autograd stacking the same dO twice into [2, B, T, H, V] (0.009 ms at (128, 197, 3, 64) and 0.011 at
# (2, 16385, 3, 64) on the H200, session 26, prof_all.py). The models' joint mixer node (mixer_joint) then also
# writes its sum's gradient once. H200, session 27: its tests pass on CUDA; every CUDA kernel of one call,
# 0.5919 -> 0.5845 ms at (128, 197, 3, 64) and 0.9499 -> 0.9423 at (2, 16385, 3, 64) (the copy gone).
SHARED_DO = os.environ.get("COMBA_SHARED_DO", "1") == "1"
# COMBA_CARRY_PREC ("tf32" by default since session 27; "tf32x3" before): the products of _state_carry, the
# walk over the groups' summaries (one [K, K] x [K, BV] product a group, in sequence; at (2, 16385, 3, 64) 17 steps,
# 0.052 ms for the forward's and the backward's carry on the H200, session 26). Three-pass TF32 keeps half inputs'
# TF32 from rounding the state once a group; "tf32" trades that for a third of the tensor-core work on the carry's
# critical path, for half inputs only (float32 inputs keep three-pass). H200, session 27 (bf16, both directions'
# forward+backward kernels): _state_carry 0.0499 -> 0.0343 ms at (8, 4097, 3, 64) and 0.0529 -> 0.0384 at
# (2, 16385, 3, 64); largest error against float64 5.24e-3 (unchanged), with one tiny constant gate 5.81e-3 (5.80e-3),
# at head size 32 5.54e-3.
CARRY_PREC = os.environ.get("COMBA_CARRY_PREC", "tf32")
if CARRY_PREC not in ("tf32x3", "tf32"):
    raise ValueError(f"COMBA_CARRY_PREC must be tf32x3 or tf32, got {CARRY_PREC!r}")
# COMBA_STATE_GROUP ("auto" by default; 0 off; N: N chunks a group wherever the walk has more than N chunks):
# the sequential state kernels walk groups of chunks in parallel. A chunk's step is affine in the state
# (h' = A h + b, A = e^(c_last) I - K~^T W [K, K]; backwards dh = A^T dh' + d), so each group is first walked
# from zero, with the identity walked alongside for A's product over the group (its summary); one short
# walk over the groups chains the summaries; then each group is walked again from its true start, storing
# what the one long walk stores. Sequential steps 2 G + NT / G instead of NT, with B*H * groups programs.
_STATE_GROUP_ENV = os.environ.get("COMBA_STATE_GROUP", "auto")
STATE_GROUP: str | int = "auto" if _STATE_GROUP_ENV == "auto" else int(_STATE_GROUP_ENV)
# COMBA_TRANSITION_WALK ("auto" by default; "1" wherever the state walks run below head size 128; "0" never): the
# transition walk, an alternative to the grouped walk for long sequences. A chunk's step of the state walk is
# affine, h_end = A h0 + R with A = e^c_last I - K~^T W [K, K] (the same A backwards, transposed); a chunk-parallel
# kernel (_chunk_affine) computes A and R for every chunk at once, so that the sequential walk (_affine_scan) is
# one [K, K] x [K, BV] product and an add a chunk, with no operand that waits for the state; a chunk-parallel
# kernel then completes u and the output (_fwd_output with COMPLETE_U) or dU and the dc terms (_bwd_complete).
# "auto": where the automatic grouped walk would run (STATE_GROUP "auto" and _state_group > 0), which then also
# keeps the half work buffers that the grouped walk cannot (HALF_BUFFERS). H200, session 19, bf16, both directions'
# forward+backward kernel ms at (8, 4096, 3, 32, 64): 0.806 (grouped walk) -> 0.702; graphed Comba-T training 1.37x ->
# 1.47x DeiT-T at 1024px, 2.64x -> 2.93x at 2048px; slower at short shapes (0.495 -> 0.577 ms at (128, 196, 3, 32,
# 64) forced), which keep the other walks.
TRANSITION_WALK = os.environ.get("COMBA_TRANSITION_WALK", "auto")
# COMBA_FUSED_OUTPUT (default 1): below head size 128 the forward state kernel's storing walk also writes the
# output o = Diag(e^c) Q h0 + lower(Q K^T * decay) u of each chunk, in place of _fwd_output (it holds h0 and u on
# chip already): the h and u round trips and a chunk-parallel launch pair go. H200, session 12, bf16, both
# directions: the forward's state and output kernels 0.101 -> 0.080 ms at (128, 196, 3, 32, 64), 0.181 -> 0.151
# at (128, 196, 6, 32, 64); 0.154 -> 0.160 at (32, 1025, 3, 32, 64). The same fusion backwards (dU's local part
# in _bwd_state instead of _bwd_dv_local) was slower at every measured shape (0.167 -> 0.242 ms at Comba-T's
# shape: the walk's programs are four times fewer than the chunk-parallel ones) and was not kept.
FUSED_OUTPUT = os.environ.get("COMBA_FUSED_OUTPUT", "1") == "1"
# COMBA_BF16_DOTS (default 1): for bf16 inputs up to head size 64, the prepare, forward state, backward state and
# local-dU kernels take their products on bf16 operands (float32 accumulation; PREC "bf16" in _dot) instead of TF32
# ones: half the operand registers and shared memory. H200, session 13, both directions' forward+backward at
# (128, 196, 6, 32, 64): those four kernels 0.660 -> 0.612 ms (0.202 -> 0.191, 0.150 -> 0.139, 0.195 -> 0.179,
# 0.113 -> 0.102), largest relative error against float64 3.5e-3 -> 3.6-3.8e-3 (each kernel alone). _bwd_grads keeps
# TF32: on bf16 operands Triton 3.6 built it (4 warps) into an illegal memory access on the H200, and at 8 warps it
# ran slower (0.650 against 0.437 ms).
BF16_DOTS = os.environ.get("COMBA_BF16_DOTS", "1") == "1"
# COMBA_HALF_BUFFERS (default "1" since session 16): the dtype of the work buffers the forward keeps for the
# backward (M, W, U, h). "1": all four in the inputs' dtype when that is bf16 or fp16, as fla keeps its own: half
# their memory (54 of Comba-T's 178 MB an image at 512px) and traffic. Only what is stored is rounded: every kernel
# converts them to float32 on load and computes as before (the backward's own buffers, dU, dh and the precomputed
# products, stay float32 unless HALF_BWD_BUFFERS). H200, session 16, bf16, both directions' forward+backward
# (kernel ms, float32 -> half): 0.893 -> 0.797 at (128, 197, 3, 64), 1.177 -> 1.064 at (32, 1025, 3, 64), 1.243 ->
# 1.119 at (8, 4097, 3, 64); the largest relative error against float64 3.9e-3 -> 4.3-4.5e-3. With fp16 inputs
# M (an inverse) and h (the state) are bounded by fp16's range (65504); bf16's is float32's. "0": float32 buffers
# (float32 inputs always get those).
# Not where the state walk is grouped (_state_group > 0: long sequences with few batch * head rows): there Triton
# 3.6 builds the 4-warp grouped _fwd_state on half buffers into a kernel that gives NaN or an illegal memory access
# on the H200 (session 16: compute-sanitizer's memcheck and initcheck found no bad access or unwritten read at
# (1, 4097, 2, 64), yet the output was NaN; one walk or 8 warps did not fail), so those keep float32 buffers.
# (The transition walk, which replaces the grouped walk by default since session 19, keeps half buffers.)
# Half buffers there on 8 warps (session 16's COMBA_GROUPED_HALF) were removed in session 17: correct on the H200
# with 1 pipeline stage but slower (both directions' fwd+bwd at (8, 4097, 3, 64) 1.442 against 1.255 ms), and with
# the head-64 walks' 2 stages the forward's output was off by 40%.
# A session-15 mode "w" (W alone in bf16) gave NaN at (32, 1025, 3, 64) on the H200 and was dropped. The
# shared-memory fallbacks remembered in _FITTED are keyed without the buffers' dtype (time only).
HALF_BUFFERS = os.environ.get("COMBA_HALF_BUFFERS", "1")
# COMBA_HALF_BWD_BUFFERS (default "1" since session 17; "0": float32): "1" keeps four of the backward's own
# buffers in the inputs' half dtype where the forward's work buffers are half (HALF_BUFFERS, not grouped): dh (the
# state gradient at each chunk end), PH (P h0) and the split gradient kernels' dAf, dAo (the C x C gradients passed
# from _bwd_grads_cc to _bwd_grads_k), as fla keeps its dh. dU, which three kernels accumulate into, stays float32.
# Every reader converts them to float32 on load; with fp16 inputs they are bounded by fp16's range, as M and h.
# At (128, 197, 3, 64), both directions: 4 of the 5 x 50 MB float32 passes of the backward halved. H200, session
# 17, bf16, both directions' fwd+bwd kernel ms (off -> on): 0.797 -> 0.731 at (128, 197, 3, 64), 1.064 -> 1.009 at
# (32, 1025, 3, 64); with BF16_GRADS 0.644 and 0.928; largest relative error against float64 4.6e-3 (5.2e-3 with
# BF16_GRADS; bound 2e-2); its GPU tests passed.
HALF_BWD_BUFFERS = os.environ.get("COMBA_HALF_BWD_BUFFERS", "1") == "1"
# COMBA_BF16_GRADS (default "1" since session 17; "0": TF32 products): "1" gives the split gradient kernels
# (_bwd_grads_cc, _bwd_grads_k) bf16 products where BF16_DOTS applies (up to head size 64). Since session 26 the split
# kernels run from head size 128, where BF16_DOTS does not apply, so this matters only with COMBA_SPLIT_BWD_MIN_BK=64
# (head size 64 on the split kernels, as in sessions 14-25). Compiled here for sm_90 at
# (128, 197, 3, 64), both directions: _bwd_grads_cc 404 -> 384 spilled registers, 40 -> 24 KiB shared memory;
# _bwd_grads_k 112 -> 32 KiB shared memory (with HALF_BWD_BUFFERS also no spills). The one-kernel _bwd_grads kept
# TF32 then (session 13: on bf16 operands Triton 3.6 built it into an illegal memory access); since session 24 it
# takes bf16 in the ordered form (BF16_GRADS_ONE).
# H200, session 17, bf16, both directions' fwd+bwd kernel ms: 0.797 -> 0.707 at (128, 197, 3, 64), 0.995 at
# (32, 1025, 3, 64), 1.166 at (8, 4097, 3, 64) (1.255 before); largest relative error 5.2e-3; GPU tests passed.
BF16_GRADS = os.environ.get("COMBA_BF16_GRADS", "1") == "1"
# COMBA_BF16_GRADS_ONE (default "1" since session 24; "0": TF32): in ORDERED_GRADS' order, the one-kernel gradient
# kernel (below head size 128: head sizes 32 and, since session 26, 64) takes bf16 products where BF16_DOTS applies, but
# TF32 for the two products of a transposed C x C tile with a K-wide one (dL^T P, dAqk^T Q, into dk). H200, session 24,
# both directions' fwd+bwd, _bwd_grads (all kernels) ms: 0.263 (0.674) -> 0.224 (0.636) at (8, 4096, 3, 32, 64), 0.217
# (0.496) -> 0.188 (0.469) at (128, 196, 3, 32, 64); largest relative error against float64 4.8e-3 -> 5.5e-3 (M^T dU on
# TF32 too: 0.225 ms). Tried and not kept, as Triton 3.6 builds them wrong on the H200: bf16 for every product (dk 7.5
# off in the ordered form; an illegal memory access in the previous order, as in sessions 13 and 18), or with dq, dk
# accumulated in the V loop (an illegal memory access); 8 warps are right but slower (0.35-0.42 ms). docs/KERNELS.md,
# "Session 24".
BF16_GRADS_ONE = os.environ.get("COMBA_BF16_GRADS_ONE", "1") == "1"


def buffer_dtypes(dtype: torch.dtype, grouped: bool = False) -> tuple[torch.dtype, torch.dtype, torch.dtype,
                                                                      torch.dtype]:
    """The dtypes of the work buffers (M, W, U, h) for inputs of this dtype (HALF_BUFFERS); float32 where the
    state walk is grouped."""
    if HALF_BUFFERS not in ("0", "1"):
        raise ValueError(f"COMBA_HALF_BUFFERS must be 0 or 1, got {HALF_BUFFERS!r}")
    if HALF_BUFFERS == "1" and dtype in (torch.float16, torch.bfloat16) and not grouped:
        return dtype, dtype, dtype, dtype
    f32 = torch.float32
    return f32, f32, f32, f32


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _atomic_sum(dtype: torch.dtype) -> bool:
    """ATOMIC_SUM for these inputs: Triton's interpreter has no bfloat16 atomics (numpy has no bfloat16), so there
    bf16 results keep the pair and its sum."""
    return ATOMIC_SUM and not (dtype == torch.bfloat16 and _interpreting())


@triton.jit
def _dot(a, b, PREC: tl.constexpr):
    """a @ b in float32: on TF32 tensor cores at PREC ("tf32", "tf32x3"), or with both operands rounded to bf16
    (PREC "bf16": half the operand registers and shared memory)."""
    if PREC == "bf16":
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _scan_rows(i_t, j, i_b, T, H, i_h, BT: tl.constexpr, BC: tl.constexpr, REVERSE: tl.constexpr,
               OUT: tl.constexpr):
    """Rows and mask of the BC-token sub-block j of chunk i_t (scan order). REVERSE 0: forward scan, 1: reverse
    scan, 2: both directions in one launch, the direction folded into the batch index (i_b = direction * B +
    batch, axis 1 of the grid covering 2 * B * H programs): input rows then use the batch alone, and output
    rows (OUT: o, dO and the gradients, [2, B, T, H, ...] buffers) the folded index. 3 (ALIGN_BOTH): as 2, with
    the forward scan's positions shifted by the reverse scan's padding, pad = NT * BT - T (its first pad positions
    masked: identity steps), so that its chunk j covers the tokens of the reverse scan's chunk NT - 1 - j."""
    s = i_t * BT + j * BC + tl.arange(0, BC)
    m = s < T
    if REVERSE >= 2:
        nb = tl.num_programs(1) // (2 * H)
        if REVERSE == 3:
            pad = tl.cdiv(T, BT) * BT - T
            m = tl.where(i_b >= nb, m, (s >= pad) & (s < T + pad))
            t = tl.where(i_b >= nb, T - 1 - s, s - pad)
        else:
            t = tl.where(i_b >= nb, T - 1 - s, s)
        if not OUT:
            i_b = i_b % nb
    elif REVERSE == 1:
        t = T - 1 - s
    else:
        t = s
    t = tl.where(m, t, 0)
    return (i_b * T + t) * H + i_h, m


@triton.jit
def _sub_rows(i_t, j, i_b, T, H, i_h, BT: tl.constexpr, BC: tl.constexpr, REVERSE: tl.constexpr):
    """Input rows and mask of the BC-token sub-block j of chunk i_t (scan order)."""
    return _scan_rows(i_t, j, i_b, T, H, i_h, BT, BC, REVERSE, False)


@triton.jit
def _rows(i_t, i_b, T, H, i_h, BT: tl.constexpr, REVERSE: tl.constexpr, CS: tl.constexpr):
    """Row index into a [B, T, H, ...] input for each of the first BT scan positions of chunk i_t (chunks are
    CS positions apart; BT < CS for a short last chunk's tile), and its mask."""
    return _scan_rows(i_t, 0, i_b, T, H, i_h, CS, BT, REVERSE, False)


@triton.jit
def _out_rows(i_t, i_b, T, H, i_h, BT: tl.constexpr, REVERSE: tl.constexpr, CS: tl.constexpr):
    """Row index into the output / dO / gradient tensors (the same as _rows unless REVERSE == 2)."""
    return _scan_rows(i_t, 0, i_b, T, H, i_h, CS, BT, REVERSE, True)[0]


@triton.jit
def _do_rows(i_t, i_b, T, H, i_h, BT: tl.constexpr, REVERSE: tl.constexpr, CS: tl.constexpr, DO_ONE: tl.constexpr):
    """Row index into dO: the output rows (one dO per direction, [2, B, T, H, V] when both run in one launch) or,
    with DO_ONE (SHARED_DO: the two outputs summed, so both directions' dO is the same), the input rows into one
    [B, T, H, V] dO."""
    return _scan_rows(i_t, 0, i_b, T, H, i_h, CS, BT, REVERSE, not DO_ONE)[0]


@triton.jit
def _decays(g_ptr, rows, m_t, BT: tl.constexpr, IPLR: tl.constexpr):
    b_g = tl.load(g_ptr + rows, mask=m_t, other=0.).to(tl.float32)
    b_c = tl.cumsum(b_g, 0)
    if IPLR:
        b_cf = b_c
    else:
        b_cf = b_c - b_g
    b_clast = tl.sum(b_g, 0)
    return b_g, b_c, b_cf, b_clast


@triton.jit
def _load_rows(ptr, rows, m_t, D, BD: tl.constexpr, off):
    """[BT, BD] float32 tile of columns off..off+BD of a [B, T, H, D] tensor at the given rows (0 outside)."""
    o = off + tl.arange(0, BD)
    return tl.load(ptr + rows[:, None] * D + o[None, :], mask=m_t[:, None] & (o < D)[None, :], other=0.).to(tl.float32)


@triton.jit
def _kv_tile(i_v, K, V, BK: tl.constexpr, BV: tl.constexpr):
    """Offsets and mask of the [BK, BV] state tile of V block i_v inside a [K, V] state."""
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    return o_k[:, None] * V + o_v[None, :], (o_k < K)[:, None] & (o_v < V)[None, :]


@triton.jit
def _sub_meta(g, beta, i_t, j, i_b, T, H, i_h, c0, BT: tl.constexpr, BC: tl.constexpr, REVERSE: tl.constexpr,
              IPLR: tl.constexpr):
    """Sub-block j's rows, mask, beta and decays continuing from c0 (c, and cf for the feedback keys)."""
    rows, m = _sub_rows(i_t, j, i_b, T, H, i_h, BT, BC, REVERSE)
    b_g = tl.load(g + rows, mask=m, other=0.).to(tl.float32)
    b_c = c0 + tl.cumsum(b_g, 0)
    if IPLR:
        b_cf = b_c
    else:
        b_cf = b_c - b_g
    return rows, m, tl.load(beta + rows, mask=m, other=0.).to(tl.float32), b_c, b_cf


@triton.jit
def _sub_block(g, beta, k, p, i_t, j, i_b, T, H, i_h, K, c0,
               BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, REVERSE: tl.constexpr, IPLR: tl.constexpr):
    """Loads sub-block j: rows, mask, beta, keys, feedback keys, and its decays continuing from c0."""
    rows, m, b_beta, b_c, b_cf = _sub_meta(g, beta, i_t, j, i_b, T, H, i_h, c0, BT, BC, REVERSE, IPLR)
    b_k = _load_rows(k, rows, m, K, BK, 0)
    b_p = _load_rows(p, rows, m, K, BK, 0)
    if IPLR:
        b_p = b_p * 2.
    return rows, m, b_beta, b_k, b_p, b_c, b_cf


@triton.jit
def _n_block(b_pi, b_betai, b_cfi, b_kj, b_cj, DIAG: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr):
    """Block (i, j) of N = Diag(beta) L, L = P K^T * exp(cf_i - c_j), strictly lower on the diagonal."""
    return _n_from_raw(_dot(b_pi, tl.trans(b_kj), PREC), b_betai, b_cfi, b_cj, DIAG, BC)


@triton.jit
def _n_from_raw(b_A, b_betai, b_cfi, b_cj, DIAG: tl.constexpr, BC: tl.constexpr):
    """_n_block from the raw product block P_i K_j^T."""
    o = tl.arange(0, BC)
    if DIAG:
        m = o[:, None] > o[None, :]
        b_A = tl.where(m, b_A * tl.exp(tl.where(m, b_cfi[:, None] - b_cj[None, :], 0.)), 0.)
    else:
        b_A = b_A * tl.exp(b_cfi[:, None] - b_cj[None, :])
    return b_A * b_betai[:, None]


@triton.jit
def _inv_unit_lower(b_N, BC: tl.constexpr):
    """(I + N)^-1 for strictly lower N [BC, BC], row substitution in registers."""
    o = tl.arange(0, BC)
    b_X = -b_N
    for i in range(1, BC):
        m_row = o == i
        b_row = tl.sum(tl.where(m_row[:, None], b_X, 0.), 0)
        b_row = b_row + tl.sum(b_row[:, None] * b_X, 0) * (o < i)
        b_X = tl.where(m_row[:, None], b_row[None, :], b_X)
    return b_X + tl.where(o[:, None] == o[None, :], 1., 0.)


@triton.jit
def _off_diagonal_inverse(X00, X11, X22, X33, N10, N20, N21, N30, N31, N32, PREC: tl.constexpr):
    """Off-diagonal 16x16 blocks of (I + N)^-1 from its diagonal blocks' inverses X_ii and the blocks N_ij:
    X_ij = -X_ii sum_{k=j}^{i-1} N_ik X_kj."""
    X10 = -_dot(X11, _dot(N10, X00, PREC), PREC)
    X21 = -_dot(X22, _dot(N21, X11, PREC), PREC)
    X20 = -_dot(X22, _dot(N20, X00, PREC) + _dot(N21, X10, PREC), PREC)
    X32 = -_dot(X33, _dot(N32, X22, PREC), PREC)
    X31 = -_dot(X33, _dot(N31, X11, PREC) + _dot(N32, X21, PREC), PREC)
    X30 = -_dot(X33, _dot(N30, X00, PREC) + _dot(N31, X10, PREC) + _dot(N32, X20, PREC), PREC)
    return X10, X20, X21, X30, X31, X32


@triton.jit
def _inv_unit_lower_doubling(b_N, BC: tl.constexpr):
    """(I + N)^-1 for strictly lower N [16, 16] as (I - N)(I + N^2)(I + N^4)(I + N^8) (N^16 = 0): six
    16x16 products on the tensor cores (three-pass TF32, float32-level accuracy) instead of 15 dependent
    row-substitution steps."""
    o = tl.arange(0, BC)
    eye = tl.where(o[:, None] == o[None, :], 1., 0.)
    b_X = eye - b_N
    b_P = tl.dot(b_N, b_N, input_precision="tf32x3")
    b_X = tl.dot(b_X, eye + b_P, input_precision="tf32x3")
    b_P = tl.dot(b_P, b_P, input_precision="tf32x3")
    b_X = tl.dot(b_X, eye + b_P, input_precision="tf32x3")
    b_P = tl.dot(b_P, b_P, input_precision="tf32x3")
    return tl.dot(b_X, eye + b_P, input_precision="tf32x3")


@triton.jit
def _inv_diag(b_N, BC: tl.constexpr, DOUBLING: tl.constexpr):
    if DOUBLING:
        return _inv_unit_lower_doubling(b_N, BC)
    return _inv_unit_lower(b_N, BC)


@triton.jit
def _inverse_from_n(N00, N11, N22, N33, N10, N20, N21, N30, N31, N32, BC: tl.constexpr, PREC: tl.constexpr,
                    DOUBLING: tl.constexpr):
    """The ten blocks X_ij of (I + N)^-1 from the ten N blocks, all formed first: the diagonal inverses, then
    _off_diagonal_inverse."""
    X00 = _inv_diag(N00, BC, DOUBLING)
    X11 = _inv_diag(N11, BC, DOUBLING)
    X22 = _inv_diag(N22, BC, DOUBLING)
    X33 = _inv_diag(N33, BC, DOUBLING)
    X10, X20, X21, X30, X31, X32 = _off_diagonal_inverse(X00, X11, X22, X33, N10, N20, N21, N30, N31, N32, PREC)
    return X00, X10, X11, X20, X21, X22, X30, X31, X32, X33


@triton.jit
def _store_m_block(M, base_c, b_X, i: tl.constexpr, j: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
    o = tl.arange(0, BC)
    tl.store(M + (base_c + i * BC + o)[:, None] * BT + j * BC + o[None, :], b_X.to(M.dtype.element_ty))


@triton.jit
def _chunk_inverse(g, beta, k, p, i_t, i_b, T, H, i_h, K, BT: tl.constexpr, BK: tl.constexpr,
                   REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, DOUBLING: tl.constexpr):
    """Chunk i_t as four 16-token sub-blocks (rows, mask, beta, k, p, c, cf of each) and the ten nonzero
    16x16 blocks X_ij of M = (I + Diag(beta) L)^-1: diagonal blocks by row substitution (15 steps on 16x16
    tiles instead of 63 on 64x64), the rest by 16x16 products."""
    tl.static_assert(BT == 64, "four 16-token sub-blocks: 64-position chunks")
    BC: tl.constexpr = 16
    o = tl.arange(0, BC)
    r0, m0, be0, k0, p0, c0, cf0 = _sub_block(g, beta, k, p, i_t, 0, i_b, T, H, i_h, K, 0.,
                                              BT, BC, BK, REVERSE, IPLR)
    r1, m1, be1, k1, p1, c1, cf1 = _sub_block(g, beta, k, p, i_t, 1, i_b, T, H, i_h, K,
                                              tl.sum(tl.where(o == BC - 1, c0, 0.), 0), BT, BC, BK, REVERSE, IPLR)
    r2, m2, be2, k2, p2, c2, cf2 = _sub_block(g, beta, k, p, i_t, 2, i_b, T, H, i_h, K,
                                              tl.sum(tl.where(o == BC - 1, c1, 0.), 0), BT, BC, BK, REVERSE, IPLR)
    r3, m3, be3, k3, p3, c3, cf3 = _sub_block(g, beta, k, p, i_t, 3, i_b, T, H, i_h, K,
                                              tl.sum(tl.where(o == BC - 1, c2, 0.), 0), BT, BC, BK, REVERSE, IPLR)
    # all ten N blocks formed before the diagonal inverses (session 31: at (8, 2048, 16, 128) the prepare's sm_90
    # spills 1352 -> 740 bytes a thread and the forward 0.798 -> 0.740 ms against inverting each diagonal block as
    # soon as it was formed; the image shapes unchanged)
    X00, X10, X11, X20, X21, X22, X30, X31, X32, X33 = _inverse_from_n(
        _n_block(p0, be0, cf0, k0, c0, True, BC, PREC), _n_block(p1, be1, cf1, k1, c1, True, BC, PREC),
        _n_block(p2, be2, cf2, k2, c2, True, BC, PREC), _n_block(p3, be3, cf3, k3, c3, True, BC, PREC),
        _n_block(p1, be1, cf1, k0, c0, False, BC, PREC), _n_block(p2, be2, cf2, k0, c0, False, BC, PREC),
        _n_block(p2, be2, cf2, k1, c1, False, BC, PREC), _n_block(p3, be3, cf3, k0, c0, False, BC, PREC),
        _n_block(p3, be3, cf3, k1, c1, False, BC, PREC), _n_block(p3, be3, cf3, k2, c2, False, BC, PREC),
        BC, PREC, DOUBLING)
    return (r0, m0, be0, k0, p0, c0, cf0, r1, m1, be1, k1, p1, c1, cf1, r2, m2, be2, k2, p2, c2, cf2,
            r3, m3, be3, k3, p3, c3, cf3, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33)


@triton.jit
def _lower_product(X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, y0, y1, y2, y3, PREC: tl.constexpr):
    """The four 16-row blocks of M Y, M block lower triangular in 16-row blocks X_ij, Y in 16-row blocks y_j."""
    return (_dot(X00, y0, PREC),
            _dot(X10, y0, PREC) + _dot(X11, y1, PREC),
            _dot(X20, y0, PREC) + _dot(X21, y1, PREC) + _dot(X22, y2, PREC),
            _dot(X30, y0, PREC) + _dot(X31, y1, PREC) + _dot(X32, y2, PREC) + _dot(X33, y3, PREC))


@triton.jit
def _store_lower_product(ptr, D, mask, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, y0, y1, y2, y3,
                         BC: tl.constexpr, PREC: tl.constexpr):
    """Stores M Y (_lower_product) at ptr (the first block's [BC, *] pointers, rows D apart) and returns its
    blocks (float32, before rounding to ptr's dtype)."""
    u0, u1, u2, u3 = _lower_product(X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, y0, y1, y2, y3, PREC)
    dt = ptr.dtype.element_ty
    tl.store(ptr, u0.to(dt), mask=mask)
    tl.store(ptr + BC * D, u1.to(dt), mask=mask)
    tl.store(ptr + 2 * BC * D, u2.to(dt), mask=mask)
    tl.store(ptr + 3 * BC * D, u3.to(dt), mask=mask)
    return u0, u1, u2, u3


@triton.jit
def _store_transition(A, b_kw, b_clast, i_bh, i_t, NT, o_k, m_k, K):
    """Stores chunk i_t's transition matrix of the transition walk, A = e^c_last I - b_kw (b_kw = K~^T W), in
    A [.., NT, K, K] (float32); in a half A (HALF_MAPS) b_kw alone, the walk applying e^c_last itself."""
    p = A + (i_bh * NT + i_t) * K * K + o_k[:, None] * K + o_k[None, :]
    if A.dtype.element_ty == tl.float32:
        b_a = tl.where(o_k[:, None] == o_k[None, :], tl.exp(b_clast), 0.) - b_kw
        tl.store(p, b_a, mask=m_k[:, None] & m_k[None, :])
    else:
        tl.store(p, b_kw.to(A.dtype.element_ty), mask=m_k[:, None] & m_k[None, :])


@triton.jit
def _store_offset(R, b_r, i_bh, i_t, NT, o_k, m_k, o_v, m_v, K, V):
    """Stores V block o_v of chunk i_t's constant term of the transition walk in R [.., NT, K, V] (float32, or half
    with HALF_MAPS)."""
    tl.store(R + (i_bh * NT + i_t) * K * V + o_k[:, None] * V + o_v[None, :], b_r.to(R.dtype.element_ty),
             mask=m_k[:, None] & m_v[None, :])


@triton.jit
def _blocks_t_product(x0, x1, x2, x3, y0, y1, y2, y3, PREC: tl.constexpr):
    """X^T Y for X and Y given by their four 16-row blocks."""
    return (_dot(tl.trans(x0), y0, PREC) + _dot(tl.trans(x1), y1, PREC) + _dot(tl.trans(x2), y2, PREC)
            + _dot(tl.trans(x3), y3, PREC))


@triton.jit
def _zero_chunk(ptr, i_t, i_bh, T, H, N: tl.constexpr, BT: tl.constexpr, BN: tl.constexpr, CS: tl.constexpr):
    """ATOMIC_SUM's zero fill of the summed output (ZERO_IN_KERNELS), done by the prepare kernel, which runs before the
    output kernel adds into it: zeroes the tokens of chunk i_t (BT rows from position i_t * CS, in token order) of a
    [B, T, H, N] buffer shaped like the inputs, in BN-wide blocks. Only the first half of a both-directions grid
    (B * H of its 2 * B * H programs) stores, so each token is zeroed once, whichever direction's order the kernel
    walks."""
    s = i_t * CS + tl.arange(0, BT)
    m = (s < T) & (i_bh < tl.num_programs(1) // 2)
    rows = ((i_bh // H) * T + tl.where(m, s, 0)) * H + i_bh % H
    for i_n in tl.static_range(0, (N + BN - 1) // BN):
        o_n = i_n * BN + tl.arange(0, BN)
        tl.store(ptr + rows[:, None] * N + o_n[None, :], tl.zeros([BT, BN], dtype=ptr.dtype.element_ty),
                 mask=m[:, None] & (o_n < N)[None, :])


@triton.jit
def _blocked_start(T, H, K, BT: tl.constexpr, BK: tl.constexpr, CS: tl.constexpr, I0, BC: tl.constexpr):
    """A blocked prepare's program (whole chunks only: a short last one goes to _fwd_prepare): its chunk, (batch *
    head) row, batch, head, the chunk count, the 16-row sub-block offsets and the K offsets and mask."""
    tl.static_assert(BT == CS, "the blocked prepare takes whole chunks (a short one goes to _fwd_prepare)")
    i_t, i_bh = tl.program_id(0) + I0, tl.program_id(1)
    o_k = tl.arange(0, BK)
    return i_t, i_bh, i_bh // H, i_bh % H, tl.cdiv(T, CS), tl.arange(0, BC), o_k, o_k < K


@triton.jit
def _store_inverse(M, base_c, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, BT: tl.constexpr, BC: tl.constexpr):
    """M's sixteen 16x16 blocks (zeros above the block diagonal) for chunk slot base_c."""
    zero = tl.zeros([BC, BC], dtype=tl.float32)
    _store_m_block(M, base_c, X00, 0, 0, BT, BC)
    _store_m_block(M, base_c, zero, 0, 1, BT, BC)
    _store_m_block(M, base_c, zero, 0, 2, BT, BC)
    _store_m_block(M, base_c, zero, 0, 3, BT, BC)
    _store_m_block(M, base_c, X10, 1, 0, BT, BC)
    _store_m_block(M, base_c, X11, 1, 1, BT, BC)
    _store_m_block(M, base_c, zero, 1, 2, BT, BC)
    _store_m_block(M, base_c, zero, 1, 3, BT, BC)
    _store_m_block(M, base_c, X20, 2, 0, BT, BC)
    _store_m_block(M, base_c, X21, 2, 1, BT, BC)
    _store_m_block(M, base_c, X22, 2, 2, BT, BC)
    _store_m_block(M, base_c, zero, 2, 3, BT, BC)
    _store_m_block(M, base_c, X30, 3, 0, BT, BC)
    _store_m_block(M, base_c, X31, 3, 1, BT, BC)
    _store_m_block(M, base_c, X32, 3, 2, BT, BC)
    _store_m_block(M, base_c, X33, 3, 3, BT, BC)


@triton.jit
def _fwd_prepare_blocked(
    k, p, v, g, beta, M, W, U, A, R,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, DOUBLING: tl.constexpr,
    AFFINE: tl.constexpr = False, ZO=None, ZERO_O: tl.constexpr = False,
):
    """Same outputs as _fwd_prepare, with the 64x64 inverse done blockwise (_chunk_inverse). Whole chunks only.
    AFFINE (the transition walk with TRANSITION_FOLD): also the chunk's affine map as _chunk_affine's forward writes
    it, A = e^c_last I - K~^T W (K~^T W alone in half maps) and R = K~^T U0, from the W and U0 blocks it holds, so
    that kernel is not launched."""
    tl.static_assert(BT == 64, "_fwd_prepare_blocked is written for 64-position chunks (32: _fwd_prepare_blocked2)")
    BC: tl.constexpr = 16
    i_t, i_bh, i_b, i_h, NT, o, o_k, m_k = _blocked_start(T, H, K, BT, BK, CS, I0, BC)
    if ZERO_O:  # the summed output's zero fill (ATOMIC_SUM), before the output kernel adds into it
        _zero_chunk(ZO, i_t, i_bh, T, H, V, BT, BV, CS)
    (r0, m0, be0, k0, p0, c0, cf0, r1, m1, be1, k1, p1, c1, cf1, r2, m2, be2, k2, p2, c2, cf2,
     r3, m3, be3, k3, p3, c3, cf3, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33) = _chunk_inverse(
        g, beta, k, p, i_t, i_b, T, H, i_h, K, BT, BK, REVERSE, IPLR, PREC, DOUBLING)
    base_c = (i_bh * NT + i_t) * CS
    _store_inverse(M, base_c, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, BT, BC)
    # W = M Diag(beta e^cf) P, block row by block row
    q0 = p0 * (be0 * tl.exp(cf0))[:, None]
    q1 = p1 * (be1 * tl.exp(cf1))[:, None]
    q2 = p2 * (be2 * tl.exp(cf2))[:, None]
    q3 = p3 * (be3 * tl.exp(cf3))[:, None]
    w0, w1, w2, w3 = _store_lower_product(W + (base_c + o)[:, None] * K + o_k[None, :], K, m_k[None, :],
                                          X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, q0, q1, q2, q3, BC, PREC)
    if AFFINE:  # K~ by 16-row blocks (c is cumulative over the chunk: c_last is c3's last entry)
        b_cl = tl.sum(tl.where(o == BC - 1, c3, 0.), 0)
        kd0 = k0 * tl.exp(b_cl - c0)[:, None]
        kd1 = k1 * tl.exp(b_cl - c1)[:, None]
        kd2 = k2 * tl.exp(b_cl - c2)[:, None]
        kd3 = k3 * tl.exp(b_cl - c3)[:, None]
        _store_transition(A, _blocks_t_product(kd0, kd1, kd2, kd3, w0, w1, w2, w3, PREC), b_cl, i_bh, i_t, NT, o_k,
                          m_k, K)
    # U0 = M Diag(beta) V
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        mv = (o_v < V)[None, :]
        v0 = _load_rows(v, r0, m0, V, BV, i_v * BV) * be0[:, None]
        v1 = _load_rows(v, r1, m1, V, BV, i_v * BV) * be1[:, None]
        v2 = _load_rows(v, r2, m2, V, BV, i_v * BV) * be2[:, None]
        v3 = _load_rows(v, r3, m3, V, BV, i_v * BV) * be3[:, None]
        u0, u1, u2, u3 = _store_lower_product(U + (base_c + o)[:, None] * V + o_v[None, :], V, mv, X00, X10, X11,
                                              X20, X21, X22, X30, X31, X32, X33, v0, v1, v2, v3, BC, PREC)
        if AFFINE:
            _store_offset(R, _blocks_t_product(kd0, kd1, kd2, kd3, u0, u1, u2, u3, PREC), i_bh, i_t, NT, o_k, m_k, o_v,
                          o_v < V, K, V)


@triton.jit
def _fwd_prepare_blocked2(
    k, p, v, g, beta, M, W, U,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, DOUBLING: tl.constexpr,
    ZO=None, ZERO_O: tl.constexpr = False,
):
    """_fwd_prepare_blocked for 32-position chunks (COMBA_CHUNK_SIZE=32): two 16-token sub-blocks, the inverse's
    diagonal blocks X00, X11 as there and X10 = -X11 N10 X00. Whole chunks only."""
    tl.static_assert(BT == 32, "_fwd_prepare_blocked2 is written for 32-position chunks")
    BC: tl.constexpr = 16
    i_t, i_bh, i_b, i_h, NT, o, o_k, m_k = _blocked_start(T, H, K, BT, BK, CS, I0, BC)
    if ZERO_O:
        _zero_chunk(ZO, i_t, i_bh, T, H, V, BT, BV, CS)
    r0, m0, be0, k0, p0, c0, cf0 = _sub_block(g, beta, k, p, i_t, 0, i_b, T, H, i_h, K, 0., BT, BC, BK, REVERSE, IPLR)
    r1, m1, be1, k1, p1, c1, cf1 = _sub_block(g, beta, k, p, i_t, 1, i_b, T, H, i_h, K,
                                              tl.sum(tl.where(o == BC - 1, c0, 0.), 0), BT, BC, BK, REVERSE, IPLR)
    X00 = _inv_diag(_n_block(p0, be0, cf0, k0, c0, True, BC, PREC), BC, DOUBLING)
    X11 = _inv_diag(_n_block(p1, be1, cf1, k1, c1, True, BC, PREC), BC, DOUBLING)
    X10 = -_dot(X11, _dot(_n_block(p1, be1, cf1, k0, c0, False, BC, PREC), X00, PREC), PREC)
    base_c = (i_bh * NT + i_t) * CS
    _store_m_block(M, base_c, X00, 0, 0, BT, BC)
    _store_m_block(M, base_c, tl.zeros([BC, BC], dtype=tl.float32), 0, 1, BT, BC)
    _store_m_block(M, base_c, X10, 1, 0, BT, BC)
    _store_m_block(M, base_c, X11, 1, 1, BT, BC)
    # W = M Diag(beta e^cf) P and U0 = M Diag(beta) V, by 16-row blocks
    q0 = p0 * (be0 * tl.exp(cf0))[:, None]
    q1 = p1 * (be1 * tl.exp(cf1))[:, None]
    p_w = W + (base_c + o)[:, None] * K + o_k[None, :]
    tl.store(p_w, _dot(X00, q0, PREC).to(W.dtype.element_ty), mask=m_k[None, :])
    tl.store(p_w + BC * K, (_dot(X10, q0, PREC) + _dot(X11, q1, PREC)).to(W.dtype.element_ty), mask=m_k[None, :])
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        mv = (o_v < V)[None, :]
        v0 = _load_rows(v, r0, m0, V, BV, i_v * BV) * be0[:, None]
        v1 = _load_rows(v, r1, m1, V, BV, i_v * BV) * be1[:, None]
        p_u = U + (base_c + o)[:, None] * V + o_v[None, :]
        tl.store(p_u, _dot(X00, v0, PREC).to(U.dtype.element_ty), mask=mv)
        tl.store(p_u + BC * V, (_dot(X10, v0, PREC) + _dot(X11, v1, PREC)).to(U.dtype.element_ty), mask=mv)


@triton.jit
def _qk_block(b_qi, b_ci, b_kj, b_cj, DIAG: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr):
    """Block (i, j) of lower(Q K^T * exp(c_i - c_j)) (inclusive on the diagonal)."""
    o = tl.arange(0, BC)
    b_A = _dot(b_qi, tl.trans(b_kj), PREC)
    if DIAG:
        m = o[:, None] >= o[None, :]
        return tl.where(m, b_A * tl.exp(tl.where(m, b_ci[:, None] - b_cj[None, :], 0.)), 0.)
    return b_A * tl.exp(b_ci[:, None] - b_cj[None, :])


@triton.jit
def _fused_rhs(v, b_h, r, m, be, p, cf, V, BV: tl.constexpr, PREC: tl.constexpr):
    """Diag(beta) (V - Diag(e^cf) P h) for one 16-token sub-block: u of the sub-blocks is M times these."""
    b_v = _load_rows(v, r, m, V, BV, 0)
    return be[:, None] * (b_v - tl.exp(cf)[:, None] * _dot(p, b_h, PREC))


@triton.jit
def _fused_out(q, o, b_h, r, m, ci, scale, acc, K, V, BK: tl.constexpr, BV: tl.constexpr,
               ACCUM: tl.constexpr, HALF: tl.constexpr, PREC: tl.constexpr):
    """Stores (or, for the second direction, adds) a sub-block's output e^c Q h + acc."""
    b_q = _load_rows(q, r, m, K, BK, 0) * scale
    b_o = tl.exp(ci)[:, None] * _dot(b_q, b_h, PREC) + acc
    o_v = tl.arange(0, BV)
    ptr = o + r[:, None] * V + o_v[None, :]
    mask = m[:, None] & (o_v < V)[None, :]
    if ACCUM:
        b_o += tl.load(ptr, mask=mask, other=0.).to(tl.float32)
    if HALF:
        b_o = b_o * 0.5
    tl.store(ptr, b_o.to(o.dtype.element_ty), mask=mask)


@triton.jit
def _fused_scan(q, k, v, p, g, beta, o, scale, i_b, i_h, T, H, K, V,
                BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, REVERSE: tl.constexpr,
                IPLR: tl.constexpr, PREC: tl.constexpr, ACCUM: tl.constexpr, HALF: tl.constexpr,
                DOUBLING: tl.constexpr):
    """One scan direction over all chunks of one (batch, head), the whole [K, V] state on chip: per chunk the
    blocked inverse, u = M Diag(beta) (V - Diag(e^cf) P h), the outputs, then the state update."""
    BC: tl.constexpr = 16
    NT = tl.cdiv(T, BT)
    o_c = tl.arange(0, BC)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(0, NT):
        (r0, m0, be0, k0, p0, c0, cf0, r1, m1, be1, k1, p1, c1, cf1, r2, m2, be2, k2, p2, c2, cf2,
         r3, m3, be3, k3, p3, c3, cf3, X00, X10, X11, X20, X21, X22, X30, X31, X32, X33) = _chunk_inverse(
            g, beta, k, p, i_t, i_b, T, H, i_h, K, BT, BK, REVERSE, IPLR, PREC, DOUBLING)
        y0 = _fused_rhs(v, b_h, r0, m0, be0, p0, cf0, V, BV, PREC)
        y1 = _fused_rhs(v, b_h, r1, m1, be1, p1, cf1, V, BV, PREC)
        y2 = _fused_rhs(v, b_h, r2, m2, be2, p2, cf2, V, BV, PREC)
        y3 = _fused_rhs(v, b_h, r3, m3, be3, p3, cf3, V, BV, PREC)
        u0, u1, u2, u3 = _lower_product(X00, X10, X11, X20, X21, X22, X30, X31, X32, X33, y0, y1, y2, y3, PREC)
        # outputs: o_i = e^c_i Q_i h + sum_{j <= i} lower(Q_i K_j^T * exp(c_i - c_j)) u_j
        q0 = _load_rows(q, r0, m0, K, BK, 0) * scale
        q1 = _load_rows(q, r1, m1, K, BK, 0) * scale
        q2 = _load_rows(q, r2, m2, K, BK, 0) * scale
        q3 = _load_rows(q, r3, m3, K, BK, 0) * scale
        a0 = _dot(_qk_block(q0, c0, k0, c0, True, BC, PREC), u0, PREC)
        a1 = (_dot(_qk_block(q1, c1, k0, c0, False, BC, PREC), u0, PREC)
              + _dot(_qk_block(q1, c1, k1, c1, True, BC, PREC), u1, PREC))
        a2 = (_dot(_qk_block(q2, c2, k0, c0, False, BC, PREC), u0, PREC)
              + _dot(_qk_block(q2, c2, k1, c1, False, BC, PREC), u1, PREC)
              + _dot(_qk_block(q2, c2, k2, c2, True, BC, PREC), u2, PREC))
        a3 = (_dot(_qk_block(q3, c3, k0, c0, False, BC, PREC), u0, PREC)
              + _dot(_qk_block(q3, c3, k1, c1, False, BC, PREC), u1, PREC)
              + _dot(_qk_block(q3, c3, k2, c2, False, BC, PREC), u2, PREC)
              + _dot(_qk_block(q3, c3, k3, c3, True, BC, PREC), u3, PREC))
        _fused_out(q, o, b_h, r0, m0, c0, scale, a0, K, V, BK, BV, ACCUM, HALF, PREC)
        _fused_out(q, o, b_h, r1, m1, c1, scale, a1, K, V, BK, BV, ACCUM, HALF, PREC)
        _fused_out(q, o, b_h, r2, m2, c2, scale, a2, K, V, BK, BV, ACCUM, HALF, PREC)
        _fused_out(q, o, b_h, r3, m3, c3, scale, a3, K, V, BK, BV, ACCUM, HALF, PREC)
        # h' = e^c_last h + K^T Diag(e^(c_last - c)) u
        b_cl = tl.sum(tl.where(o_c == BC - 1, c3, 0.), 0)
        b_h = (b_h * tl.exp(b_cl)
               + _dot(tl.trans(k0 * tl.exp(b_cl - c0)[:, None]), u0, PREC)
               + _dot(tl.trans(k1 * tl.exp(b_cl - c1)[:, None]), u1, PREC)
               + _dot(tl.trans(k2 * tl.exp(b_cl - c2)[:, None]), u2, PREC)
               + _dot(tl.trans(k3 * tl.exp(b_cl - c3)[:, None]), u3, PREC))


@triton.jit
def _fused_bidir_fwd(
    q, k, v, p, g, beta, o, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IPLR: tl.constexpr, PREC: tl.constexpr, MEAN: tl.constexpr, DOUBLING: tl.constexpr,
):
    """Forward only, both directions in one program per (batch, head): the forward scan writes o, the
    reverse scan (after a block barrier, so that its threads see those writes) adds to it."""
    i_bh = tl.program_id(0)
    i_b, i_h = i_bh // H, i_bh % H
    _fused_scan(q, k, v, p, g, beta, o, scale, i_b, i_h, T, H, K, V, BT, BK, BV, False, IPLR, PREC, False, False,
                DOUBLING)
    tl.debug_barrier()
    _fused_scan(q, k, v, p, g, beta, o, scale, i_b, i_h, T, H, K, V, BT, BK, BV, True, IPLR, PREC, True, MEAN,
                DOUBLING)


@triton.jit
def _chunk_start(g, T, H, K, BT: tl.constexpr, BK: tl.constexpr, CS: tl.constexpr, I0, REVERSE: tl.constexpr,
                 IPLR: tl.constexpr):
    """A chunk-parallel kernel's program (grid (chunks, rows), the first chunk I0): its chunk, (batch * head) row,
    batch, head, the chunk count, tile offsets (rows, K and its mask), the input rows and their mask, the decays
    (_decays: g, c, cf, c_last) and the chunk's first row in the work buffers."""
    i_t, i_bh = tl.program_id(0) + I0, tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    NT = tl.cdiv(T, CS)
    o_k = tl.arange(0, BK)
    rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
    return (i_t, i_bh, i_b, i_h, NT, tl.arange(0, BT), o_k, o_k < K, rows, m_t, b_g, b_c, b_cf, b_clast,
            (i_bh * NT + i_t) * CS)


@triton.jit
def _fwd_prepare(
    k, p, v, g, beta, M, W, U,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, ZO=None, ZERO_O: tl.constexpr = False,
):
    (i_t, i_bh, i_b, i_h, NT, o_c, o_k, m_k, rows, m_t, b_g, b_c, b_cf, b_clast,
     base_c) = _chunk_start(g, T, H, K, BT, BK, CS, I0, REVERSE, IPLR)
    if ZERO_O:
        _zero_chunk(ZO, i_t, i_bh, T, H, V, BT, BV, CS)
    b_beta = tl.load(beta + rows, mask=m_t, other=0.).to(tl.float32)
    b_k = _load_rows(k, rows, m_t, K, BK, 0)
    b_p = _load_rows(p, rows, m_t, K, BK, 0)
    if IPLR:
        b_p = b_p * 2.
    strict = o_c[:, None] > o_c[None, :]
    b_A = _dot(b_p, tl.trans(b_k), PREC)
    b_L = tl.where(strict, b_A * tl.exp(tl.where(strict, b_cf[:, None] - b_c[None, :], 0.)), 0.)
    # (I + N)^-1 for strictly lower N = Diag(beta) L, one row at a time: Y_i = -N_i - sum_j N_ij Y_j
    b_X = -(b_L * b_beta[:, None])
    for i in range(1, BT):
        m_row = o_c == i
        b_row = tl.sum(tl.where(m_row[:, None], b_X, 0.), 0)
        b_row = b_row + tl.sum(b_row[:, None] * b_X, 0) * (o_c < i)
        b_X = tl.where(m_row[:, None], b_row[None, :], b_X)
    b_M = b_X + tl.where(o_c[:, None] == o_c[None, :], 1., 0.)
    tl.store(M + (base_c + o_c)[:, None] * CS + o_c[None, :], b_M.to(M.dtype.element_ty))
    b_W = _dot(b_M, b_p * (b_beta * tl.exp(b_cf))[:, None], PREC)
    tl.store(W + (base_c + o_c)[:, None] * K + o_k[None, :], b_W.to(W.dtype.element_ty), mask=m_k[None, :])
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        b_v = _load_rows(v, rows, m_t, V, BV, i_v * BV)
        b_U = _dot(b_M, b_v * b_beta[:, None], PREC)
        tl.store(U + (base_c + o_c)[:, None] * V + o_v[None, :], b_U.to(U.dtype.element_ty), mask=m_v[None, :])


@triton.jit
def _attn_lower(b_q, b_k, b_c, BT: tl.constexpr, PREC: tl.constexpr):
    """lower(Q K^T * exp(c_i - c_j)), inclusive, [BT, BT] (Q scaled by the caller)."""
    o_c = tl.arange(0, BT)
    return _decayed(_dot(b_q, tl.trans(b_k), PREC), b_c, o_c[:, None] >= o_c[None, :])


@triton.jit
def _decayed(b_S, b_c, tri):
    """S * exp(c_i - c_j) where tri holds, 0 elsewhere (the exponent kept to 0 there, so it cannot overflow)."""
    return tl.where(tri, b_S * tl.exp(tl.where(tri, b_c[:, None] - b_c[None, :], 0.)), 0.)


@triton.jit
def _fwd_state_chunk(k, g, W, U, h, b_h, i_t, i_b, i_h, i_bh, NT, kv, m_kv, o_v, m_v, T, H, K, V,
                     BT: tl.constexpr, BK: tl.constexpr, CS: tl.constexpr, REVERSE: tl.constexpr,
                     IPLR: tl.constexpr, PREC: tl.constexpr, STORE: tl.constexpr,
                     q, o, scale, OUTPUT: tl.constexpr, OUT_ADD: tl.constexpr):
    """One chunk of _fwd_state on a BT-row tile: stores the state at the chunk start, completes u, returns
    the state at the chunk end. STORE=False (a group's summary walk): stores nothing, U0 is only read.
    OUTPUT (with STORE): also this V block's output o = Diag(e^c) Q h0 + lower(Q K^T * decay) u (OUT_ADD:
    added atomically into one zeroed [B, T, H, V] o for both directions, ATOMIC_SUM)."""
    o_c = tl.arange(0, BT)
    if STORE:
        tl.store(h + (i_bh * NT + i_t) * K * V + kv, b_h.to(h.dtype.element_ty), mask=m_kv)
    rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
    base_c = (i_bh * NT + i_t) * CS
    b_W = _w_cols(W, base_c, K, BT, BK, 0)
    p_U = U + (base_c + o_c)[:, None] * V + o_v[None, :]
    b_u = tl.load(p_U, mask=m_v[None, :], other=0.).to(tl.float32) - _dot(b_W, b_h, PREC)
    if STORE:
        tl.store(p_U, b_u.to(U.dtype.element_ty), mask=m_v[None, :])
    b_k = _load_rows(k, rows, m_t, K, BK, 0)
    if OUTPUT and STORE:
        b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
        b_o = (_dot(b_q * tl.exp(b_c)[:, None], b_h, PREC)
               + _dot(_attn_lower(b_q, b_k, b_c, BT, PREC), b_u, PREC))
        orows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, OUT_ADD)
        _put_grad(o + orows[:, None] * V + o_v[None, :], b_o.to(o.dtype.element_ty), m_t[:, None] & m_v[None, :],
                  OUT_ADD)
    b_k = b_k * tl.exp(b_clast - b_c)[:, None]
    return b_h * tl.exp(b_clast) + _dot(tl.trans(b_k), b_u, PREC)


@triton.jit
def _group_bounds(NT, G: tl.constexpr, TAIL: tl.constexpr, CS: tl.constexpr):
    """The first chunk c0 of this program's group (chunks c0..c1, G = 0: all NT chunks), the end of its whole
    chunks, and whether it holds the last chunk (a short one, TAIL < CS, is taken in a step of its own)."""
    if G == 0:
        c0 = 0
        c1 = NT
    else:
        c0 = tl.program_id(2) * G
        c1 = tl.minimum(c0 + G, NT)
    has_tail = c1 == NT
    if TAIL < CS:
        c_full = tl.where(has_tail, c1 - 1, c1)
    else:
        c_full = c1
    return c0, c_full, has_tail


@triton.jit
def _group_start(HS, i_bh, i_v, o_k, o_v, K, V, BK: tl.constexpr, BV: tl.constexpr, PHASE: tl.constexpr):
    """A group walk's starting tile: PHASE 1 (summary), zero, or for the programs past V's blocks the
    identity's columns (they walk the group's transition matrix, with zero input); PHASE 2, the group's
    true starting state from HS (written by _state_carry)."""
    NG = tl.num_programs(2)
    i_g = tl.program_id(2)
    if PHASE == 1:
        j = o_v - tl.cdiv(V, BV) * BV
        return tl.where((o_k[:, None] == j[None, :]) & (j < K)[None, :], 1., 0.)
    else:
        kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
        return tl.load(HS + (i_bh * NG + i_g) * K * V + kv, mask=m_kv, other=0.)


@triton.jit
def _walk_start(h0, HS, T, H, K, V, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, TAIL: tl.constexpr,
                G: tl.constexpr, PHASE: tl.constexpr, USE_H0: tl.constexpr):
    """What a state kernel's program starts from (the forward's and the backward's alike): its V block and
    (batch * head) row, the chunk count, offsets and masks of its [BK, BV] tile, its chunks (_group_bounds)
    and its starting tile: h0 (the backward's dht) or zero for PHASE 0, else _group_start's."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    NT = tl.cdiv(T, CS)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
    c0, c_full, has_tail = _group_bounds(NT, G, TAIL, CS)
    if PHASE == 0:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
        if USE_H0:
            b_h += tl.load(h0 + i_bh * K * V + kv, mask=m_kv, other=0.)
    else:
        b_h = _group_start(HS, i_bh, i_v, o_k, o_v, K, V, BK, BV, PHASE)
    return i_v, i_bh, i_bh // H, i_bh % H, NT, o_k, o_v, o_v < V, kv, m_kv, c0, c_full, has_tail, b_h


@triton.jit
def _group_summary(S, b_h, i_bh, o_k, o_v, K, V, BV: tl.constexpr):
    """Stores a summary walk's end tile in S [B*H, NG, K, V + K]: the group's state from zero in columns
    0..V, its transition matrix in columns V..V + K."""
    NG = tl.num_programs(2)
    nV = tl.cdiv(V, BV) * BV
    col = tl.where(o_v < nV, o_v, V + o_v - nV)
    m_col = tl.where(o_v < nV, o_v < V, o_v - nV < K)
    tl.store(S + (tl.program_id(1) * NG + tl.program_id(2)) * K * (V + K) + o_k[:, None] * (V + K) + col[None, :],
             b_h, mask=(o_k < K)[:, None] & m_col[None, :])


@triton.jit
def _walk_end(S, ht, b_h, i_bh, o_k, o_v, kv, m_kv, K, V, BV: tl.constexpr, PHASE: tl.constexpr,
              STORE_HT: tl.constexpr):
    """A state walk's end tile: a group's summary (PHASE 1), or the final state (the backward's dh0) in ht when
    asked for (PHASE 0; the grouped walk's carry writes it otherwise)."""
    if PHASE == 1:
        _group_summary(S, b_h, i_bh, o_k, o_v, K, V, BV)
    if PHASE == 0 and STORE_HT:
        tl.store(ht + i_bh * K * V + kv, b_h, mask=m_kv)


@triton.jit
def _state_carry(S, HS, h0, ht, NG, K, V, BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr,
                 USE_H0: tl.constexpr, STORE_HT: tl.constexpr, BACKWARD: tl.constexpr):
    """Walks the groups (backwards: from the last) with their summaries, h_next = P_g h + s_g, storing each
    group's starting state in HS [B*H, NG, K, V]; ht gets the end state (the backward's dh0). Each next summary is
    loaded before the step's product (session 28, H200, both directions' forward+backward: 0.034 -> 0.029 ms at
    (8, 4097, 3, 64), 0.038 -> 0.033 at (2, 16385, 3, 64), 0.020 -> 0.016 at (2, 16384, 3, 32, 64); the same ahead
    loads in _affine_scan, on top of its 2 pipeline stages, were slower: 0.130 -> 0.184 ms at (8, 4097, 3, 64))."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
    o_v = i_v * BV + tl.arange(0, BV)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + i_bh * K * V + kv, mask=m_kv, other=0.)
    p_P = S + o_k[:, None] * (V + K) + V + o_k[None, :]
    p_s = S + o_k[:, None] * (V + K) + o_v[None, :]
    m_kk = m_k[:, None] & m_k[None, :]
    i_g = NG - 1 if BACKWARD else 0
    b_P = tl.load(p_P + (i_bh * NG + i_g) * K * (V + K), mask=m_kk, other=0.)
    b_s = tl.load(p_s + (i_bh * NG + i_g) * K * (V + K), mask=m_kv, other=0.)
    for j in range(0, NG):
        i_g = NG - 1 - j if BACKWARD else j
        tl.store(HS + (i_bh * NG + i_g) * K * V + kv, b_h, mask=m_kv)
        # the next group's summary loaded before this step's product (the walk waits on the product only: the loads
        # are its latency otherwise, one a step; the last step reloads its own)
        i_n = tl.maximum(i_g - 1, 0) if BACKWARD else tl.minimum(i_g + 1, NG - 1)
        n_P = tl.load(p_P + (i_bh * NG + i_n) * K * (V + K), mask=m_kk, other=0.)
        n_s = tl.load(p_s + (i_bh * NG + i_n) * K * (V + K), mask=m_kv, other=0.)
        b_h = _dot(b_P, b_h, PREC) + b_s
        b_P, b_s = n_P, n_s
    if STORE_HT:
        tl.store(ht + i_bh * K * V + kv, b_h, mask=m_kv)


@triton.jit
def _fwd_state(
    k, g, W, U, h, h0, ht, q, o, scale, S, HS,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr,
    USE_H0: tl.constexpr, STORE_HT: tl.constexpr, TAIL: tl.constexpr, G: tl.constexpr, PHASE: tl.constexpr,
    OUTPUT: tl.constexpr, OUT_ADD: tl.constexpr = False,
):
    """TAIL < CS: the last chunk is short and its buffers were written on a TAIL-row tile (see _tail_rows).
    G = 0 (PHASE 0): one program per V block walks every chunk. G > 0, grid (V blocks, B*H, groups of G
    chunks): PHASE 1 walks each group from zero without storing (its summary, in S; the programs past
    V's blocks walk the identity), _state_carry chains the groups, PHASE 2 walks each group again from its
    true starting state, storing h and u as PHASE 0 does. OUTPUT (FUSED_OUTPUT): the storing walk also writes
    the output o (q, o and scale are only read then)."""
    (i_v, i_bh, i_b, i_h, NT, o_k, o_v, m_v, kv, m_kv, c0, c_full, has_tail,
     b_h) = _walk_start(h0, HS, T, H, K, V, BK, BV, CS, TAIL, G, PHASE, USE_H0)
    for i_t in range(c0, c_full):
        b_h = _fwd_state_chunk(k, g, W, U, h, b_h, i_t, i_b, i_h, i_bh, NT, kv, m_kv, o_v, m_v, T, H, K, V,
                               CS, BK, CS, REVERSE, IPLR, PREC, PHASE != 1, q, o, scale, OUTPUT, OUT_ADD)
    if TAIL < CS:
        if has_tail:
            b_h = _fwd_state_chunk(k, g, W, U, h, b_h, NT - 1, i_b, i_h, i_bh, NT, kv, m_kv, o_v, m_v, T, H, K,
                                   V, TAIL, BK, CS, REVERSE, IPLR, PREC, PHASE != 1, q, o, scale, OUTPUT, OUT_ADD)
    _walk_end(S, ht, b_h, i_bh, o_k, o_v, kv, m_kv, K, V, BV, PHASE, STORE_HT)


@triton.jit
def _fwd_output(
    q, k, g, W, U, h, o, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr,
    COMPLETE_U: tl.constexpr = False, OUTPUT: tl.constexpr = True, OUT_ADD: tl.constexpr = False,
):
    """o = Diag(e^c) Q h0 + lower(Q K^T * decay) u for one chunk. COMPLETE_U (after the transition walk, which
    stores only the states): first u = U0 - W h0, written over U0; OUTPUT=False: only that. OUT_ADD (ATOMIC_SUM):
    both directions' outputs added atomically into one zeroed [B, T, H, V] o."""
    (i_t, i_bh, i_b, i_h, NT, o_c, o_k, m_k, rows, m_t, b_g, b_c, b_cf, b_clast,
     base_c) = _chunk_start(g, T, H, K, BT, BK, CS, I0, REVERSE, IPLR)
    orows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, OUT_ADD)
    if OUTPUT:
        b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
        b_A = _attn_lower(b_q, _load_rows(k, rows, m_t, K, BK, 0), b_c, BT, PREC)
        b_qd = b_q * tl.exp(b_c)[:, None]
    if COMPLETE_U:
        b_W = _w_cols(W, base_c, K, BT, BK, 0)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        b_h = tl.load(h + (i_bh * NT + i_t) * K * V + o_k[:, None] * V + o_v[None, :],
                      mask=m_k[:, None] & m_v[None, :], other=0.).to(tl.float32)
        p_U = U + (base_c + o_c)[:, None] * V + o_v[None, :]
        b_u = tl.load(p_U, mask=m_v[None, :], other=0.).to(tl.float32)
        if COMPLETE_U:
            b_u -= _dot(b_W, b_h, PREC)
            tl.store(p_U, b_u.to(U.dtype.element_ty), mask=m_v[None, :])
        if OUTPUT:
            b_o = _dot(b_qd, b_h, PREC) + _dot(b_A, b_u, PREC)
            _put_grad(o + orows[:, None] * V + o_v[None, :], b_o.to(o.dtype.element_ty),
                      m_t[:, None] & m_v[None, :], OUT_ADD)


@triton.jit
def _fwd_output_both(
    q, k, g, W, U, h, o, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr,
):
    """ALIGN_BOTH, after the transition walk: both directions of one token block in one program, grid (NT, B*H).
    The forward scan's chunk j (padded at the start, _scan_rows' REVERSE 3) and the reverse scan's chunk NT - 1 - j
    cover the same BT tokens, in opposite orders: the reverse chunk's slot row r is the block's token BT - 1 - r. In
    token order the program loads q, k and the gates once and forms Q K^T once; the forward scan takes its lower
    triangle with e^(c_i - c_j) (c the prefix sums of g), the reverse scan its upper one with the suffix sums
    e = c_last - c + g. Each completes its u = U0 - W h0 (written over U0, in its own slot order) and the two
    outputs are summed in registers and stored once into o [B, T, H, V]: no zero fill, no atomics."""
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    NT = tl.cdiv(T, BT)
    BHH = tl.num_programs(1)  # B * H: the reverse direction's rows of the work buffers follow the forward's
    o_c = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    t = i_t * BT - (NT * BT - T) + o_c  # the block's tokens (negative: the forward scan's padding)
    m_t = t >= 0
    rows = (i_b * T + tl.where(m_t, t, 0)) * H + i_h
    b_g = tl.load(g + rows, mask=m_t, other=0.).to(tl.float32)
    b_c = tl.cumsum(b_g, 0)
    b_e = tl.sum(b_g, 0) - b_c + b_g  # the reverse scan's prefix sums, in token order
    b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
    b_S = _dot(b_q, tl.trans(_load_rows(k, rows, m_t, K, BK, 0)), PREC)
    b_Af = _decayed(b_S, b_c, o_c[:, None] >= o_c[None, :])
    b_Ar = _decayed(b_S, b_e, o_c[:, None] <= o_c[None, :])
    b_qf = b_q * tl.exp(b_c)[:, None]
    b_qr = b_q * tl.exp(b_e)[:, None]
    base_f = (i_bh * NT + i_t) * BT
    i_tr = NT - 1 - i_t
    base_r = ((BHH + i_bh) * NT + i_tr) * BT
    flip = BT - 1 - o_c  # the reverse chunk's slot rows, in token order
    b_Wf = _w_rows(W, base_f + o_c, K, BK, 0)
    b_Wr = _w_rows(W, base_r + flip, K, BK, 0)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_kv = m_k[:, None] & m_v[None, :]
        kv = o_k[:, None] * V + o_v[None, :]
        b_hf = tl.load(h + (i_bh * NT + i_t) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        b_hr = tl.load(h + ((BHH + i_bh) * NT + i_tr) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        p_Uf = U + (base_f + o_c)[:, None] * V + o_v[None, :]
        p_Ur = U + (base_r + flip)[:, None] * V + o_v[None, :]
        b_uf = tl.load(p_Uf, mask=m_v[None, :], other=0.).to(tl.float32) - _dot(b_Wf, b_hf, PREC)
        b_ur = tl.load(p_Ur, mask=m_v[None, :], other=0.).to(tl.float32) - _dot(b_Wr, b_hr, PREC)
        tl.store(p_Uf, b_uf.to(U.dtype.element_ty), mask=m_v[None, :])
        tl.store(p_Ur, b_ur.to(U.dtype.element_ty), mask=m_v[None, :])
        b_o = (_dot(b_qf, b_hf, PREC) + _dot(b_Af, b_uf, PREC)
               + _dot(b_qr, b_hr, PREC) + _dot(b_Ar, b_ur, PREC))
        tl.store(o + rows[:, None] * V + o_v[None, :], b_o.to(o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


@triton.jit
def _chunk_affine(
    k, q, g, W, X, Y, A, R, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, BACKWARD: tl.constexpr,
    DO_ONE: tl.constexpr = False,
):
    """One chunk's step of the state walk as an affine map (the transition walk, TRANSITION_WALK): h_end = A h0 + R
    with A = e^c_last I - K~^T W [K, K], K~ = Diag(e^(c_last - c)) K, and R = K~^T U0 (X = U0); backwards
    (BACKWARD) dh0 = A^T dh_end + R with R = (Diag(e^c) Q scale)^T dO - W^T dU_local (X = dU's local part, Y = dO).
    A [.., NT, K, K] and R [.., NT, K, V] in float32 (bf16 with HALF_MAPS, A then K~^T W alone: _store_transition)."""
    (i_t, i_bh, i_b, i_h, NT, o_c, o_k, m_k, rows, m_t, b_g, b_c, b_cf, b_clast,
     base_c) = _chunk_start(g, T, H, K, BT, BK, CS, I0, REVERSE, IPLR)
    b_W = _w_cols(W, base_c, K, BT, BK, 0)
    b_kd = _load_rows(k, rows, m_t, K, BK, 0) * tl.exp(b_clast - b_c)[:, None]
    _store_transition(A, _dot(tl.trans(b_kd), b_W, PREC), b_clast, i_bh, i_t, NT, o_k, m_k, K)
    if BACKWARD:
        dorows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, DO_ONE)
        b_qd = _load_rows(q, rows, m_t, K, BK, 0) * (scale * tl.exp(b_c))[:, None]
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        b_x = tl.load(X + (base_c + o_c)[:, None] * V + o_v[None, :], mask=m_v[None, :], other=0.).to(tl.float32)
        if BACKWARD:
            b_r = (_dot(tl.trans(b_qd), _load_rows(Y, dorows, m_t, V, BV, i_v * BV), PREC)
                   - _dot(tl.trans(b_W), b_x, PREC))
        else:
            b_r = _dot(tl.trans(b_kd), b_x, PREC)
        _store_offset(R, b_r, i_bh, i_t, NT, o_k, m_k, o_v, m_v, K, V)


@triton.jit
def _affine_scan(
    A, R, g, h, h0, ht, S, HS,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, PREC: tl.constexpr, USE_H0: tl.constexpr, STORE_HT: tl.constexpr, BACKWARD: tl.constexpr,
    G: tl.constexpr, PHASE: tl.constexpr,
):
    """The transition walk: one program per V block walks the chunks' affine maps (_chunk_affine) holding the
    state [K, BV] on chip, h_next = A_t h + R_t, storing the state at each chunk's start in h; backwards, from the
    last chunk, dh = A_t^T dh + R_t, storing dh at each chunk's end. h0 / ht: the initial and final state (the
    backward's dht and dh0). No loaded operand depends on the state, so the loads run ahead of the walk. The
    state is an operand of each step's product at PREC (TF32 for half inputs: rounded to 10 mantissa bits a chunk,
    where the other walks keep e^c_last h exact and round h only inside their W h products; the errors against
    float64 measured on the H200 stayed at the other walks' level, 4.8e-3 at 16384 tokens). Half maps (HALF_MAPS: A
    holds K~^T W alone, A and R in bf16): h_next = e^c_last h - A_t h + R_t, e^c_last from the chunk's gates (g) in
    float32, so the decay is exact and only the correction and R are rounded.
    G > 0: in groups of G chunks as _fwd_state's grouped walk (PHASE 1 summaries in S, _state_carry, PHASE 2)."""
    # (the walk has no short-tail step: TAIL = CS; kv's mask is off for the identity's columns of PHASE 1, no R there)
    (i_v, i_bh, i_b, i_h, NT, o_k, o_v, m_v, kv, m_kv, c0, c1, has_tail,
     b_h) = _walk_start(h0, HS, T, 1, K, V, BK, BV, CS, CS, G, PHASE, USE_H0)
    m_kk = (o_k < K)[:, None] & (o_k < K)[None, :]
    if BACKWARD:  # A^T
        kk = o_k[:, None] + o_k[None, :] * K
    else:
        kk = o_k[:, None] * K + o_k[None, :]
    for j in range(0, c1 - c0):
        if BACKWARD:
            i_t = c1 - 1 - j
        else:
            i_t = c0 + j
        base = i_bh * NT + i_t
        b_A = tl.load(A + base * K * K + kk, mask=m_kk, other=0.).to(tl.float32)
        b_r = tl.load(R + base * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        if PHASE != 1:
            tl.store(h + base * K * V + kv, b_h.to(h.dtype.element_ty), mask=m_kv)
        if A.dtype.element_ty == tl.float32:
            b_h = _dot(b_A, b_h, PREC) + b_r
        else:  # K~^T W alone: the decay from the chunk's gates (float32; summed in another order than the writers')
            rows, m_t = _rows(i_t, i_bh // H, T, H, i_bh % H, CS, REVERSE, CS)
            b_cl = tl.sum(tl.load(g + rows, mask=m_t, other=0.).to(tl.float32), 0)
            b_h = tl.exp(b_cl) * b_h - _dot(b_A, b_h, PREC) + b_r
    _walk_end(S, ht, b_h, i_bh, o_k, o_v, kv, m_kv, K, V, BV, PHASE, STORE_HT)


@triton.jit
def _bwd_complete(
    k, g, U, h, dh, dU, KDH, DCL,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
    DO_ONE: tl.constexpr = False,  # not read here (no dO): the backward's launch options are shared
):
    """After the backward transition walk: what _bwd_state adds as it walks, chunk-parallel: dU += Diag(e^(c_last -
    c)) K dh (dh at the chunk's end) and, with PRE, the K dh and <h0, dh> terms of dc in KDH and DCL (one slice for
    all of V)."""
    (i_t, i_bh, i_b, i_h, NT, o_c, o_k, m_k, rows, m_t, b_g, b_c, b_cf, b_clast,
     base_c) = _chunk_start(g, T, H, K, BT, BK, CS, I0, REVERSE, IPLR)
    b_kd = _load_rows(k, rows, m_t, K, BK, 0) * tl.exp(b_clast - b_c)[:, None]
    b_ukdh = tl.zeros([BT], dtype=tl.float32)
    b_inner = 0.
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
        b_dh = tl.load(dh + (i_bh * NT + i_t) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        b_kdh = _dot(b_kd, b_dh, PREC)
        p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
        tl.store(dU + p_cv, tl.load(dU + p_cv, mask=m_v[None, :], other=0.) + b_kdh, mask=m_v[None, :])
        if PRE:
            b_u = tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
            b_ukdh += tl.sum(b_u * b_kdh, 1)
            b_h0 = tl.load(h + (i_bh * NT + i_t) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
            b_inner += tl.sum(tl.sum(b_h0 * b_dh, 1), 0)
    if PRE:
        o_kdh, o_dcl = _pre_slices(0, i_bh, i_t, NT, base_c, BT, CS)
        tl.store(KDH + o_kdh, b_ukdh)
        tl.store(DCL + o_dcl, tl.exp(b_clast) * b_inner)


@triton.jit
def _bwd_dv_local(
    q, k, p, g, do, dU, h, PH, DCQ, W, A, R, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
    AFFINE: tl.constexpr = False, DO_ONE: tl.constexpr = False,
):
    """dU's local part lower(Q K^T * decay)^T dO (and with PRE P h0 and the Q h0 term of dc). AFFINE (the transition
    walk's backward with TRANSITION_FOLD): also the chunk's affine map as _chunk_affine's backward writes it, A
    = e^c_last I - K~^T W (K~^T W alone in half maps) and R = (Diag(e^c) Q scale)^T dO - W^T dU_local, so that
    kernel is not launched."""
    (i_t, i_bh, i_b, i_h, NT, o_c, o_k, m_k, rows, m_t, b_g, b_c, b_cf, b_clast,
     base_c) = _chunk_start(g, T, H, K, BT, BK, CS, I0, REVERSE, IPLR)
    dorows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, DO_ONE)
    b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
    b_k = _load_rows(k, rows, m_t, K, BK, 0)
    # transposed: At[j, i] = A[i, j] = (q_i . k_j) e^(c_i - c_j) for j <= i
    m_up = o_c[:, None] <= o_c[None, :]
    b_At = _dot(b_k, tl.trans(b_q), PREC)
    b_At = tl.where(m_up, b_At * tl.exp(tl.where(m_up, b_c[None, :] - b_c[:, None], 0.)), 0.)
    if PRE:
        b_p = _load_rows(p, rows, m_t, K, BK, 0)
        if IPLR:
            b_p = b_p * 2.
    else:
        b_p = b_k
    b_dcq = tl.zeros([BT], dtype=tl.float32)
    if AFFINE:
        b_W = _w_cols(W, base_c, K, BT, BK, 0)
        b_kd = b_k * tl.exp(b_clast - b_c)[:, None]
        _store_transition(A, _dot(tl.trans(b_kd), b_W, PREC), b_clast, i_bh, i_t, NT, o_k, m_k, K)
        b_qd = b_q * tl.exp(b_c)[:, None]
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
        b_do = _load_rows(do, dorows, m_t, V, BV, i_v * BV)
        b_dU = _dot(b_At, b_do, PREC)
        tl.store(dU + p_cv, b_dU, mask=m_v[None, :])
        if AFFINE:
            _store_offset(R, _dot(tl.trans(b_qd), b_do, PREC) - _dot(tl.trans(b_W), b_dU, PREC), i_bh, i_t, NT, o_k,
                          m_k, o_v, m_v, K, V)
        if PRE:
            b_h0 = tl.load(h + (i_bh * NT + i_t) * K * V + o_k[:, None] * V + o_v[None, :],
                           mask=m_k[:, None] & m_v[None, :], other=0.).to(tl.float32)
            tl.store(PH + p_cv, _dot(b_p, b_h0, PREC).to(PH.dtype.element_ty), mask=m_v[None, :])
            b_dcq += tl.sum(b_do * _dot(b_q, b_h0, PREC), 1)
    if PRE:  # o = Diag(e^c) Q h0 + ...: its part of dc
        tl.store(DCQ + base_c + o_c, tl.exp(b_c) * b_dcq)


@triton.jit
def _pre_slices(i_v, i_bh, i_t, NT, base_c, BT: tl.constexpr, CS: tl.constexpr):
    """Offsets, in KDH and DCL, of state V block i_v's entries for chunk i_t: one float per token of the
    chunk in KDH, one per chunk in DCL (each V block of the state kernel writes its own slice)."""
    n_bh = tl.num_programs(1)
    return i_v * n_bh * NT * CS + base_c + tl.arange(0, BT), i_v * n_bh * NT + i_bh * NT + i_t


@triton.jit
def _store_pre_state(KDH, DCL, U, p_cv, m_v, b_kdh, b_inner, b_clast, i_v, i_bh, i_t, NT, base_c,
                     BT: tl.constexpr, CS: tl.constexpr):
    """The state kernels' part of dc and dc_last for this V block (h_end = e^c_last h0 + K^T Diag(e^(c_last
    - c)) u): sum_v u * (Diag(e^(c_last - c)) K dh) per token, and e^c_last <h0, dh> (b_inner)."""
    o_kdh, o_dcl = _pre_slices(i_v, i_bh, i_t, NT, base_c, BT, CS)
    b_u = tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
    tl.store(KDH + o_kdh, tl.sum(b_u * b_kdh, 1))
    tl.store(DCL + o_dcl, tl.exp(b_clast) * b_inner)


@triton.jit
def _bwd_state_chunk(q, k, g, W, do, dU, dh, scale, U, h, KDH, DCL, b_dh, i_t, i_v, i_b, i_h, i_bh, NT, kv, m_kv,
                     o_v, m_v, T, H, K, V, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
                     REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
                     STORE: tl.constexpr = True, DO_ONE: tl.constexpr = False):
    """One chunk of _bwd_state on a BT-row tile: stores dh at the chunk end, completes dU, returns dh at the
    chunk start. STORE=False (a group's summary walk): stores nothing, dU (its local part) is only read."""
    o_c = tl.arange(0, BT)
    if STORE:
        tl.store(dh + (i_bh * NT + i_t) * K * V + kv, b_dh.to(dh.dtype.element_ty), mask=m_kv)
    rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    dorows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, DO_ONE)
    b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
    base_c = (i_bh * NT + i_t) * CS
    b_k = _load_rows(k, rows, m_t, K, BK, 0)
    b_q = _load_rows(q, rows, m_t, K, BK, 0)
    b_q = b_q * (scale * tl.exp(b_c))[:, None]
    b_W = _w_cols(W, base_c, K, BT, BK, 0)
    b_do = _load_rows(do, dorows, m_t, V, BV, i_v * BV)
    p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
    b_kd = b_k * tl.exp(b_clast - b_c)[:, None]
    b_kdh = _dot(b_kd, b_dh, PREC)
    if PRE and STORE:
        b_h0 = tl.load(h + (i_bh * NT + i_t) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        _store_pre_state(KDH, DCL, U, p_cv, m_v, b_kdh, tl.sum(tl.sum(b_h0 * b_dh, 1), 0), b_clast,
                         i_v, i_bh, i_t, NT, base_c, BT, CS)
    b_dU = tl.load(dU + p_cv, mask=m_v[None, :], other=0.) + b_kdh
    if STORE:
        tl.store(dU + p_cv, b_dU, mask=m_v[None, :])
    return (b_dh * tl.exp(b_clast) + _dot(tl.trans(b_q), b_do, PREC)
            - _dot(tl.trans(b_W), b_dU, PREC))


@triton.jit
def _bwd_state(
    q, k, g, W, do, dU, dh, dht, dh0, scale, U, h, KDH, DCL, S, HS,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr,
    USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PRE: tl.constexpr, TAIL: tl.constexpr,
    G: tl.constexpr, PHASE: tl.constexpr, DO_ONE: tl.constexpr = False,
):
    """TAIL < CS: the last chunk (the first one walked here) runs on a TAIL-row tile, as in _fwd_state.
    G and PHASE as in _fwd_state, each group walked backwards from its last chunk (the transition of dh
    over a chunk is the transpose of the state's)."""
    (i_v, i_bh, i_b, i_h, NT, o_k, o_v, m_v, kv, m_kv, c0, c_full, has_tail,
     b_dh) = _walk_start(dht, HS, T, H, K, V, BK, BV, CS, TAIL, G, PHASE, USE_DHT)
    if TAIL < CS:
        if has_tail:
            b_dh = _bwd_state_chunk(q, k, g, W, do, dU, dh, scale, U, h, KDH, DCL, b_dh, NT - 1, i_v, i_b, i_h,
                                    i_bh, NT, kv, m_kv, o_v, m_v, T, H, K, V, TAIL, BK, BV, CS, REVERSE, IPLR, PREC,
                                    PRE, PHASE != 1, DO_ONE)
    for j in range(0, c_full - c0):
        b_dh = _bwd_state_chunk(q, k, g, W, do, dU, dh, scale, U, h, KDH, DCL, b_dh, c_full - 1 - j, i_v, i_b,
                                i_h, i_bh, NT, kv, m_kv, o_v, m_v, T, H, K, V, CS, BK, BV, CS, REVERSE, IPLR,
                                PREC, PRE, PHASE != 1, DO_ONE)
    _walk_end(S, dh0, b_dh, i_bh, o_k, o_v, kv, m_kv, K, V, BV, PHASE, STORE_DH0)


@triton.jit
def _w_cols(W, base_c, K, BT: tl.constexpr, BD: tl.constexpr, off):
    """[BT, BD] columns off..off+BD of one chunk's W ([.., NT * BT, K], float32 or as HALF_BUFFERS says), in
    float32."""
    return _w_rows(W, base_c + tl.arange(0, BT), K, BD, off)


@triton.jit
def _w_rows(W, slots, K, BD: tl.constexpr, off):
    """Columns off..off+BD of W's rows slots (a chunk's slot rows, in any order), in float32."""
    o = off + tl.arange(0, BD)
    return tl.load(W + slots[:, None] * K + o[None, :], mask=(o < K)[None, :], other=0.).to(tl.float32)


@triton.jit
def _bwd_state_halves(
    q, k, g, W, do, dU, dh, dht, dh0, scale, U, h, KDH, DCL, S, HS,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr,
    USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PRE: tl.constexpr, TAIL: tl.constexpr,
    G: tl.constexpr, PHASE: tl.constexpr, DO_ONE: tl.constexpr = False,
):
    """_bwd_state for large head sizes: dh and every K-wide tile in two K halves (rows 0..BK/2 and
    BK/2..BK), so that no [BT, BK] float32 tile is live at once (at BK = 128 those spill registers and
    limit how many programs share a multiprocessor)."""
    tl.static_assert(TAIL == CS, "no short-tail tiles from head size 128 (_tail_rows)")
    tl.static_assert(G == 0 and PHASE == 0, "no chunk groups from head size 128 (_state_group)")
    KH: tl.constexpr = BK // 2
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    NT = tl.cdiv(T, CS)
    o_c = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    o_ka = tl.arange(0, KH)
    o_kb = KH + o_ka
    kv_a, m_a = o_ka[:, None] * V + o_v[None, :], (o_ka < K)[:, None] & m_v[None, :]
    kv_b, m_b = o_kb[:, None] * V + o_v[None, :], (o_kb < K)[:, None] & m_v[None, :]
    b_dha = tl.zeros([KH, BV], dtype=tl.float32)
    b_dhb = tl.zeros([KH, BV], dtype=tl.float32)
    if USE_DHT:
        b_dha += tl.load(dht + i_bh * K * V + kv_a, mask=m_a, other=0.)
        b_dhb += tl.load(dht + i_bh * K * V + kv_b, mask=m_b, other=0.)
    for j in range(0, NT):
        i_t = NT - 1 - j
        s_base = (i_bh * NT + i_t) * K * V
        tl.store(dh + s_base + kv_a, b_dha.to(dh.dtype.element_ty), mask=m_a)
        tl.store(dh + s_base + kv_b, b_dhb.to(dh.dtype.element_ty), mask=m_b)
        rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
        dorows = _do_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS, DO_ONE)
        b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
        base_c = (i_bh * NT + i_t) * CS
        p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
        b_edl = tl.exp(b_clast - b_c)[:, None]
        b_kdh = (_dot(_load_rows(k, rows, m_t, K, KH, 0) * b_edl, b_dha, PREC)
                 + _dot(_load_rows(k, rows, m_t, K, KH, KH) * b_edl, b_dhb, PREC))
        if PRE:
            b_in = (tl.sum(tl.sum(tl.load(h + s_base + kv_a, mask=m_a, other=0.).to(tl.float32) * b_dha, 1), 0)
                    + tl.sum(tl.sum(tl.load(h + s_base + kv_b, mask=m_b, other=0.).to(tl.float32) * b_dhb, 1), 0))
            _store_pre_state(KDH, DCL, U, p_cv, m_v, b_kdh, b_in, b_clast, i_v, i_bh, i_t, NT, base_c, BT, CS)
        b_dU = tl.load(dU + p_cv, mask=m_v[None, :], other=0.) + b_kdh
        tl.store(dU + p_cv, b_dU, mask=m_v[None, :])
        b_do = _load_rows(do, dorows, m_t, V, BV, i_v * BV)
        b_qs = (scale * tl.exp(b_c))[:, None]
        b_dha = (b_dha * tl.exp(b_clast)
                 + _dot(tl.trans(_load_rows(q, rows, m_t, K, KH, 0) * b_qs), b_do, PREC)
                 - _dot(tl.trans(_w_cols(W, base_c, K, BT, KH, 0)), b_dU, PREC))
        b_dhb = (b_dhb * tl.exp(b_clast)
                 + _dot(tl.trans(_load_rows(q, rows, m_t, K, KH, KH) * b_qs), b_do, PREC)
                 - _dot(tl.trans(_w_cols(W, base_c, K, BT, KH, KH)), b_dU, PREC))
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + kv_a, b_dha, mask=m_a)
        tl.store(dh0 + i_bh * K * V + kv_b, b_dhb, mask=m_b)


@triton.jit
def _cc_grads_f(b_PK, b_beta, b_c, b_cf, b_dA, b_dbeta, b_dc, b_dcf, BT: tl.constexpr):
    """The feedback half of _cc_grads: from P K^T and the accumulated gradient of A = I + Diag(beta) L, returns
    dL * Df (to contract with K and P) and the updated dbeta, dc, dcf."""
    o_c = tl.arange(0, BT)
    strict = o_c[:, None] > o_c[None, :]
    b_Df = tl.where(strict, tl.exp(tl.where(strict, b_cf[:, None] - b_c[None, :], 0.)), 0.)
    b_L = b_PK * b_Df
    # A = I + Diag(beta) L,  L = (P K^T) * Df
    b_dL = tl.where(strict, b_dA * b_beta[:, None], 0.)
    b_dbeta += tl.sum(tl.where(strict, b_dA * b_L, 0.), 1)
    b_dLL = b_dL * b_L
    b_dcf += tl.sum(b_dLL, 1)
    b_dc -= tl.sum(b_dLL, 0)
    return b_dL * b_Df, b_dbeta, b_dc, b_dcf


@triton.jit
def _cc_grads_o(b_QK, b_c, b_dAqk, b_dc, BT: tl.constexpr):
    """The output half of _cc_grads: from Q K^T and the accumulated gradient of Aqk, returns dAqk * Do (to contract
    with K and Q) and the updated dc."""
    o_c = tl.arange(0, BT)
    incl = o_c[:, None] >= o_c[None, :]
    b_Do = tl.where(incl, tl.exp(tl.where(incl, b_c[:, None] - b_c[None, :], 0.)), 0.)
    # Aqk = (Q K^T) * Do
    b_dAqk = tl.where(incl, b_dAqk, 0.)
    b_dQQ = b_dAqk * (b_QK * b_Do)
    b_dc += tl.sum(b_dQQ, 1) - tl.sum(b_dQQ, 0)
    return b_dAqk * b_Do, b_dc


@triton.jit
def _cc_grads(b_PK, b_QK, b_beta, b_c, b_cf, b_dA, b_dAqk, b_dbeta, b_dc, b_dcf, BT: tl.constexpr):
    """The C x C part of a chunk's backward, from the raw products P K^T and Q K^T (formed after the V loop,
    so that they hold no registers through it) and the accumulated gradients of A = I + Diag(beta) L and
    of Aqk: returns dL * Df (to contract with K, P), dAqk * Do (with K, Q) and the updated dbeta, dc, dcf."""
    b_dAf, b_dbeta, b_dc, b_dcf = _cc_grads_f(b_PK, b_beta, b_c, b_cf, b_dA, b_dbeta, b_dc, b_dcf, BT)
    b_dAo, b_dc = _cc_grads_o(b_QK, b_c, b_dAqk, b_dc, BT)
    return b_dAf, b_dAo, b_dbeta, b_dc, b_dcf


@triton.jit
def _dg_from_dc(b_dc, b_dcf, b_dclast, BT: tl.constexpr, IPLR: tl.constexpr):
    """dg from the gradients of c = cumsum(g) (plus c_last) and cf = c - g (SPLR) or c (IPLR)."""
    o_c = tl.arange(0, BT)
    b_dc += tl.where(o_c == BT - 1, b_dclast, 0.)
    b_dc += b_dcf
    b_dg = tl.sum(tl.where(o_c[:, None] <= o_c[None, :], b_dc[None, :], 0.), 1)
    if not IPLR:
        b_dg -= b_dcf
    return b_dg


@triton.jit
def _grads_setup(q, k, p, g, beta, M, scale, i_t, i_bh, T, H: tl.constexpr, K: tl.constexpr,
                 BT: tl.constexpr, BK: tl.constexpr, REVERSE: tl.constexpr, IPLR: tl.constexpr,
                 LOAD_QKP: tl.constexpr, CS: tl.constexpr):
    """What both gradient kernels load for chunk i_t: rows, decays, beta, the chunk's inverse M, the decay
    factors e^c, e^cf, e^(c_last - c) and, when LOAD_QKP, q (scaled), k and p (doubled for IPLR); otherwise
    zeros in their place (the split kernel loads them after its V loop, so they hold no registers in it)."""
    i_b, i_h = i_bh // H, i_bh % H
    NT = tl.cdiv(T, CS)
    o_c = tl.arange(0, BT)
    rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    orows = _out_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
    b_beta = tl.load(beta + rows, mask=m_t, other=0.).to(tl.float32)
    if LOAD_QKP:
        b_q, b_k, b_p = _load_qkp(q, k, p, scale, rows, m_t, K, BK, IPLR)
    else:
        b_q = tl.zeros([BT, BK], dtype=tl.float32)
        b_k = b_q
        b_p = b_q
    base_c = (i_bh * NT + i_t) * CS
    b_M = tl.load(M + (base_c + o_c)[:, None] * CS + o_c[None, :]).to(tl.float32)
    return (rows, orows, m_t, NT, base_c, b_c, b_cf, b_clast, b_beta, b_q, b_k, b_p, b_M,
            tl.exp(b_c), tl.exp(b_cf), tl.exp(b_clast - b_c))


@triton.jit
def _load_qkp(q, k, p, scale, rows, m_t, K, BK: tl.constexpr, IPLR: tl.constexpr):
    b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
    b_k = _load_rows(k, rows, m_t, K, BK, 0)
    b_p = _load_rows(p, rows, m_t, K, BK, 0)
    if IPLR:
        b_p = b_p * 2.
    return b_q, b_k, b_p


@triton.jit
def _put_grad(ptr, val, mask, ADD: tl.constexpr, acc=0, VEC: tl.constexpr = False):
    """Stores a gradient tile, or with ADD True / 1 (ATOMIC_SUM: both scan directions into one zeroed buffer, exactly
    two contributions an element, so the result does not depend on their order) adds it atomically. ADD 2
    (_bwd_grads_both, whose program walks the two directions of one token block in turn, acc the step): stores it,
    or where acc is not 0 (the second direction) adds it to what the first stored. The program's barrier between
    the two directions makes the first's stores visible to the second's loads (a token's row is another thread's
    in the flipped direction). A [BT] vector (VEC) is held by several threads at once; Triton predicates a store to
    one of them, whose value comes from its own load, so a barrier between every thread's load and the store should
    not be needed, but session 27's COMBA_ORDERED_SUM computed dg wrong on the GPU in a load-add of such a vector
    (cause not proven): kept as a precaution until the GPU shows otherwise."""
    if ADD == 2:
        old = tl.load(ptr, mask=mask & (acc != 0), other=0.)
        if VEC:
            tl.debug_barrier()
        tl.store(ptr, (old.to(tl.float32) + val.to(tl.float32)).to(old.dtype), mask=mask)
    elif ADD == 1:
        tl.atomic_add(ptr, val, mask=mask, sem="relaxed")
    else:
        tl.store(ptr, val, mask=mask)


@triton.jit
def _grads_acc_init(BT: tl.constexpr):
    """Zeroed accumulators of _grads_v_block: dbeta, dcf, dA, dAqk, dc (vectors/matrices) and dc_last."""
    z = tl.zeros([BT], dtype=tl.float32)
    return z, z, tl.zeros([BT, BT], dtype=tl.float32), tl.zeros([BT, BT], dtype=tl.float32), z, tl.sum(z, 0)


@triton.jit
def _grads_v_block(h, dh, U, dU, v, do, dv, PH, rows, orows, m_t, i_v, i_bh, i_t, NT, base_c,
                   b_M, b_q, b_k, b_p, b_beta, b_clast, b_ec, b_ecf, b_edl,
                   b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast,
                   K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   PREC: tl.constexpr, SPLIT: tl.constexpr, PRE: tl.constexpr, ADD: tl.constexpr,
                   DO_ONE: tl.constexpr, acc=0, COMPLETE: tl.constexpr = False):
    """One V block of a chunk's backward: dv, and the per-token and C x C accumulations. Returns the
    block's h0, dh (zeros when SPLIT: not loaded), u, dO and drhs = M^T dU (also written over dU when
    SPLIT, for the K-wide gradients of _bwd_grads_k). With PRE, P h0 comes from PH and the Q h0, K dh and
    <h0, dh> terms are left to _pre_dc (computed by _bwd_dv_local and _bwd_state); with COMPLETE (COMPLETE_IN_GRADS)
    dU is completed here (+ Diag(e^(c_last - c)) K dh, what _bwd_complete adds after the transition walk) and the
    K dh, <h0, dh> terms are added here, _pre_dc then adding the Q h0 term alone."""
    tl.static_assert(PRE or not COMPLETE, "COMPLETE replaces the precomputed products' K dh part (PRE)")
    o_c = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    m_kv = (o_k < K)[:, None] & m_v[None, :]
    p_kv = (i_bh * NT + i_t) * K * V + o_k[:, None] * V + o_v[None, :]
    p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
    if SPLIT:
        b_h0 = tl.zeros([BK, BV], dtype=tl.float32)
        b_dh = b_h0
    else:
        b_h0 = tl.load(h + p_kv, mask=m_kv, other=0.).to(tl.float32)
        b_dh = tl.load(dh + p_kv, mask=m_kv, other=0.).to(tl.float32)
    b_u = tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
    b_v = _load_rows(v, rows, m_t, V, BV, i_v * BV)
    b_do = _load_rows(do, rows if DO_ONE else orows, m_t, V, BV, i_v * BV)
    # u = M rhs, rhs = Diag(beta) (V - Diag(e^cf) P h0)
    b_dU = tl.load(dU + p_cv, mask=m_v[None, :], other=0.)
    if COMPLETE:
        b_kdh_t = b_edl[:, None] * _dot(b_k, b_dh, PREC)
        b_dU += b_kdh_t
    b_drhs = _dot(tl.trans(b_M), b_dU, PREC)
    if SPLIT:
        tl.store(dU + p_cv, b_drhs, mask=m_v[None, :])
    _put_grad(dv + (rows if ADD else orows)[:, None] * V + o_v[None, :],
              (b_drhs * b_beta[:, None]).to(dv.dtype.element_ty), m_t[:, None] & m_v[None, :], ADD, acc)
    if PRE:
        b_hp = tl.load(PH + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
    else:
        b_hp = _dot(b_p, b_h0, PREC)
    b_dbeta += tl.sum(b_drhs * (b_v - b_ecf[:, None] * b_hp), 1)
    b_dcf -= b_beta * b_ecf * tl.sum(b_drhs * b_hp, 1)
    b_dA -= _dot(b_drhs, tl.trans(b_u), PREC)
    # o = Diag(e^c) Q h0 + Aqk u
    b_dAqk += _dot(b_do, tl.trans(b_u), PREC)
    if not PRE:
        b_dc += b_ec * tl.sum(b_do * _dot(b_q, b_h0, PREC), 1)
        # h_end = e^c_last h0 + K^T Diag(e^(c_last - c)) u
        b_kdh = b_edl * tl.sum(b_u * _dot(b_k, b_dh, PREC), 1)
        b_dc -= b_kdh
        b_dclast += tl.sum(b_kdh, 0) + tl.exp(b_clast) * tl.sum(tl.sum(b_h0 * b_dh, 1), 0)
    elif COMPLETE:
        b_dc, b_dclast = _complete_dc(b_u, b_kdh_t, b_h0, b_dh, b_clast, b_dc, b_dclast)
    return b_h0, b_dh, b_u, b_do, b_drhs, b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast


@triton.jit
def _complete_dc(b_u, b_kdh, b_h0, b_dh, b_clast, b_dc, b_dclast):
    """dc and dc_last plus the terms of h_end = e^c_last h0 + K^T Diag(e^(c_last - c)) u that the state walk's
    completing kernel (_bwd_complete: KDH, DCL) would have written, for one V block (b_kdh = Diag(e^(c_last - c))
    K dh)."""
    b_t = tl.sum(b_u * b_kdh, 1)
    return b_dc - b_t, b_dclast + tl.sum(b_t, 0) + tl.exp(b_clast) * tl.sum(tl.sum(b_h0 * b_dh, 1), 0)


@triton.jit
def _grads_v_block_pre(U, dU, v, do, dv, PH, h, rows, orows, m_t, i_v, i_bh, i_t, NT, base_c,
                       b_M, b_beta, b_ecf, b_dbeta, b_dcf, b_dA, b_dAqk, b_dp,
                       K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                       PREC: tl.constexpr, ADD: tl.constexpr, DO_ONE: tl.constexpr, acc=0,
                       COMPLETE: tl.constexpr = False, k=None, dh=None, b_edl=None, b_clast=None, b_dc=None,
                       b_dclast=None):
    """_grads_v_block's PRE form for the one-kernel _bwd_grads (ORDERED_GRADS): each tile is loaded just before its
    first use and is dead after its last (dU, P h0 and v, u, h0, dO in turn), and of the K-wide gradients only dp
    is accumulated here; the dq and dk terms of h0, dO, u, dh are added after the C x C part (_grads_v_terms, which
    loads those tiles again). COMPLETE: as _grads_v_block's (k, dh, the decays and dc, dc_last for it; these two
    returned after the others), its own tiles loaded and dead before the rest."""
    o_c = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
    kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
    p_kv = (i_bh * NT + i_t) * K * V + kv  # this chunk's [BK, BV] tile of a per-chunk state buffer (h, dh)
    # u = M rhs, rhs = Diag(beta) (V - Diag(e^cf) P h0)
    b_dU = tl.load(dU + p_cv, mask=m_v[None, :], other=0.)
    if COMPLETE:
        b_dh = tl.load(dh + p_kv, mask=m_kv, other=0.).to(tl.float32)
        b_kdh = b_edl[:, None] * _dot(_load_rows(k, rows, m_t, K, BK, 0), b_dh, PREC)
        b_dU += b_kdh
        b_dc, b_dclast = _complete_dc(
            tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32), b_kdh,
            tl.load(h + p_kv, mask=m_kv, other=0.).to(tl.float32), b_dh, b_clast, b_dc, b_dclast)
    b_drhs = _dot(tl.trans(b_M), b_dU, PREC)
    _put_grad(dv + (rows if ADD else orows)[:, None] * V + o_v[None, :],
              (b_drhs * b_beta[:, None]).to(dv.dtype.element_ty), m_t[:, None] & m_v[None, :], ADD, acc)
    b_hp = tl.load(PH + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
    b_dbeta += tl.sum(b_drhs * (_load_rows(v, rows, m_t, V, BV, i_v * BV) - b_ecf[:, None] * b_hp), 1)
    b_dcf -= b_beta * b_ecf * tl.sum(b_drhs * b_hp, 1)
    b_u = tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
    b_dA -= _dot(b_drhs, tl.trans(b_u), PREC)
    b_h0 = tl.load(h + p_kv, mask=m_kv, other=0.).to(tl.float32)
    b_dp -= (b_beta * b_ecf)[:, None] * _dot(b_drhs, tl.trans(b_h0), PREC)
    # o = Diag(e^c) Q h0 + Aqk u
    b_dAqk += _dot(_load_rows(do, rows if DO_ONE else orows, m_t, V, BV, i_v * BV), tl.trans(b_u), PREC)
    return b_dbeta, b_dcf, b_dA, b_dAqk, b_dp, b_dc, b_dclast


@triton.jit
def _grads_v_terms(X, Y, rows, m_t, i_bh, i_t, NT, base_c, b_s, b_acc,
                   K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   PREC: tl.constexpr, FROM_ROWS: tl.constexpr):
    """b_acc + Diag(b_s) sum over V blocks of X_blk Y_blk^T, X [BT, V] (rows of a [B, T, H, V] tensor when
    FROM_ROWS, else a chunk slot of a [BH, NT * CS, V] buffer), Y the chunk's [K, V] slice of a per-chunk state
    buffer: dk's e^(c_last - c) u dh^T and dq's e^c dO h0^T, formed after _bwd_grads' C x C part (ORDERED)."""
    o_c = tl.arange(0, BT)
    b_t = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        if FROM_ROWS:
            b_x = _load_rows(X, rows, m_t, V, BV, i_v * BV)
        else:
            b_x = tl.load(X + (base_c + o_c)[:, None] * V + o_v[None, :], mask=m_v[None, :], other=0.).to(tl.float32)
        kv, m_kv = _kv_tile(i_v, K, V, BK, BV)
        b_y = tl.load(Y + (i_bh * NT + i_t) * K * V + kv, mask=m_kv, other=0.).to(tl.float32)
        b_t += _dot(b_x, tl.trans(b_y), PREC)
    return b_acc + b_s[:, None] * b_t


@triton.jit
def _pre_dc(DCQ, KDH, DCL, n_vs, i_bh, i_t, NT, base_c, b_dc, b_dclast, BT: tl.constexpr, CS: tl.constexpr):
    """Adds the dc / dc_last terms that _bwd_dv_local (Q h0) and _bwd_state (K dh, <h0, dh>, one slice per
    state V block, n_vs of them) computed."""
    b_kdh = tl.zeros([BT], dtype=tl.float32)
    for i in range(0, n_vs):
        o_kdh, o_dcl = _pre_slices(i, i_bh, i_t, NT, base_c, BT, CS)
        b_kdh += tl.load(KDH + o_kdh)
        b_dclast += tl.load(DCL + o_dcl)
    b_dc += tl.load(DCQ + base_c + tl.arange(0, BT)) - b_kdh
    return b_dc, b_dclast + tl.sum(b_kdh, 0)


@triton.jit
def _bwd_grads_dir(
    q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs,
    dq, dk, dv, dp, dg, dbeta, scale, i_t, i_bh,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
    ORDERED: tl.constexpr, PREC_T: tl.constexpr, SUM_DIRS: tl.constexpr, DO_ONE: tl.constexpr, acc,
    COMPLETE: tl.constexpr = False,
):
    """_bwd_grads' work for chunk i_t of row i_bh (SUM_DIRS as _put_grad's ADD: 0 the [2, ...] pair's output rows,
    otherwise one [B, T, H, *] buffer: 1 atomic adds, 2 stores or with acc adds in order). COMPLETE
    (COMPLETE_IN_GRADS): dU as the transition walk's backward leaves it, completed here (_grads_v_block)."""
    tl.static_assert(PRE or not ORDERED, "the ordered form needs the precomputed products (PRE)")
    (rows, orows, m_t, NT, base_c, b_c, b_cf, b_clast, b_beta, b_q, b_k, b_p, b_M, b_ec, b_ecf,
     b_edl) = _grads_setup(q, k, p, g, beta, M, scale, i_t, i_bh, T, H, K, BT, BK, REVERSE, IPLR, not ORDERED, CS)
    o_k = tl.arange(0, BK)
    m_tk = m_t[:, None] & (o_k < K)[None, :]
    p_qk = (rows if SUM_DIRS else orows)[:, None] * K + o_k[None, :]
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    b_dp = tl.zeros([BT, BK], dtype=tl.float32)
    b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast = _grads_acc_init(BT)
    for i_v in range(0, tl.cdiv(V, BV)):
        if ORDERED:
            b_dbeta, b_dcf, b_dA, b_dAqk, b_dp, b_dc, b_dclast = _grads_v_block_pre(
                U, dU, v, do, dv, PH, h, rows, orows, m_t, i_v, i_bh, i_t, NT, base_c, b_M, b_beta, b_ecf,
                b_dbeta, b_dcf, b_dA, b_dAqk, b_dp, K, V, BT, BK, BV, PREC, SUM_DIRS, DO_ONE, acc,
                COMPLETE, k, dh, b_edl, b_clast, b_dc, b_dclast)
        else:
            (b_h0, b_dh, b_u, b_do, b_drhs, b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast) = _grads_v_block(
                h, dh, U, dU, v, do, dv, PH, rows, orows, m_t, i_v, i_bh, i_t, NT, base_c, b_M, b_q, b_k, b_p,
                b_beta, b_clast, b_ec, b_ecf, b_edl, b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast, K, V, BT, BK,
                BV, PREC, False, PRE, SUM_DIRS, DO_ONE, acc, COMPLETE)
            b_dp -= (b_beta * b_ecf)[:, None] * _dot(b_drhs, tl.trans(b_h0), PREC)
            b_dq += b_ec[:, None] * _dot(b_do, tl.trans(b_h0), PREC)
            b_dk += b_edl[:, None] * _dot(b_u, tl.trans(b_dh), PREC)
    if PRE:
        b_dc, b_dclast = _pre_dc(DCQ, KDH, DCL, n_vs, i_bh, i_t, NT, base_c, b_dc, b_dclast, BT, CS)
    if ORDERED:  # the two C x C halves one after the other, each operand loaded where it is first needed
        b_k = _load_rows(k, rows, m_t, K, BK, 0)
        b_p = _load_rows(p, rows, m_t, K, BK, 0)
        if IPLR:
            b_p = b_p * 2.
        b_dAraw, b_dbeta, b_dc, b_dcf = _cc_grads_f(_dot(b_p, tl.trans(b_k), PREC), b_beta, b_c, b_cf, b_dA,
                                                    b_dbeta, b_dc, b_dcf, BT)
        b_dp += _dot(b_dAraw, b_k, PREC)
        b_dk = _grads_v_terms(U, dh, rows, m_t, i_bh, i_t, NT, base_c, b_edl, _dot(tl.trans(b_dAraw), b_p, PREC_T),
                              K, V, BT, BK, BV, PREC, False)
        b_q = _load_rows(q, rows, m_t, K, BK, 0) * scale
        b_dAqk, b_dc = _cc_grads_o(_dot(b_q, tl.trans(b_k), PREC), b_c, b_dAqk, b_dc, BT)
        b_dq = _grads_v_terms(do, h, rows if DO_ONE else orows, m_t, i_bh, i_t, NT, base_c, b_ec,
                              _dot(b_dAqk, b_k, PREC), K, V, BT, BK, BV, PREC, True)
        b_dk += _dot(tl.trans(b_dAqk), b_q, PREC_T)
    else:
        b_dAraw, b_dAqk, b_dbeta, b_dc, b_dcf = _cc_grads(
            _dot(b_p, tl.trans(b_k), PREC), _dot(b_q, tl.trans(b_k), PREC),
            b_beta, b_c, b_cf, b_dA, b_dAqk, b_dbeta, b_dc, b_dcf, BT)
        b_dp += _dot(b_dAraw, b_k, PREC)
        b_dk += _dot(tl.trans(b_dAraw), b_p, PREC)
        b_dq += _dot(b_dAqk, b_k, PREC)
        b_dk += _dot(tl.trans(b_dAqk), b_q, PREC)
    b_dg = _dg_from_dc(b_dc, b_dcf, b_dclast, BT, IPLR)
    if IPLR:
        b_dp = b_dp * 2.
    _put_grad(dq + p_qk, (b_dq * scale).to(dq.dtype.element_ty), m_tk, SUM_DIRS, acc)
    _put_grad(dk + p_qk, b_dk.to(dk.dtype.element_ty), m_tk, SUM_DIRS, acc)
    _put_grad(dp + p_qk, b_dp.to(dp.dtype.element_ty), m_tk, SUM_DIRS, acc)
    _put_grad(dg + (rows if SUM_DIRS else orows), b_dg, m_t, SUM_DIRS, acc, True)
    _put_grad(dbeta + (rows if SUM_DIRS else orows), b_dbeta, m_t, SUM_DIRS, acc, True)


@triton.jit
def _bwd_grads(
    q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs,
    dq, dk, dv, dp, dg, dbeta, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
    ORDERED: tl.constexpr, PREC_T: tl.constexpr,  # _grads_v_block_pre's order (only with PRE); dL^T P's, dAqk^T Q's
    SUM_DIRS: tl.constexpr,  # ATOMIC_SUM: both directions' gradients added into one [B, T, H, *] buffer each
    DO_ONE: tl.constexpr = False,  # SHARED_DO: one dO for both directions, [B, T, H, V] (_do_rows)
    COMPLETE: tl.constexpr = False,  # COMPLETE_IN_GRADS: _bwd_complete's work done here (n_vs 0)
):
    _bwd_grads_dir(q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs, dq, dk, dv, dp, dg, dbeta,
                   scale, tl.program_id(0) + I0, tl.program_id(1), T, H, K, V, BT, BK, BV, CS, REVERSE, IPLR, PREC,
                   PRE, ORDERED, PREC_T, SUM_DIRS, DO_ONE, 0, COMPLETE)


@triton.jit
def _bwd_grads_both(
    q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs,
    dq, dk, dv, dp, dg, dbeta, scale, n_dirs,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr, I0,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, PRE: tl.constexpr,
    ORDERED: tl.constexpr, PREC_T: tl.constexpr, SUM_DIRS: tl.constexpr, DO_ONE: tl.constexpr = False,
    COMPLETE: tl.constexpr = False,
):
    """ALIGN_BOTH (REVERSE 3, whole chunks): both directions' gradients of one token block from one program, into one
    [B, T, H, *] buffer per input without atomics or a zero fill: the forward scan's chunk i_t stored, a barrier,
    then the reverse scan's chunk NT - 1 - i_t (the same tokens) added to it (_put_grad's ADD 2, acc 1). The grid keeps
    (NT, 2 * B * H), so that the rows follow the folded direction index as in every other kernel (_scan_rows); its
    second half has nothing to do. SUM_DIRS is not read."""
    tl.static_assert(REVERSE == 3, "_bwd_grads_both needs the two scans' chunks aligned (ALIGN_BOTH)")
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    BHH = tl.num_programs(1) // 2
    NT = tl.cdiv(T, CS)
    if i_bh < BHH:
        # a loop, not two inlined copies: nothing of the first direction stays live into the second (two copies
        # compiled to 1036 bytes of spills a thread on sm_90 against one copy's 404); n_dirs is 2, an argument so
        # that the loop is not unrolled
        for d in range(0, n_dirs):
            if d > 0:
                tl.debug_barrier()  # the forward direction's stores seen by every thread of the program
            _bwd_grads_dir(q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs, dq, dk, dv, dp, dg,
                           dbeta, scale, i_t + d * (NT - 1 - 2 * i_t), i_bh + d * BHH, T, H, K, V, BT, BK, BV, CS,
                           REVERSE, IPLR, PREC, PRE, ORDERED, PREC_T, 2, DO_ONE, d, COMPLETE)


@triton.jit
def _bwd_grads_cc(
    q, k, v, p, g, beta, M, U, dU, do, PH, DCQ, KDH, DCL, n_vs,
    dv, dg, dbeta, dAf, dAo, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, DO_ONE: tl.constexpr = False,
):
    """Large head sizes, part 1 of 2: the C x C and per-token gradients of one chunk (dv, dg, dbeta) and
    the two masked C x C gradients dAf = dL * Df, dAo = dAqk * Do for part 2; overwrites dU with
    drhs = M^T dU. Its K-wide products were made by _bwd_dv_local and _bwd_state (PRE), so the V loop holds
    only [BT, BV] and [BT, BT] tiles; q, k, p are loaded after it for P K^T and Q K^T."""
    tl.static_assert(BT == CS, "no short-tail tiles for the split gradient kernels (_tail_rows)")
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    (rows, orows, m_t, NT, base_c, b_c, b_cf, b_clast, b_beta, b_q, b_k, b_p, b_M, b_ec, b_ecf,
     b_edl) = _grads_setup(q, k, p, g, beta, M, scale, i_t, i_bh, T, H, K, BT, BK, REVERSE, IPLR, False, CS)
    o_c = tl.arange(0, BT)
    p_cc = (base_c + o_c)[:, None] * CS + o_c[None, :]
    b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast = _grads_acc_init(BT)
    for i_v in range(0, tl.cdiv(V, BV)):
        (b_h0, b_dh, b_u, b_do, b_drhs, b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast) = _grads_v_block(
            U, U, U, dU, v, do, dv, PH, rows, orows, m_t, i_v, i_bh, i_t, NT, base_c, b_M, b_q, b_k, b_p,
            b_beta, b_clast, b_ec, b_ecf, b_edl, b_dbeta, b_dcf, b_dA, b_dAqk, b_dc, b_dclast, K, V, BT, BK, BV,
            PREC, True, True, False, DO_ONE)
    b_dc, b_dclast = _pre_dc(DCQ, KDH, DCL, n_vs, i_bh, i_t, NT, base_c, b_dc, b_dclast, BT, CS)
    b_q, b_k, b_p = _load_qkp(q, k, p, scale, rows, m_t, K, BK, IPLR)
    b_dAf, b_dAo, b_dbeta, b_dc, b_dcf = _cc_grads(
        _dot(b_p, tl.trans(b_k), PREC), _dot(b_q, tl.trans(b_k), PREC),
        b_beta, b_c, b_cf, b_dA, b_dAqk, b_dbeta, b_dc, b_dcf, BT)
    tl.store(dAf + p_cc, b_dAf.to(dAf.dtype.element_ty))
    tl.store(dAo + p_cc, b_dAo.to(dAo.dtype.element_ty))
    b_dg = _dg_from_dc(b_dc, b_dcf, b_dclast, BT, IPLR)
    tl.store(dg + orows, b_dg, mask=m_t)
    tl.store(dbeta + orows, b_dbeta, mask=m_t)


@triton.jit
def _bwd_grads_k(
    q, k, p, g, beta, U, drhs, h, dh, do, dAf, dAo,
    dq, dk, dp, scale,
    T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, CS: tl.constexpr,
    REVERSE: tl.constexpr, IPLR: tl.constexpr, PREC: tl.constexpr, DO_ONE: tl.constexpr = False,
):
    """Large head sizes, part 2 of 2: dq, dk, dp for one K block (grid axis 2) of one chunk."""
    tl.static_assert(BT == CS, "no short-tail tiles for the split gradient kernels (_tail_rows)")
    i_t, i_bh, i_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    NT = tl.cdiv(T, CS)
    o_c = tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    rows, m_t = _rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    orows = _out_rows(i_t, i_b, T, H, i_h, BT, REVERSE, CS)
    b_g, b_c, b_cf, b_clast = _decays(g, rows, m_t, BT, IPLR)
    b_beta = tl.load(beta + rows, mask=m_t, other=0.).to(tl.float32)
    base_c = (i_bh * NT + i_t) * CS
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    b_dp = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_kv = m_k[:, None] & m_v[None, :]
        p_kv = (i_bh * NT + i_t) * K * V + o_k[:, None] * V + o_v[None, :]
        p_cv = (base_c + o_c)[:, None] * V + o_v[None, :]
        b_h0 = tl.load(h + p_kv, mask=m_kv, other=0.).to(tl.float32)
        b_dh = tl.load(dh + p_kv, mask=m_kv, other=0.).to(tl.float32)
        b_u = tl.load(U + p_cv, mask=m_v[None, :], other=0.).to(tl.float32)
        b_drhs = tl.load(drhs + p_cv, mask=m_v[None, :], other=0.)
        b_do = _load_rows(do, rows if DO_ONE else orows, m_t, V, BV, i_v * BV)
        b_dp += _dot(b_drhs, tl.trans(b_h0), PREC)
        b_dq += _dot(b_do, tl.trans(b_h0), PREC)
        b_dk += _dot(b_u, tl.trans(b_dh), PREC)
    b_dp = -(b_beta * tl.exp(b_cf))[:, None] * b_dp
    b_dq = tl.exp(b_c)[:, None] * b_dq
    b_dk = tl.exp(b_clast - b_c)[:, None] * b_dk
    p_cc = (base_c + o_c)[:, None] * CS + o_c[None, :]
    b_dAf = tl.load(dAf + p_cc).to(tl.float32)
    b_dAo = tl.load(dAo + p_cc).to(tl.float32)
    b_q = _load_rows(q, rows, m_t, K, BK, i_k * BK) * scale
    b_k = _load_rows(k, rows, m_t, K, BK, i_k * BK)
    b_p = _load_rows(p, rows, m_t, K, BK, i_k * BK)
    if IPLR:
        b_p = b_p * 2.
    b_dp += _dot(b_dAf, b_k, PREC)
    b_dk += _dot(tl.trans(b_dAf), b_p, PREC)
    b_dq += _dot(b_dAo, b_k, PREC)
    b_dk += _dot(tl.trans(b_dAo), b_q, PREC)
    if IPLR:
        b_dp = b_dp * 2.
    p_qk = orows[:, None] * K + o_k[None, :]
    m_tk = m_t[:, None] & m_k[None, :]
    tl.store(dq + p_qk, (b_dq * scale).to(dq.dtype.element_ty), mask=m_tk)
    tl.store(dk + p_qk, b_dk.to(dk.dtype.element_ty), mask=m_tk)
    tl.store(dp + p_qk, b_dp.to(dp.dtype.element_ty), mask=m_tk)


def _config(K: int, V: int, dtype: torch.dtype):
    BK = max(16, triton.next_power_of_2(K))
    BV = max(16, min(64 if BK <= 64 else 32, triton.next_power_of_2(V)))
    # float32 inputs: three TF32 products per dot (float32-level accuracy on the tensor cores; "ieee" dots
    # compile to long FMA loops that take minutes to build for these tile sizes)
    prec = "tf32x3" if dtype == torch.float32 else "tf32"
    warps = 4 if BK <= 64 else 8
    return BK, BV, prec, warps


# (kernel name, padded head size BK) -> launch options that replace _config's default warps (and let
# Triton pick the stages) on CUDA; filled from `tools/benchmark.py sweep` on the H100.  Overridable at run
# time through COMBA_KERNEL_CONFIG="name:BK:warps:stages[:BV],..." (what the sweep itself uses; the optional
# BV replaces the kernel's V block).
def _kc(warps: int, stages: int) -> dict:
    return dict(num_warps=warps, num_stages=stages)


KERNEL_CONFIGS: dict[tuple[str, int], dict] = {
    # H100, bf16, 2026-11-23 sweep at (128, 197, 3, 64) and (8, 2048, 16, 128) (docs/bench/*sweep.json)
    ("_fwd_prepare_blocked", 64): _kc(2, 1), ("_fwd_state", 64): _kc(4, 1), ("_fwd_output", 64): _kc(2, 1),
    # ("_bwd_grads", 64): swept for the old one-kernel form; in its ordered form with the precomputed products (the
    # head-64 default since session 26) the H200 gave the same time on 4 warps with 1 stage, 0.44 against 0.22 ms
    # on 8 warps (session 26, call 1)
    ("_bwd_dv_local", 64): _kc(2, 1), ("_bwd_state", 64): _kc(4, 1), ("_bwd_grads", 64): _kc(4, 3),
    ("_fwd_prepare_blocked", 128): _kc(2, 1), ("_fwd_state", 128): _kc(4, 2), ("_fwd_output", 128): _kc(2, 1),
    ("_bwd_dv_local", 128): _kc(4, 3), ("_bwd_state", 128): _kc(4, 1), ("_bwd_grads_cc", 128): _kc(8, 2),
    ("_bwd_grads_k", 64): _kc(4, 3),
}
# H200, bf16, 2026-11-29 sweep at (8, 2048, 16, 128) after the K-wide products moved out of _bwd_grads_cc
# (docs/bench/2026-11-29-h200/sweep128.json)
KERNEL_CONFIGS.update({("_bwd_dv_local", 128): _kc(4, 2), ("_bwd_grads_cc", 128): _kc(4, 1),
                       ("_bwd_state_halves", 128): _kc(2, 1)})  # 0.70 ms (4 warps 0.91, 8 warps 1.58)
# H200, bf16, session 17 (half work and backward buffers, bf16 gradient products): the head-64 state walks with 2
# pipeline stages; both directions' fwd+bwd kernel ms (1 -> 2 stages; 3 stages 0.617 / 0.815 / 1.219): 0.644 ->
# 0.603 at (128, 197, 3, 64), 0.928 -> 0.814 at (32, 1025, 3, 64), 1.165 -> 1.093 at (8, 4097, 3, 64)
# (docs/bench/2026-11-30-h200-s17/call5_*)
KERNEL_CONFIGS.update({("_fwd_state", 64): _kc(4, 2), ("_bwd_state", 64): _kc(4, 2)})
# H200, bf16, 2026-11-29 sweep at (256, 197, 3, 32, 64), Comba-T's mixer with both directions' programs
# (docs/bench/2026-11-29-h200-s5/call2_sweep32.json); the default 4 warps had the prepare at 0.213 ms, 2 warps 0.126
KERNEL_CONFIGS.update({
    ("_fwd_prepare_blocked", 32): _kc(2, 1), ("_fwd_state", 32): _kc(4, 2), ("_fwd_output", 32): _kc(2, 1),
    ("_bwd_dv_local", 32): _kc(2, 1), ("_bwd_state", 32): _kc(4, 2), ("_bwd_grads", 32): _kc(4, 1),
})
# 32-position chunks (COMBA_CHUNK_SIZE=32, untimed): their prepare on the 64-position prepare's 2 warps until swept
KERNEL_CONFIGS.update({("_fwd_prepare_blocked2", 32): _kc(2, 1), ("_fwd_prepare_blocked2", 64): _kc(2, 1)})
# _bwd_dv_local writing the transition walk's maps (TRANSITION_FOLD): compiled here for sm_90 at (8, 4096, 3,
# 32, 64) and (8, 4097, 3, 64, 64) both directions, 2 warps spill 184 / 760 bytes a thread, 4 warps none (Triton 3.6
# built the plain kernel wrong on 4 warps at V = 16 on the H200, session 18, and this one in session 20: _fold keeps
# it to V > 16 on CUDA; test_gpu_bf16_transition_fold covers both)
KERNEL_CONFIGS.update({("_bwd_dv_local_affine", 32): _kc(4, 1), ("_bwd_dv_local_affine", 64): _kc(4, 1)})
# the blocked prepare writing them (TRANSITION_FOLD), for sm_90 compiled here: at (8, 4096, 3, 32, 64) on the
# plain prepare's 2 warps it spills 28 bytes a thread (4 warps none, but they made the plain prepare much slower,
# session 7); at (8, 4097, 3, 64, 64) 1020 bytes on 2 warps, 16 on 4, 4 on 8
KERNEL_CONFIGS.update({("_fwd_prepare_blocked_affine", 32): _kc(2, 1), ("_fwd_prepare_blocked_affine", 64): _kc(4, 1)})
# the transition walk at head size 64 on whole V blocks (one program reads each chunk's [64, 64] map where two read
# it on the 32-wide blocks _state_block_v gives) and 2 pipeline stages. H200, session 25, both directions'
# forward+backward, _affine_scan ms at (8, 4097, 3, 64) / (2, 16385, 3, 64): 0.240 / 0.318 by default (4 warps,
# Triton's stages, V blocks of 32), 0.229 / 0.243 so, 0.241 / 0.275 with 3 stages, 0.238 / 0.252 on 8 warps, 0.260 /
# 0.258 on 32-wide blocks with 1 stage, 0.541 / 0.553 on 16-wide blocks (docs/bench/2026-12-01-h200-s25/call2_log.txt)
KERNEL_CONFIGS.update({("_affine_scan", 64): dict(num_warps=4, num_stages=2, BV=64)})
# _fwd_output at head size 64 runs only in the transition walk (COMPLETE_U) or with COMBA_FUSED_OUTPUT=0: 4 warps
# there, 0.065 -> 0.054 ms at (8, 4097, 3, 64) and (2, 16385, 3, 64) against the H100 sweep's 2 (session 25, call 3;
# _chunk_affine on 2 or 8 warps or 2 stages, _state_carry on 8 warps or V blocks of 64, _bwd_complete on 2 or 8
# warps were all slower than their defaults there)
KERNEL_CONFIGS.update({("_fwd_output", 64): _kc(4, 1)})
# ALIGN_BOTH's _fwd_output_both (session 28, untimed; only after the transition walk, below head size 128): 4 warps
# (sm_90: 251 registers at head 64 and no spills, 2 programs a multiprocessor against _fwd_output's 164 and 3; on 2
# warps at head 32 it spills 332 bytes a thread)
KERNEL_CONFIGS.update({("_fwd_output_both", bk): _kc(4, 1) for bk in (32, 64)})
# and its _bwd_grads_both: _bwd_grads' options (the same work twice in a program)
KERNEL_CONFIGS.update({("_bwd_grads_both", bk): KERNEL_CONFIGS[("_bwd_grads", bk)] for bk in (32, 64)})
# H200, bf16, session 18 sweep under that session's defaults, both directions at (128, 196, 3, 32, 64) and (8, 4096, 3,
# 32, 64) (docs/bench/2026-11-30-h200-s18/call2_*): these entries stayed the best but for _bwd_dv_local, 0.0507 ->
# 0.0445 and 0.0611 -> 0.0564 ms on 4 warps; Triton 3.6 builds that one wrong at V = 16 (the gradients of
# test_gpu_matches_reference[T197-H1-K32-V16-noh0-fwd-iplr-bfloat16] 45-106% off, call 5), so it keeps 2 warps


def _env_kernel_configs() -> dict[tuple[str, int], dict]:
    out = {}
    for item in filter(None, os.environ.get("COMBA_KERNEL_CONFIG", "").split(",")):
        try:
            name, bk, warps, stages, *bv = item.split(":")
            if len(bv) > 1 or (bv and int(bv[0]) not in (16, 32, 64, 128)):
                raise ValueError
            cfg = dict(num_warps=int(warps), num_stages=int(stages))
            if bv:
                cfg["BV"] = int(bv[0])
            out[(name, int(bk))] = cfg
        except ValueError:
            raise ValueError(f"COMBA_KERNEL_CONFIG entries are name:BK:warps:stages[:BV] (BV 16, 32, 64 or 128), "
                             f"got {item!r}") from None
    return out


# (kernel name, K, V, precision, tile rows BT, BV, warps) -> (BV, num_stages) that fitted the device's shared memory
_FITTED: dict = {}


def _state_block_v(BH: int, V: int, BV: int, device: torch.device) -> int:
    """V block of the sequential state kernels: the largest that still gives about two programs per
    multiprocessor (B*H alone is small for long sequences), never below 16. (Smaller blocks at short
    sequences, which would ease the state kernels' register pressure, were slower on the H200: session 12.)"""
    if device.type != "cuda":
        return BV
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    while BV > 16 and BH * triton.cdiv(V, BV) < 2 * sms:
        BV //= 2
    return BV


def configured(name: str, meta: dict, fixed_bv: bool = False) -> dict:
    """meta with the launch options KERNEL_CONFIGS (or COMBA_KERNEL_CONFIG) gives kernel `name` at its padded head
    size, on a GPU; a kernel that must see all of V in one block (fixed_bv) keeps its own V block."""
    if _interpreting():
        return meta
    chosen = _env_kernel_configs().get((name, meta["BK"])) or KERNEL_CONFIGS.get((name, meta["BK"]))
    if chosen:
        meta = dict(meta, **{k: v for k, v in chosen.items() if not (fixed_bv and k == "BV")})
        if "BV" in chosen and not fixed_bv:  # a configured V block no wider than V's padded size
            meta["BV"] = min(meta["BV"], max(16, triton.next_power_of_2(meta["V"])))
    return meta


def launch_options(kernel, meta: dict, fixed_bv: bool = False) -> tuple[str, dict]:
    """The name a launch's options are kept under and its meta with them (configured): the kernel's name, or meta's
    CONFIG_AS for a variant of a kernel with options of its own (taken out of meta: not a kernel argument)."""
    meta = dict(meta)
    name = meta.pop("CONFIG_AS", None) or (kernel.fn.__name__ if hasattr(kernel, "fn") else str(kernel))
    return name, configured(name, meta, fixed_bv)


def _launch(kernel, grid, args, meta, per_v_block: bool = False, fixed_bv: bool = False,
            identity_blocks: bool = False) -> int:
    """Launches kernel; when a configuration needs more shared memory than the device has, retries with
    no software pipelining and then smaller V blocks (and remembers what fitted). A kernel that must see
    all of V in one block (fixed_bv) is only retried without pipelining. per_v_block: grid[0] is the number
    of V blocks (plus, identity_blocks, the K / BV blocks of a group summary's transition matrix). Returns
    the V block used."""
    name, meta = launch_options(kernel, meta, fixed_bv)
    key = (name, meta["K"], meta["V"], meta["PREC"], meta.get("BT"), meta["BV"], meta.get("num_warps"),
           meta.get("OUTPUT"))
    bv, stages = _FITTED.get(key, (meta["BV"], meta.get("num_stages")))
    while True:
        m = dict(meta, BV=bv)
        if stages is not None:
            m["num_stages"] = stages
        if per_v_block:
            g = (triton.cdiv(meta["V"], bv) + (triton.cdiv(meta["K"], bv) if identity_blocks else 0), *grid[1:])
        else:
            g = grid
        try:
            kernel[g](*args, **m)
            _FITTED[key] = (bv, stages)
            return bv
        except triton.runtime.errors.OutOfResources:
            if stages != 1:
                stages = 1
            elif bv > 16 and not fixed_bv:
                bv //= 2
            else:
                raise


def _tail_rows(T: int, BK: int) -> int:
    """Rows of the tile the last chunk runs on: BT, or (TAIL_TILE) 16 or 32 when that chunk holds at most
    that many positions. Not where the K-halves state kernel (from head size 128) runs, nor, unless SPLIT_TAIL, where
    the split gradient kernels (from SPLIT_BWD_MIN_BK: 128 by default, 64 in sessions 14-25) run: they take whole
    chunks; nor beyond TAIL_TILE_MAX_CHUNKS chunks."""
    if (not TAIL_TILE or BK >= STATE_HALVES_MIN_BK or (BK >= SPLIT_BWD_MIN_BK and not SPLIT_TAIL)
            or triton.cdiv(T, BT) > TAIL_TILE_MAX_CHUNKS):
        return BT
    return max(16, triton.next_power_of_2(T - (triton.cdiv(T, BT) - 1) * BT))


def _state_group(NT: int, BH: int, V: int, BK: int, device: torch.device) -> int:
    """Chunks per group of the state kernels' grouped walk, 0 for one walk over every chunk (see
    STATE_GROUP). Grouped: when the walk is long (NT >= 32) and B*H (by 16-wide V blocks) leaves the GPU
    short of programs; about sqrt(NT) / 2 chunks a group, which balances the two group walks against the
    carry over NT / G groups. Not from head size 128 (_bwd_state_halves walks whole sequences)."""
    if BK >= STATE_HALVES_MIN_BK:
        return 0
    if STATE_GROUP != "auto":
        return STATE_GROUP if 0 < STATE_GROUP < NT else 0
    return _auto_group(NT, BH, V, device)


TRANSITION = -1  # _walk_mode's value for the transition walk
# COMBA_TRANSITION_FOLD: the transition walk's maps (A, R) written by kernels that hold nearly all their operands,
# instead of _chunk_affine launches that read them again: "bwd" _bwd_dv_local (q, k, dO and dU's local part), "fwd"
# the blocked prepare (W and U0 in 16-row blocks; a short last chunk's maps still from _chunk_affine; not on
# 32-position chunks), "1" both, "0" neither, "auto" (the default) both below padded head size 64, neither from 64.
# H200, both directions' forward+backward kernel ms: at (8, 4096, 3, 32, 64) 0.702 -> 0.676 folded (session 20); at
# (8, 4097, 3, 64) 1.068 -> 0.997 and at (2, 16385, 3, 64) 1.152 -> 1.074 *not* folded (session 25: there the folded
# prepare needs 4 warps against the plain one's 2, 0.254 against 0.124 ms, and the folded _bwd_dv_local 0.121
# against 0.062, more than the two _chunk_affine launches' 0.115).
TRANSITION_FOLD = os.environ.get("COMBA_TRANSITION_FOLD", "auto")


def _fold(direction: str, V: int, device, BK: int) -> bool:
    """Whether TRANSITION_FOLD folds the maps of this direction's ("fwd" or "bwd") walk at padded head size BK ("auto":
    below 64). Not the backward's on CUDA at V <= 16 (V blocks of 16): Triton 3.6 built the folded _bwd_dv_local
    wrong there on the H200 (bf16 dK / dV off by 20-120%, session 20), as it had the plain kernel on 4 warps in
    session 18; _chunk_affine writes them."""
    if TRANSITION_FOLD not in ("auto", "0", "1", "fwd", "bwd"):
        raise ValueError(f"COMBA_TRANSITION_FOLD must be auto, 0, 1, fwd or bwd, got {TRANSITION_FOLD!r}")
    if direction == "bwd" and V <= 16 and torch.device(device).type == "cuda":
        return False
    return TRANSITION_FOLD in ("1", direction) or (TRANSITION_FOLD == "auto" and BK < 64)


def _complete_in_grads(transition: bool, pre: bool, split: bool, V: int, device) -> bool:
    """Whether the one-kernel gradient completes dU and the dc terms after the backward transition walk
    (COMPLETE_IN_GRADS) instead of _bwd_complete: with the precomputed products, not the split gradient, and not on
    CUDA at V <= 16 (V blocks of 16, where Triton 3.6 builds that form wrong on the H200)."""
    return (transition and COMPLETE_IN_GRADS and pre and not split
            and not (V <= 16 and torch.device(device).type == "cuda"))


def _transition_maps(BH: int, NT: int, K: int, V: int, device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty buffers for the chunks' affine maps of the transition walk, A [BH, NT, K, K] and R [BH, NT, K, V], for
    inputs of dtype: float32, or bf16 with HALF_MAPS for half inputs (A then holds K~^T W alone: _store_transition)."""
    half = HALF_MAPS and dtype in (torch.bfloat16, torch.float16)
    f = dict(device=device, dtype=torch.bfloat16 if half else torch.float32)
    return torch.empty(BH, NT, K, K, **f), torch.empty(BH, NT, K, V, **f)
# COMBA_TRANSITION_GROUP ("auto" by default; 0 off; N: N chunks a group wherever the walk has more than N chunks): the
# transition walk in groups of chunks, as the grouped walk (STATE_GROUP) but over the chunks' affine maps.
_TRANSITION_GROUP_ENV = os.environ.get("COMBA_TRANSITION_GROUP", "auto")
TRANSITION_GROUP: str | int = "auto" if _TRANSITION_GROUP_ENV == "auto" else int(_TRANSITION_GROUP_ENV)


def _auto_group(NT: int, BH: int, V: int, device: torch.device) -> int:
    """The automatic chunks per group of a walk: when it is long (NT >= 32) and B*H (by 16-wide V blocks) leaves the
    GPU short of programs, about sqrt(NT) / 2 chunks a group (balancing the two group walks against the carry
    over NT / G groups); else 0."""
    if device.type != "cuda" or NT < 32:
        return 0
    if BH * triton.cdiv(V, 16) >= 4 * torch.cuda.get_device_properties(device).multi_processor_count:
        return 0
    return min(16, triton.next_power_of_2(round(NT ** 0.5 / 2)))


def _transition_group(NT: int, BH: int, V: int, device: torch.device) -> int:
    """Chunks per group of the transition walk (TRANSITION_GROUP), 0 for one walk: grouped where the grouped walk
    would be (_auto_group), with about sqrt(NT) chunks a group, up to 16 (its steps are lighter than the grouped
    walk's, its carry as heavy). H200, session 19, graphed Comba-T training images/s at 1024px (64 chunks) / 2048px
    (256 chunks): groups of 4 / 8 (the grouped walk's rule) 415 / 102, 8 chunks 423 / 102, 16 422 / 103, 32 414 /
    102; one walk 415 / 89."""
    if TRANSITION_GROUP != "auto":
        return TRANSITION_GROUP if 0 < TRANSITION_GROUP < NT else 0
    return min(16, triton.next_power_of_2(round(NT ** 0.5))) if _auto_group(NT, BH, V, device) else 0


def _walk_mode(NT: int, BH: int, V: int, BK: int, device: torch.device) -> int:
    """How the state kernels walk the chunks: TRANSITION (the transition walk, TRANSITION_WALK), 0 (one walk) or
    G > 0 (the grouped walk, G chunks a group: _state_group)."""
    if TRANSITION_WALK not in ("auto", "0", "1"):
        raise ValueError(f"COMBA_TRANSITION_WALK must be auto, 0 or 1, got {TRANSITION_WALK!r}")
    G = _state_group(NT, BH, V, BK, device)
    # not from head size 128 ([128, 128] float32 maps; untried), whatever COMBA_STATE_HALVES says
    if BK < min(STATE_HALVES_MIN_BK, 128) and (TRANSITION_WALK == "1" or (
            TRANSITION_WALK == "auto" and STATE_GROUP == "auto" and G > 0)):
        return TRANSITION
    return G


def _launch_transition(BH: int, NT: int, tail: int, affine_args, scan_args, meta, backward: bool,
                       maps: tuple | None = None, maps_tail: bool = True) -> None:
    """The transition walk's launches before the completing kernel: each chunk's affine map (_chunk_affine: A into a
    new [BH, NT, K, K] buffer, R into a new [BH, NT, K, V] one, both float32 or with HALF_MAPS bf16 (_transition_maps);
    affine_args up to them exclusive, then
    scale), then the walk over them (_affine_scan, scan_args: the states' buffer, h0, ht), in groups of
    _transition_group chunks where that is not 0 (the groups' summaries, _state_carry, the storing walk), products
    as meta's PREC (TF32 or three-pass, not bf16: the walk's state is not rounded to bf16 as an operand). maps: A
    and R already written (_transition_maps; by the blocked prepare or _bwd_dv_local with TRANSITION_FOLD),
    _chunk_affine not launched, or (maps_tail=False: the blocked prepare takes whole chunks only) launched for a
    short last chunk alone."""
    K, V = meta["K"], meta["V"]
    dev = affine_args[0].device
    A, R = maps or _transition_maps(BH, NT, K, V, dev, affine_args[0].dtype)
    args = (*affine_args[:-1], A, R, affine_args[-1])
    affine_meta = dict(_dot_meta(meta, affine_args[0].dtype), BACKWARD=backward)
    if maps is None:
        _launch_chunks(_chunk_affine, NT, tail, BH, args, affine_meta)
    elif not maps_tail and tail < BT:
        _launch(_chunk_affine, (1, BH), args, dict(affine_meta, BT=tail, I0=NT - 1))
    h, h0, ht = scan_args
    _launch_state(_affine_scan, BH, NT, (A, R, affine_args[2], h, h0, ht),
                  dict(T=meta["T"], H=meta["H"], K=K, V=V, BK=meta["BK"], BV=meta["BV"], CS=meta["CS"],
                       REVERSE=meta["REVERSE"], PREC=meta["PREC"], USE_H0=h0 is not None, STORE_HT=ht is not None,
                       BACKWARD=backward, num_warps=meta["num_warps"]),
                  h0, ht, backward, G=_transition_group(NT, BH, V, dev))


def _launch_state(kernel, BH: int, NT: int, args, meta, h0, ht, backward: bool, G: int | None = None) -> int:
    """A state kernel (_fwd_state, _bwd_state, _bwd_state_halves or _affine_scan; args up to S, HS exclusive) over
    every chunk, or in groups of G chunks (by default _state_group's): the groups' summaries (PHASE 1), the carry
    across groups (_state_carry, which also takes h0 and writes ht: the initial state and final state, or dht and
    dh0 backwards), and each group walked from its starting state (PHASE 2); on a GPU the work buffers are float32
    there for the state kernels (work_buffer_dtypes). Returns the V block of the walk that stores."""
    K, V, BK, BV = meta["K"], meta["V"], meta["BK"], meta["BV"]
    if G is None:
        G = _state_group(NT, BH, V, BK, args[0].device)
    if not G:
        return _launch(kernel, (None, BH), (*args, None, None),
                       dict(meta, BV=_state_block_v(BH, V, BV, args[0].device), G=0, PHASE=0), per_v_block=True)
    NG = triton.cdiv(NT, G)
    f32 = dict(device=args[0].device, dtype=torch.float32)
    S = torch.empty(BH, NG, K, V + K, **f32)
    HS = torch.empty(BH, NG, K, V, **f32)
    bv = _state_block_v(BH * NG, V, BV, args[0].device)
    _launch(kernel, (None, BH, NG), (*args, S, HS), dict(meta, BV=bv, G=G, PHASE=1), per_v_block=True,
            identity_blocks=True)
    # the carry applies the groups' transitions to the whole state (its e^(c_last) part included, which the walks
    # scale exactly): by default three-pass TF32 whatever the inputs, so that half-precision inputs' TF32 does not
    # round the state once per group (a tiny kernel, but on the critical path: CARRY_PREC)
    carry_prec = "tf32x3" if meta["PREC"] == "tf32x3" else CARRY_PREC
    _launch(_state_carry, (None, BH), (S, HS, h0, ht, NG),
            dict(K=K, V=V, BK=BK, BV=bv, PREC=carry_prec, USE_H0=h0 is not None, STORE_HT=ht is not None,
                 BACKWARD=backward), per_v_block=True)
    return _launch(kernel, (None, BH, NG), (*args, S, HS), dict(meta, BV=bv, G=G, PHASE=2), per_v_block=True)


def _launch_chunks(kernel, NT: int, tail: int, BH: int, args, meta, tail_kernel=None, tail_meta=None,
                   tail_args=None) -> None:
    """A chunk-parallel kernel over grid (chunks, BH): the chunks on BT-row tiles and, when tail < BT, the
    last chunk in a launch of its own on a tail-row tile (tail_kernel with tail_meta and tail_args, by default the
    same). I0 (the launch's first chunk) is the kernel's only argument not in meta."""
    n_full = NT - 1 if tail < BT else NT
    if n_full:
        _launch(kernel, (n_full, BH), args, dict(meta, I0=0))
    if tail < BT:
        _launch(tail_kernel or kernel, (1, BH), tail_args or args, dict(tail_meta or meta, BT=tail, I0=NT - 1))


def _grads_one_meta(meta: dict, low: dict, pre: bool) -> dict:
    """The one-kernel _bwd_grads' launch options. With the precomputed products, and unless ORDERED_GRADS is "0":
    BF16_GRADS_ONE's bf16 products (where _dot_meta gives them) in the ordered form, TF32 kept for dL^T P and
    dAqk^T Q (PREC_T); otherwise TF32 (three-pass for float32) in the previous order, or in the ordered form where
    ORDERED_GRADS is "1"."""
    if pre and ORDERED_GRADS != "0" and BF16_GRADS_ONE and low["PREC"] == "bf16":
        return dict(low, PRE=True, ORDERED=True, PREC_T=meta["PREC"])
    return dict(meta, PRE=pre, ORDERED=pre and ORDERED_GRADS == "1", PREC_T=meta["PREC"])


def _dot_meta(meta: dict, dtype: torch.dtype) -> dict:
    """meta with bf16 products (PREC "bf16") where BF16_DOTS applies: bf16 inputs, padded head size up to 64, on a
    GPU (the interpreter miscomputes bf16 dots)."""
    if BF16_DOTS and dtype == torch.bfloat16 and meta["BK"] <= 64 and not _interpreting():
        return dict(meta, PREC="bf16")
    return meta


def _pipeline_meta(T: int, H: int, K: int, V: int, dtype: torch.dtype, reverse: int, iplr: bool) -> tuple[dict, int]:
    """The launch options the forward and backward pipelines share, and the last chunk's tile rows."""
    BK, BV, prec, warps = _config(K, V, dtype)
    tail = _tail_rows(T, BK)
    # ALIGN_BOTH: both directions on the same token blocks (REVERSE 3, _scan_rows), where every chunk is on a whole
    # tile (no short last chunk's tile, which the two scans would meet at opposite ends)
    rev = 3 if reverse == BOTH and ALIGN_BOTH and tail == BT else int(reverse)
    meta = dict(T=T, H=H, K=K, V=V, BT=BT, BK=BK, BV=BV, CS=BT, REVERSE=rev, IPLR=iplr, PREC=prec, num_warps=warps)
    return meta, tail


BOTH = 2  # the ``reverse`` value that runs both scan directions in the same launches


def _directions(reverse: int) -> int:
    if reverse not in (0, 1, BOTH):
        raise ValueError(f"reverse must be 0 (forward), 1 (reverse) or {BOTH} (both directions), got {reverse!r}")
    return 2 if reverse == BOTH else 1


def work_buffer_shapes(B: int, T: int, H: int, K: int, V: int, directions: int = 1) -> dict[str, tuple]:
    """Shapes of the work buffers the forward keeps for the backward (the inverse M, the WY factor W, u, and the
    state at each chunk start), for one call of one or both directions (their dtypes: buffer_dtypes)."""
    BH, NT = directions * B * H, triton.cdiv(T, BT)
    return dict(M=(BH, NT, BT, BT), W=(BH, NT * BT, K), U=(BH, NT * BT, V), h=(BH, NT, K, V))


def work_buffer_dtypes(B: int, T: int, H: int, K: int, V: int, directions: int, dtype: torch.dtype,
                       device) -> tuple[torch.dtype, torch.dtype, torch.dtype, torch.dtype]:
    """The dtypes of M, W, U, h for one call on this device: buffer_dtypes, float32 where this shape's state
    walk is grouped on a GPU (the interpreter's grouped walk keeps half buffers)."""
    device = torch.device(device)
    grouped = device.type == "cuda" and _walk_mode(
        triton.cdiv(T, BT), directions * B * H, V, _config(K, V, dtype)[0], device) > 0
    return buffer_dtypes(dtype, grouped)


def empty_work_buffers(B: int, T: int, H: int, K: int, V: int, directions: int, dtype: torch.dtype,
                       device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Empty M, W, U, h for inputs of this dtype: work_buffer_shapes in work_buffer_dtypes. The forward's
    allocation, which the custom ops' fake implementations repeat."""
    return tuple(torch.empty(s, device=device, dtype=dt) for s, dt in
                 zip(work_buffer_shapes(B, T, H, K, V, directions).values(),
                     work_buffer_dtypes(B, T, H, K, V, directions, dtype, device)))


def comba_fwd_triton(q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse,
                     need_output: bool = True, sum_out: bool = False):
    """Returns (o, final_state, saved) where saved holds what the backward needs. ``reverse``: 0 forward
    scan, 1 reverse scan, BOTH: both scans in the same launches (2 * B * H programs, no initial or final
    state); o is then [2, B, T, H, V] (forward scan's output first), or with sum_out their sum [B, T, H, V] (added
    by the output kernels where they can: ATOMIC_SUM, ALIGN_BOTH). need_output=False: only the buffers
    (o is None; what the backward runs when RECOMPUTE_BUFFERS)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    nd = _directions(reverse)
    if nd == 2 and (initial_state is not None or output_final_state):
        raise ValueError("both directions in one launch take no initial state and return no final state")
    BH = nd * B * H
    NT = triton.cdiv(T, BT)
    meta, tail = _pipeline_meta(T, H, K, V, q.dtype, reverse, iplr)
    dev = q.device
    f32 = torch.float32
    M, W, U, h = empty_work_buffers(B, T, H, K, V, nd, q.dtype, dev)
    ht = torch.empty(B, H, K, V, device=dev, dtype=f32) if output_final_state else None
    transition = _walk_mode(NT, BH, V, meta["BK"], dev) == TRANSITION
    # ALIGN_BOTH after the transition walk: both directions' outputs summed by _fwd_output_both (sum_out)
    both_out = need_output and sum_out and transition and meta["REVERSE"] == 3
    out_add = need_output and nd == 2 and sum_out and _atomic_sum(v.dtype) and not both_out
    add_pair = need_output and nd == 2 and sum_out and not (out_add or both_out)  # summed here, after the kernels
    zero_o = {}  # the summed output's zero fill inside the prepare kernel (ZERO_IN_KERNELS)
    if not need_output:
        o = None
    elif out_add and ZERO_IN_KERNELS:
        o = torch.empty_like(v)
        zero_o = dict(ZO=o, ZERO_O=True)
    elif out_add:
        o = torch.zeros_like(v)
    else:  # both directions: a pair unless _fwd_output_both sums it
        o = v.new_empty(2, *v.shape) if nd == 2 and not both_out else torch.empty_like(v)
    prep_args = (k, p, v, g, beta, M, W, U)
    low = _dot_meta(meta, q.dtype)
    # the transition walk's maps of whole chunks written by the blocked prepare (_fold: TRANSITION_FOLD)
    folded = transition and BLOCKED_INVERSE and BT == 64 and _fold("fwd", V, dev, meta["BK"])
    maps = _transition_maps(BH, NT, K, V, dev, q.dtype) if folded else None
    if BLOCKED_INVERSE and BT == 64:  # a short last chunk's inverse by row substitution on its small tile
        _launch_chunks(_fwd_prepare_blocked, NT, tail, BH, (*prep_args, *(maps or (None, None))),
                       dict(low, DOUBLING=DOUBLING_INVERSE, AFFINE=maps is not None, **zero_o,
                            **({"CONFIG_AS": "_fwd_prepare_blocked_affine"} if maps is not None else {})),
                       tail_kernel=_fwd_prepare, tail_meta=dict(low, **zero_o), tail_args=prep_args)
    elif BLOCKED_INVERSE:
        _launch_chunks(_fwd_prepare_blocked2, NT, tail, BH, prep_args, dict(low, DOUBLING=DOUBLING_INVERSE, **zero_o),
                       tail_kernel=_fwd_prepare, tail_meta=dict(low, **zero_o))
    else:
        _launch_chunks(_fwd_prepare, NT, tail, BH, prep_args, dict(low, **zero_o))
    if transition:  # the states, then u and the output chunk-parallel
        _launch_transition(BH, NT, tail, (k, q, g, W, U, U, scale), (h, initial_state, ht), meta, backward=False,
                           maps=maps, maps_tail=False)  # the blocked prepare wrote whole chunks' maps only
        if both_out:
            _launch(_fwd_output_both, (NT, B * H), (q, k, g, W, U, h, o, scale),
                    {n: low[n] for n in ("T", "H", "K", "V", "BT", "BK", "BV", "IPLR", "PREC", "num_warps")})
        else:
            _launch_chunks(_fwd_output, NT, tail, BH, (q, k, g, W, U, h, o, scale),
                           dict(low, COMPLETE_U=True, OUTPUT=need_output, OUT_ADD=out_add))
        return (torch.add(o[0], o[1]) if add_pair else o), ht, (M, W, U, h)
    # the output made by the state walk below head size 128 (FUSED_OUTPUT), else by _fwd_output
    fused = need_output and FUSED_OUTPUT and meta["BK"] < STATE_HALVES_MIN_BK
    _launch_state(_fwd_state, BH, NT, (k, g, W, U, h, initial_state, ht, q, o, scale),
                  dict(low, USE_H0=initial_state is not None, STORE_HT=ht is not None, TAIL=tail, OUTPUT=fused,
                       OUT_ADD=out_add),
                  initial_state, ht, backward=False)
    if need_output and not fused:
        _launch_chunks(_fwd_output, NT, tail, BH, (q, k, g, W, U, h, o, scale), dict(meta, OUT_ADD=out_add))
    return (torch.add(o[0], o[1]) if add_pair else o), ht, (M, W, U, h)



# the fused forward keeps the whole [K, V] state of one (batch, head) in registers: up to this many elements
FUSED_MAX_STATE = 64 * 128


def fused_bidir_supported(K: int, V: int) -> bool:
    return BT == 64 and max(16, triton.next_power_of_2(K)) * max(16, triton.next_power_of_2(V)) <= FUSED_MAX_STATE


def comba_bidir_fwd_fused(q, k, v, p, g, beta, scale, iplr, mean):
    """Both directions' outputs summed (or averaged), forward only, one launch of B*H programs."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    if not fused_bidir_supported(K, V):
        raise ValueError(f"the fused bidirectional forward takes 64-position chunks (COMBA_CHUNK_SIZE={BT}) and a "
                         f"state of at most {FUSED_MAX_STATE} elements (padded K x V), got K={K}, V={V}")
    BK, _, prec, warps = _config(K, V, q.dtype)
    BV = max(16, triton.next_power_of_2(V))
    o = torch.empty_like(v)
    meta = dict(T=T, H=H, K=K, V=V, BT=BT, BK=BK, BV=BV, IPLR=iplr, PREC=prec, MEAN=mean, DOUBLING=DOUBLING_INVERSE,
                num_warps=warps)
    _launch(_fused_bidir_fwd, (B * H,), (q, k, v, p, g, beta, o, scale), meta, fixed_bv=True)
    return o


def _zero_all(*tensors):
    """Zeroes the tensors with PyTorch's multi-tensor kernels: one list (a launch or two) per dtype instead of a
    fill launch each."""
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        torch._foreach_zero_([t for t in tensors if t.dtype == dtype])


def comba_bwd_triton(q, k, v, p, g, beta, scale, saved, do, dht, need_dh0, iplr, reverse, sum_directions=True):
    """Gradients of the inputs (and of the initial state when need_dh0). With reverse == BOTH, do is
    [2, B, T, H, V] (one per direction) or [B, T, H, V] (one dO for both: the gradient of their summed outputs,
    SHARED_DO; the kernels read it through _do_rows), and each gradient is the sum of both directions', or with
    sum_directions=False both directions' gradients, [2, *input.shape] (dg, dbeta float32)."""
    M, W, U, h = saved
    B, T, H, K = q.shape
    V = v.shape[-1]
    nd = _directions(reverse)
    if nd == 2 and (dht is not None or need_dh0):
        raise ValueError("both directions in one launch have no initial or final state to differentiate")
    BH = nd * B * H
    NT = triton.cdiv(T, BT)
    meta, tail = _pipeline_meta(T, H, K, V, q.dtype, reverse, iplr)
    do_one = nd == 2 and do.shape == v.shape  # one dO shared by both directions
    if not do_one and do.shape != (*((nd,) if nd == 2 else ()), *v.shape):
        raise ValueError(f"do must be shaped like the output, {tuple(v.shape)}"
                         f"{' or (2, *that) for both directions' if nd == 2 else ''}; got {tuple(do.shape)}")
    meta = dict(meta, DO_ONE=do_one)
    BK = meta["BK"]
    split = BK >= SPLIT_BWD_MIN_BK
    pre = split or BK >= PRE_MIN_BK or BK in PRE_BKS  # the split gradient kernel needs the precomputed products
    f32 = dict(device=q.device, dtype=torch.float32)
    # the backward's own buffers: dU float32 whatever the work buffers' dtype; dh, PH, dAf, dAo in h's (half or
    # float32) with HALF_BWD_BUFFERS
    half = dict(device=q.device, dtype=h.dtype if HALF_BWD_BUFFERS else torch.float32)
    dU = torch.empty(U.shape, **f32)
    dh = torch.empty(h.shape, **half)
    dh0 = torch.empty(B, H, K, V, **f32) if need_dh0 else None
    if pre:
        PH = torch.empty(U.shape, **half)
        DCQ = torch.empty(BH * NT * BT, **f32)
        # one slice per V block of _bwd_state, enough for the smallest block _launch may fall back to
        KDH = torch.empty(triton.cdiv(V, 16), BH * NT * BT, **f32)
        DCL = torch.empty(triton.cdiv(V, 16), BH * NT, **f32)
    else:
        PH = DCQ = KDH = DCL = U  # not read
    low = _dot_meta(meta, q.dtype)
    transition = _walk_mode(NT, BH, V, BK, q.device) == TRANSITION
    # the transition walk's maps written by _bwd_dv_local (_fold: TRANSITION_FOLD), else by _chunk_affine
    maps = (_transition_maps(BH, NT, K, V, q.device, q.dtype) if transition and _fold("bwd", V, q.device, BK)
            else None)
    _launch_chunks(_bwd_dv_local, NT, tail, BH, (q, k, p, g, do, dU, h, PH, DCQ, W, *(maps or (None, None)), scale),
                   dict(low, PRE=pre, AFFINE=maps is not None,
                        **({"CONFIG_AS": "_bwd_dv_local_affine"} if maps is not None else {})))
    # the one-kernel gradient completing dU after the transition walk (COMPLETE_IN_GRADS), with the precomputed
    # products: no _bwd_complete, no K dh slices to add (n_vs 0)
    complete = _complete_in_grads(transition, pre, split, V, q.device)
    if transition:  # dh's walk, then dU and the dc terms chunk-parallel
        _launch_transition(BH, NT, tail, (k, q, g, W, dU, do, scale), (dh, dht, dh0), meta, backward=True, maps=maps)
        if not complete:
            _launch_chunks(_bwd_complete, NT, tail, BH, (k, g, U, h, dh, dU, KDH, DCL), dict(low, PRE=pre))
        n_vs = 0 if complete else 1
    else:
        # from head size 128 the state kernel works in K halves (COMBA_STATE_HALVES=0: whole K tiles)
        state_kernel = _bwd_state_halves if BK >= STATE_HALVES_MIN_BK else _bwd_state
        bv_state = _launch_state(state_kernel, BH, NT, (q, k, g, W, do, dU, dh, dht, dh0, scale, U, h, KDH, DCL),
                                 dict(low, USE_DHT=dht is not None, STORE_DH0=need_dh0, PRE=pre, TAIL=tail),
                                 dht, dh0, backward=True)
        n_vs = triton.cdiv(V, bv_state)
    summed = nd == 2 and sum_directions and not split
    # ALIGN_BOTH: _bwd_grads_both sums both directions in one program per token block (no atomics, no zero fill);
    # else ATOMIC_SUM: _bwd_grads adds them atomically into one zeroed buffer per input
    both = summed and meta["REVERSE"] == 3
    add = summed and not both and _atomic_sum(q.dtype)
    one_buffer = both or add
    if one_buffer:
        dq, dk, dp, dv = (torch.empty_like(x) for x in (q, k, p, v))
        dg, dbeta = torch.empty(g.shape, **f32), torch.empty(beta.shape, **f32)
        if add:  # zeroed by multi-tensor launches (one list a dtype) instead of six fills
            _zero_all(dq, dk, dp, dv, dg, dbeta)
    else:
        dq, dk, dp, dv = (torch.empty(nd, *x.shape, device=x.device, dtype=x.dtype) for x in (q, k, p, v))
        dg = torch.empty(nd, *g.shape, **f32)
        dbeta = torch.empty(nd, *beta.shape, **f32)
    grads_args = (q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs, dq, dk, dv, dp, dg, dbeta, scale)
    if both:  # ALIGN_BOTH keeps every chunk on a whole tile (no tail launch)
        _launch(_bwd_grads_both, (NT, BH), (*grads_args, 2),
                dict(_grads_one_meta(meta, low, pre), SUM_DIRS=2, I0=0, COMPLETE=complete))
    elif not split:
        _launch_chunks(_bwd_grads, NT, tail, BH, grads_args,
                       dict(_grads_one_meta(meta, low, pre), SUM_DIRS=add, COMPLETE=complete))
    else:
        dAf, dAo = torch.empty(M.shape, **half), torch.empty(M.shape, **half)
        gmeta = low if BF16_GRADS else meta
        n_full = NT - 1 if tail < BT else NT  # whole chunks (a short last one: SPLIT_TAIL, below)
        # no K-wide tile in its V loop: wider V blocks than the other kernels at this head size
        if n_full:
            _launch(_bwd_grads_cc, (n_full, BH),
                    (q, k, v, p, g, beta, M, U, dU, do, PH, DCQ, KDH, DCL, n_vs, dv, dg, dbeta, dAf, dAo, scale),
                    dict(gmeta, BV=max(16, min(64, triton.next_power_of_2(V)))))
            bk = min(BK, 64)
            _launch(_bwd_grads_k, (n_full, BH, triton.cdiv(K, bk)),
                    (q, k, p, g, beta, U, dU, h, dh, do, dAf, dAo, dq, dk, dp, scale), dict(gmeta, BK=bk))
        if tail < BT:  # the short last chunk on its own tile through the one-kernel gradient, TF32, previous order
            _launch(_bwd_grads, (1, BH),
                    (q, k, v, p, g, beta, M, U, dU, h, dh, do, PH, DCQ, KDH, DCL, n_vs, dq, dk, dv, dp, dg, dbeta,
                     scale), dict(meta, PRE=True, ORDERED=False, PREC_T=meta["PREC"], BT=tail, I0=NT - 1,
                                  SUM_DIRS=False))
    if nd == 2 and not sum_directions:
        return dq, dk, dv, dp, dg, dbeta, dh0
    if one_buffer:  # summed by _bwd_grads (_bwd_grads_both) already
        return dq, dk, dv, dp, dg.to(g.dtype), dbeta.to(beta.dtype), dh0
    # both directions: one elementwise sum per gradient (each direction's part was rounded to the input dtype). Not
    # x.sum(0): PyTorch's reduction over a leading axis of 2 took 0.082 ms for dq, dk, dv, dp at (128, 197, 3, 64) on
    # the H200 (session 26, prof_all.py), about three times what reading and writing them costs. Same bits: both
    # round the float32 sum of the two parts once.
    dq, dk, dv, dp, dg, dbeta = (torch.add(x[0], x[1]) if nd == 2 else x[0] for x in (dq, dk, dv, dp, dg, dbeta))
    return dq, dk, dv, dp, dg.to(g.dtype), dbeta.to(beta.dtype), dh0
