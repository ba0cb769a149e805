"""Chunkwise Comba in plain PyTorch: the CPU path (differentiable through autograd).

Per chunk of ``C`` tokens, with ``c`` the in-chunk cumulative log decay and ``cf`` the decay the
feedback term sees (``c - g`` for SPLR, ``c`` for IPLR, whose feedback key is also doubled):

    L   = strict_lower(P K^T * exp(cf_i - c_j))
    A   = I + Diag(beta) L                            (unit lower triangular, one solve per chunk)
    U0  = A^-1 Diag(beta) V,   W = A^-1 Diag(beta exp(cf)) P
    u   = U0 - W h                                    (h: state at the chunk start, [K, V])
    o   = Diag(exp(c)) Q h + lower(Q K^T * exp(c_i - c_j)) u
    h'  = exp(c_last) h + K^T Diag(exp(c_last - c)) u

Everything that does not depend on the state is computed for all chunks at once; only the short
state pass walks the chunks in order.  Computes in float32 (float64 for float64 inputs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_SIZE = 64


def _chunked(q, k, v, p, g, beta, scale: float, chunk_size: int, reverse: bool = False):
    """The inputs in the compute dtype (float32, float64 for float64 inputs), in chunks: [B, H, NT, C, D]
    (g, beta [B, H, NT, C]), q scaled, the last chunk padded with zeros. Returns (tensors, C, NT)."""
    B, T, H, _ = q.shape
    cdt = torch.float64 if q.dtype == torch.float64 else torch.float32
    xs = [x.to(cdt) for x in (q, k, v, p, g, beta)]
    if reverse:
        xs = [x.flip(1) for x in xs]
    C = chunk_size if T >= chunk_size else max(T, 1)
    NT = (T + C - 1) // C
    pad = NT * C - T

    def prep(x):  # [B, T, H, D] -> [B, H, NT, C, D]
        x = x.transpose(1, 2)
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(B, H, NT, C, x.shape[-1])

    q, k, v, p = (prep(x) for x in xs[:4])
    g, beta = (prep(x[..., None])[..., 0] for x in xs[4:])
    return (q * scale, k, v, p, g, beta), C, NT


def _scan(q, k, v, p, beta, PK, QK, dec_f, dec_o, cf, cq, ck_end, decay_last, upper: bool, chunks, h, acc=None):
    """One scan direction over chunked inputs ([B, H, NT, C, *], from _chunked). ``dec_f`` / ``dec_o`` are the
    feedback and output decay matrices (strict / inclusive triangles, lower for the forward scan, upper for the
    reverse), ``cf`` the feedback decay of W, ``cq`` the queries' decay from where the scan enters the chunk,
    ``ck_end`` the keys' decay to where it leaves it, ``chunks`` the order it walks them, ``h`` the state
    before the first [B * H, K, V]. Returns (o in the chunked layout [B, H, NT, C, V] (``_token_major`` turns
    it into [B, T', H, V], T' = NT * C), final state [B, H, K, V]). ``acc``: another scan's output in the
    chunked layout, to which this scan's output is added by the products themselves (baddbmm)."""
    B, H, NT, C, V = v.shape
    K = k.shape[-1]
    eye = torch.eye(C, dtype=q.dtype, device=q.device)
    # A^-1 itself (a solve against I) and then products: faster on the CPU than one solve against both
    # right-hand sides
    Ainv = torch.linalg.solve_triangular(eye + beta[..., None] * (PK * dec_f), eye.expand_as(PK), upper=upper,
                                         unitriangular=True)
    U0 = Ainv @ (beta[..., None] * v)
    W = Ainv @ ((beta * cf.exp())[..., None] * p)
    k_end_t = (k * ck_end.exp()[..., None]).transpose(-1, -2)
    # the state pass on [B * H, ...] views (B and H are adjacent in every operand), multiply-adds fused: only
    # what the next state needs walks the chunks; the outputs then come from the states at the chunk starts
    # in two batched products
    hs, us = [None] * NT, [None] * NT
    for n in chunks:
        u = torch.baddbmm(U0[:, :, n].flatten(0, 1), W[:, :, n].flatten(0, 1), h, alpha=-1.0)
        hs[n], us[n] = h, u
        h = torch.baddbmm(decay_last[:, :, n].flatten(0, 1) * h, k_end_t[:, :, n].flatten(0, 1), u)
    hs, us = (torch.stack(x, dim=1).unflatten(0, (B, H)) for x in (hs, us))
    # the multiply-adds fused: in place into the buffer, or out of place under autocast (whose baddbmm casts
    # all three operands alike; an in-place one would mix a bf16 buffer with float32 products)
    inplace = not torch.is_autocast_enabled(q.device.type)

    def madd(o, a, b):
        return o.baddbmm_(a, b) if inplace else torch.baddbmm(o, a, b)

    QKd, us3 = (QK * dec_o).flatten(0, 2), us.flatten(0, 2)
    o = QKd @ us3 if acc is None else madd(acc.flatten(0, 2), QKd, us3)
    o = madd(o, (q * cq.exp()[..., None]).flatten(0, 2), hs.flatten(0, 2)).view(B, H, NT, C, V)
    return o, h.reshape(B, H, K, V)


def _token_major(o):
    """[B, H, NT, C, V] chunked outputs as [B, NT * C, H, V] (a view)."""
    B, H, NT, C, V = o.shape
    return o.reshape(B, H, NT * C, V).transpose(1, 2)


def comba_chunk_torch(
    q, k, v, p, g, beta,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    variant: str = "splr",
    reverse: bool = False,
    chunk_size: int = CHUNK_SIZE,
):
    B, T, H, K = q.shape
    V = v.shape[-1]
    out_dtype = v.dtype
    (q, k, v, p, g, beta), C, NT = _chunked(q, k, v, p, g, beta, scale, chunk_size, reverse)
    cdt = q.dtype
    if variant == "iplr":
        p = 2.0 * p
    c = g.cumsum(-1)
    idx = torch.arange(C, device=q.device)
    incl = idx[:, None] >= idx[None, :]
    # exp(c_i - c_j) on and below the diagonal, 0 above; the entries above are set to 0 before the exp
    # (an exp of the most negative float, the obvious mask, takes a slow path on the CPU: 6x the time)
    dec_o = torch.where(incl, c[..., :, None] - c[..., None, :], 0.0).exp() * incl
    if variant == "iplr":
        dec_f, cf = dec_o.tril(-1), c
    else:
        # exp(c_{i-1} - c_j) for j < i is row i-1 of dec_o: shift the rows down instead of a second exp
        dec_f, cf = F.pad(dec_o[..., :-1, :], (0, 0, 1, 0)), c - g
    c_last = c[..., -1:]
    h = q.new_zeros(B * H, K, V) if initial_state is None else initial_state.to(cdt).reshape(B * H, K, V)
    o, h = _scan(q, k, v, p, beta, p @ k.transpose(-1, -2), q @ k.transpose(-1, -2), dec_f, dec_o, cf, c,
                 c_last - c, c_last.exp()[..., None], False, range(NT), h)
    o = _token_major(o)[:, :T]
    if reverse:
        o = o.flip(1)
    final = None
    if output_final_state:
        final = h if cdt == torch.float64 else h.float()
    return o.to(out_dtype), final


def comba_chunk_torch_bidir(q, k, v, p, g, beta, scale: float, variant: str = "splr", chunk_size: int = CHUNK_SIZE,
                            merge_sum: bool = False):
    """Both scan directions (no initial states): (o_fwd, o_rev), without flipped copies of the inputs; with
    ``merge_sum`` their sum, accumulated by the output products (baddbmm; no separate adds).

    The reverse scan runs over the same chunks in the other order, each walked from its last token to its
    first. Its in-chunk matrices are the upper triangles of the same products: P K^T and Q K^T are computed
    once for both directions. With ``e = c - g`` (the exclusive cumulative log decay), the reverse scan's
    decays are ``exp(e_j - e_i)`` for ``j >= i`` where the forward's are ``exp(c_i - c_j)`` for ``i >= j``,
    so one exp serves both triangles. Padding at the end of the last chunk is a run of identity steps
    (``g = beta = 0``, ``k = v = 0``) at the start of the reverse scan, where the state is still zero."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    out_dtype = v.dtype
    (q, k, v, p, g, beta), C, NT = _chunked(q, k, v, p, g, beta, scale, chunk_size)
    if variant == "iplr":
        p = 2.0 * p
    c = g.cumsum(-1)            # forward: log decay from the chunk start through token i
    e = c - g                   # the same, before token i
    c_last = c[..., -1:]
    cr = c_last - e             # reverse: log decay from the chunk end through token i
    idx = torch.arange(C, device=q.device)
    lower, upper = idx[:, None] >= idx[None, :], idx[:, None] <= idx[None, :]
    # exp(c_i - c_j) on and below the diagonal, exp(e_j - e_i) above it (1 on it); the masked entries are set
    # to 0 before the exp (an exp of the most negative float takes a slow path on the CPU)
    M = torch.where(lower, c[..., :, None] - c[..., None, :], e[..., None, :] - e[..., :, None]).exp()
    dec_o, dec_or = M * lower, M * upper
    if variant == "iplr":
        dec_f, dec_fr = dec_o.tril(-1), dec_or.triu(1)
        cf, cfr = c, cr
    else:
        # exp(c_{i-1} - c_j), j < i, is row i-1 of dec_o; the reverse's exp(e_j - e_{i+1}), j > i, row i+1 of dec_or
        dec_f, dec_fr = F.pad(dec_o[..., :-1, :], (0, 0, 1, 0)), F.pad(dec_or[..., 1:, :], (0, 0, 0, 1))
        cf, cfr = e, cr - g
    PK = p @ k.transpose(-1, -2)
    QK = q @ k.transpose(-1, -2)
    decay_last = c_last.exp()[..., None]  # [B, H, NT, 1, 1]
    h0 = q.new_zeros(B * H, K, V)
    common = (q, k, v, p, beta, PK, QK)
    fwd = (dec_f, dec_o, cf, c, c_last - c, decay_last, False, range(NT), h0)
    rev = (dec_fr, dec_or, cfr, cr, e, decay_last, True, range(NT - 1, -1, -1), h0)
    if merge_sum:
        o, _ = _scan(*common, *fwd)
        o, _ = _scan(*common, *rev, acc=o)
        return _token_major(o)[:, :T].to(out_dtype)
    o_f, _ = _scan(*common, *fwd)
    o_r, _ = _scan(*common, *rev)
    return _token_major(o_f)[:, :T].to(out_dtype), _token_major(o_r)[:, :T].to(out_dtype)
