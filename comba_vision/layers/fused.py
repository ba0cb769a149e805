"""Drop-in nn.LayerNorm and nn.Linear for the Comba blocks: the same parameters and state dicts, the fused
Triton kernels of comba_vision.ops where ops.block_kernels says so (by default on CUDA inside the package's
CUDA graphs, where they save device time; an eager step is host-bound and keeps PyTorch's kernels),
PyTorch's modules elsewhere."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.modules.module as _module_mod

from ..ops.layer_norm import add_layer_norm, folds, fused_norm_applies, layer_norm
from ..ops.linear import Pieces, check_act, fused_linear_applies, linear, stack_pieces

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def watched(module: nn.Module | None = None) -> bool:
    """Whether a hook would see a call of this module (None: whether any global module hook is set)."""
    if module is None:
        return any(getattr(_module_mod, "_global" + d, None) for d in _HOOK_DICTS)
    return any(getattr(module, d, None) for d in _HOOK_DICTS)


class FusedLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last dimension. Fused (see the module docstring; with weight and bias): one Triton
    kernel forward and one backward; under autocast the output is then in the autocast dtype, which is what
    the Linear layers that read it cast it to anyway."""

    def _fused(self, x: torch.Tensor) -> bool:
        return (fused_norm_applies(x) and len(self.normalized_shape) == 1 and self.weight is not None
                and self.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused(x):
            return layer_norm(x, self.weight, self.bias, self.eps)
        return super().forward(x)

    def residual(self, x: torch.Tensor, r: torch.Tensor, rb: torch.Tensor | None = None,
                 fold: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, self(s)) for s = x + r (with rb, the bias of the Linear layer that made r: x + (r + rb)): a residual
        add and this norm, fused into one kernel each way where the norm is fused (ops.layer_norm.add_layer_norm,
        whose backward then also gives rb's gradient). fold (where folds says so): the second result is x^ of s,
        for a Linear layer that takes this norm's weight and bias folded in (ops.linear's fold)."""
        if self._fused(x) and r.shape == x.shape:
            return add_layer_norm(x, r, self.weight, self.bias, self.eps, rb=rb, fold=fold)
        if fold:
            raise ValueError("FusedLayerNorm.residual: fold needs the fused norm (see folds)")
        s = x + (r if rb is None else r + rb)
        return s, self(s)

    def normed(self, x: torch.Tensor) -> torch.Tensor:
        """x^ = (x - mean) * rstd, the fused norm's output before its weight and bias, for a Linear layer that takes
        them folded in (ops.linear's fold; only where folds says so)."""
        if not self._fused(x):
            raise ValueError("FusedLayerNorm.normed needs the fused norm (see folds)")
        return layer_norm(x, self.weight, self.bias, self.eps, fold=True)

    def folds(self, x: torch.Tensor, r: torch.Tensor | None = None) -> bool:
        """Whether this norm of the stream x (plus r: residual) can hand x^ to a Linear layer that folds its weight
        and bias in: fused, unwatched, and where ops.layer_norm.folds says it saves memory (a backward to come)."""
        return (self._fused(x) and not watched(self) and (r is None or r.shape == x.shape)
                and folds(x, self.weight, self.bias))

    def unfold(self, xh: torch.Tensor) -> torch.Tensor:
        """The norm's output from its x^ (normed / residual with fold), for a consumer that did not fold after all."""
        return torch.addcmul(self.bias, xh, self.weight).to(xh.dtype)


def block_linear(x: torch.Tensor, weight: torch.Tensor | Pieces,
                 bias: torch.Tensor | Pieces | None = None, act: str | None = None,
                 fold: FusedLayerNorm | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) as the blocks' Linear layers run it: ops.linear.linear (the Triton bias gradient,
    the weights cast once a block under autocast) where the fused Linear applies to x, else PyTorch's. weight and
    bias may be pieces stacked by rows (ops.linear.Pieces). act "gelu": of F.gelu(x), which ops.linear does not
    keep for the backward. fold: x is x^ of this norm (FusedLayerNorm.normed / residual with fold), whose weight
    and bias the layer takes folded into its own."""
    if fused_linear_applies(x):
        return linear(x, weight, bias, act=act, fold=None if fold is None else (fold.weight, fold.bias))
    check_act(act)
    x = fold.unfold(x) if fold is not None else x
    x = F.gelu(x) if act == "gelu" else x
    return F.linear(x, stack_pieces(weight), None if bias is None else stack_pieces(bias))


class FusedLinear(nn.Linear):
    """nn.Linear whose bias gradient, fused (see the module docstring), is one Triton column sum
    (comba_vision.ops.linear) instead of PyTorch's reduction kernel; the forward and the other gradients are
    the same cuBLAS GEMMs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return block_linear(x, self.weight, self.bias)


def fuse_linears(*modules: nn.Linear) -> None:
    """Turns existing nn.Linear modules (e.g. inside a timm Mlp) into FusedLinear in place: the same object,
    parameters and state-dict keys, only the forward changes (no new module, so no second initialisation)."""
    for m in modules:
        if type(m) is not nn.Linear:
            raise TypeError(f"fuse_linears takes plain nn.Linear modules, got {type(m).__name__}")
        m.__class__ = FusedLinear


class PatchConv2d(nn.Conv2d):
    """nn.Conv2d of a patch embedding (kernel = stride, no padding, dilation or groups: the patches do not
    overlap) computed as one GEMM over the image's patches where ``gemm`` says so (None, the default: on CUDA).
    cuDNN runs this convolution in bf16 NCHW as an implicit GEMM of 0.83 ms a 224px batch of 128 on an H200 (plus
    0.3 ms of layout conversions), against microseconds for the same product as a cuBLAS GEMM. The same
    parameters and state-dict keys; the output is NCHW with channels-last strides (the NHWC GEMM result), which
    timm's PatchEmbed turns back into NHWC tokens without a copy. Rows or columns past the last whole patch
    are dropped, as the convolution drops them. In float32 without autocast the GEMM follows
    ``torch.backends.cuda.matmul.allow_tf32`` (off by default) where cuDNN's convolution followed
    ``torch.backends.cudnn.allow_tf32`` (on by default)."""

    gemm: bool | None = None

    def _as_gemm(self, x: torch.Tensor) -> bool:
        if not (self.kernel_size == self.stride and self.padding in ((0, 0), "valid") and self.dilation == (1, 1)
                and self.groups == 1 and x.dim() == 4):
            return False
        return x.is_cuda if self.gemm is None else self.gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._as_gemm(x):
            return super().forward(x)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected {self.in_channels} input channels, got input of "
                             f"shape {tuple(x.shape)}")
        B, C, H, W = x.shape
        ph, pw = self.kernel_size
        Hg, Wg = H // ph, W // pw
        if torch.is_autocast_enabled(x.device.type):  # the patch copy below in the GEMM's dtype
            # (a cast and then the patch copy: 0.16 ms of a 1024px batch of 8 on the H200, where one copy that
            # casts and permutes at once took 0.18, session 21)
            x = x.to(torch.get_autocast_dtype(x.device.type))
        x = x[:, :, :Hg * ph, :Wg * pw].reshape(B, C, Hg, ph, Wg, pw).permute(0, 2, 4, 1, 3, 5)
        y = F.linear(x.reshape(B, Hg, Wg, C * ph * pw), self.weight.reshape(self.out_channels, -1), self.bias)
        return y.permute(0, 3, 1, 2)


def gemm_patch_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Turns an existing nn.Conv2d (a timm PatchEmbed's ``proj``) into PatchConv2d in place: the same object and
    parameters, only the forward changes."""
    if type(conv) is not nn.Conv2d:
        raise TypeError(f"gemm_patch_conv takes a plain nn.Conv2d, got {type(conv).__name__}")
    conv.__class__ = PatchConv2d
    return conv
