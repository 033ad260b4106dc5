"""The readable residual spec against torch.add and autograd, in float64 on the CPU."""
import pytest
import torch

from reference.residual import residual_backward, residual_forward


@pytest.fixture(params=[(1000,), (4, 33, 7)], ids=str)
def tensors(request):
    g = torch.Generator().manual_seed(0)
    inp1, inp2, dout = (torch.randn(request.param, generator=g, dtype=torch.float64) + m for m in (0.4, -1.0, 0.3))
    return inp1, inp2, dout


def test_forward_matches_add(tensors):
    inp1, inp2, _ = tensors
    torch.testing.assert_close(residual_forward(inp1, inp2), torch.add(inp1, inp2), rtol=0, atol=0)


def test_backward_matches_autograd(tensors):
    inp1, inp2, dout = tensors
    leaves = [t.clone().requires_grad_() for t in (inp1, inp2)]
    residual_forward(*leaves).backward(dout)
    for mine, theirs in zip(residual_backward(dout), leaves):
        torch.testing.assert_close(mine, theirs.grad, rtol=0, atol=0)
