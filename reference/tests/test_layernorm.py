"""The readable layernorm spec against torch.nn.functional and autograd, in float64 on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from reference.layernorm import EPS, layernorm_backward, layernorm_forward


@pytest.fixture(params=[(2, 3, 8), (4, 37, 1000), (1, 1, 1600)], ids=str)
def tensors(request):
    B, T, C = request.param
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(B, T, C, generator=g, dtype=torch.float64) * 2 + 0.7
    weight = torch.randn(C, generator=g, dtype=torch.float64)
    bias = torch.randn(C, generator=g, dtype=torch.float64)
    dout = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    return inp, weight, bias, dout


def test_forward_matches_functional(tensors):
    inp, weight, bias, _ = tensors
    out, mean, rstd = layernorm_forward(inp, weight, bias)
    torch.testing.assert_close(out, F.layer_norm(inp, inp.shape[-1:], weight, bias, EPS), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean, inp.mean(-1))
    torch.testing.assert_close(rstd, 1 / torch.sqrt(inp.var(-1, unbiased=False) + EPS))


def test_backward_matches_autograd(tensors):
    inp, weight, bias, dout = tensors
    leaves = [t.clone().requires_grad_() for t in (inp, weight, bias)]
    F.layer_norm(leaves[0], inp.shape[-1:], leaves[1], leaves[2], EPS).backward(dout)
    _, mean, rstd = layernorm_forward(inp, weight, bias)
    for mine, theirs in zip(layernorm_backward(dout, inp, weight, mean, rstd), leaves):
        torch.testing.assert_close(mine, theirs.grad, rtol=1e-10, atol=1e-10)
