"""The readable matmul spec against torch.nn.functional and autograd, in float64 on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from reference.matmul import matmul_backward, matmul_forward


@pytest.fixture(params=[(2, 5, 33, 47), (1, 1, 8, 3), (3, 7, 64, 100)], ids=str)
def tensors(request):
    B, T, C, OC = request.param
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(B, T, C, generator=g, dtype=torch.float64) + 0.3
    weight = torch.randn(OC, C, generator=g, dtype=torch.float64) / C**0.5
    bias = torch.randn(OC, generator=g, dtype=torch.float64)
    dout = torch.randn(B, T, OC, generator=g, dtype=torch.float64) + 0.2
    return inp, weight, bias, dout


def test_forward_matches_linear(tensors):
    inp, weight, bias, _ = tensors
    torch.testing.assert_close(matmul_forward(inp, weight, bias), F.linear(inp, weight, bias),
                               rtol=1e-12, atol=1e-12)


def test_backward_matches_autograd(tensors):
    inp, weight, bias, dout = tensors
    leaves = [t.clone().requires_grad_() for t in (inp, weight, bias)]
    F.linear(*leaves).backward(dout)
    for mine, theirs in zip(matmul_backward(dout, inp, weight), leaves):
        torch.testing.assert_close(mine, theirs.grad, rtol=1e-10, atol=1e-10)
