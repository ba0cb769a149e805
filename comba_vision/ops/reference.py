"""Step-by-step Comba recurrence: the ground truth every other implementation is tested against.

State convention (per batch and head): ``S`` has shape ``[K, V]`` (fla's layout), so the paper's
``S_t = S_{t-1} (alpha_t I - beta~_t k_t k_t^T) + beta_t v_t k_t^T`` reads, in step form,

    v_new_t = beta_t * (v_t - S_{t-1}^T p_t)                  (SPLR)
    v_new_t = beta_t * (v_t - 2 alpha_t S_{t-1}^T p_t)        (IPLR)
    S_t     = alpha_t S_{t-1} + k_t v_new_t^T
    o_t     = S_t^T (scale * q_t)

with ``alpha_t = exp(g_t)``.  The feedback term reads ``S_{t-1}`` *before* the decay (the paper's Eq. 5;
fla's ``naive_recurrent_comba`` decays first and so computes a different recurrence).  ``q`` is the
query after output correction (``q - d k``): the operator does not know ``d``.
"""
from __future__ import annotations

import torch


def comba_recurrent_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    variant: str = "splr",
    reverse: bool = False,
    dtype: torch.dtype = torch.float64,
):
    """Plain loop over time. Inputs ``[B, T, H, K]`` / ``[B, T, H, V]`` / ``[B, T, H]``.

    Computes in ``dtype`` (float64 by default) and returns ``(o, final_state)`` in that dtype;
    differentiable with autograd, so it also gives reference gradients.
    """
    if variant not in ("splr", "iplr"):
        raise ValueError(f"variant must be 'splr' or 'iplr', got {variant!r}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    if scale is None:
        scale = K ** -0.5
    q, k, v, p, g, beta = (x.to(dtype) for x in (q, k, v, p, g, beta))
    S = q.new_zeros(B, H, K, V)
    if initial_state is not None:
        S = S + initial_state.to(dtype)
    outs = [None] * T
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        alpha = g[:, t].exp()[..., None]                         # [B, H, 1]
        fb = torch.einsum("bhkv,bhk->bhv", S, p[:, t])           # S^T p
        if variant == "iplr":
            fb = 2.0 * alpha * fb
        v_new = beta[:, t, :, None] * (v[:, t] - fb)             # [B, H, V]
        S = alpha[..., None] * S + k[:, t, :, :, None] * v_new[:, :, None, :]
        outs[t] = torch.einsum("bhkv,bhk->bhv", S, q[:, t] * scale)
    o = torch.stack(outs, dim=1) if T > 0 else v.new_zeros(B, 0, H, V)
    return o, (S if output_final_state else None)
