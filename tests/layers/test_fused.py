"""PatchConv2d: the patch embedding's convolution as one GEMM, against torch's convolution in float64."""
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import comba_vision  # noqa: F401
from comba_vision.layers import PatchConv2d, gemm_patch_conv


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("patch,size", [((16, 16), (224, 224)), ((16, 16), (35, 50)), ((4, 8), (20, 27))])
def test_patch_gemm_matches_conv_float64(patch, size):
    torch.manual_seed(0)
    conv = gemm_patch_conv(nn.Conv2d(3, 24, kernel_size=patch, stride=patch).double())
    conv.gemm = True
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    ref = F.conv2d(x, conv.weight, conv.bias, stride=patch)
    assert y.shape == ref.shape == (2, 24, size[0] // patch[0], size[1] // patch[1])
    assert y.stride()[1] == 1  # NCHW view of the GEMM's NHWC result
    assert _rel(y, ref) < 1e-12
    dy = torch.randn_like(ref)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), dy)
    want = torch.autograd.grad(ref, (x, conv.weight, conv.bias), dy)
    for a, b in zip(got, want):
        assert _rel(a, b) < 1e-12
    # the rows and columns past the last whole patch get no gradient, as in the convolution
    h, w = size[0] // patch[0] * patch[0], size[1] // patch[1] * patch[1]
    assert got[0][..., h:, :].abs().sum().item() == 0.0 and got[0][..., w:].abs().sum().item() == 0.0


def test_patch_gemm_applies_only_to_non_overlapping_patches():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    conv = gemm_patch_conv(nn.Conv2d(3, 8, kernel_size=8, stride=4))  # overlapping: the convolution itself
    conv.gemm = True
    assert not conv._as_gemm(x)
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, stride=4))
    plain = gemm_patch_conv(nn.Conv2d(3, 8, kernel_size=8, stride=8))
    assert not plain._as_gemm(x)  # default: CUDA only
    assert plain._as_gemm(x.to("meta")) is False
    with pytest.raises(TypeError, match="plain nn.Conv2d"):
        gemm_patch_conv(nn.Conv1d(3, 8, 4))
    plain.gemm = True
    with pytest.raises(ValueError, match="expected 3 input channels"):
        plain(torch.randn(1, 4, 32, 32))


def test_model_patch_embedding_gemm_matches_conv():
    torch.manual_seed(0)
    model = timm.create_model("comba_tiny", num_classes=10, img_size=64).eval()
    assert isinstance(model.patch_embed.proj, PatchConv2d)
    assert "patch_embed.proj.weight" in model.state_dict()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.forward_features(x)
        model.patch_embed.proj.gemm = True
        got = model.forward_features(x)
    assert _rel(got, ref) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_patch_gemm_cuda_autocast_bf16():
    torch.manual_seed(0)
    conv = gemm_patch_conv(nn.Conv2d(3, 64, kernel_size=16, stride=16)).cuda()
    assert conv.gemm is None
    x = torch.randn(4, 3, 224, 224, device="cuda")
    assert conv._as_gemm(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    w = conv.weight.detach().double().requires_grad_()
    ref = F.conv2d(x.double(), w, conv.bias.double(), stride=16)
    assert _rel(y, ref) < 1e-2
    dy = torch.randn_like(ref)
    y.backward(dy.to(y.dtype))
    ref.backward(dy)
    assert _rel(conv.weight.grad, w.grad) < 1e-2
