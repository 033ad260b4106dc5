"""The readable GELU spec against torch.nn.functional.gelu(approximate="tanh") and autograd, in
float64 on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from reference.gelu import gelu_backward, gelu_forward


@pytest.fixture(params=[(1000,), (4, 33, 7)], ids=str)
def tensors(request):
    g = torch.Generator().manual_seed(0)
    # a wide range with a non-zero mean: the tails (tanh saturating) and the middle both matter
    inp = torch.randn(request.param, generator=g, dtype=torch.float64) * 3.0 + 0.5
    dout = torch.randn(request.param, generator=g, dtype=torch.float64) + 0.3
    return inp, dout


def test_forward_matches_functional(tensors):
    inp, _ = tensors
    torch.testing.assert_close(gelu_forward(inp), F.gelu(inp, approximate="tanh"), rtol=1e-12, atol=1e-12)


def test_backward_matches_autograd(tensors):
    inp, dout = tensors
    leaf = inp.clone().requires_grad_()
    F.gelu(leaf, approximate="tanh").backward(dout)
    torch.testing.assert_close(gelu_backward(dout, inp), leaf.grad, rtol=1e-12, atol=1e-12)


def test_backward_is_not_the_exact_gelu():
    """The tanh approximation differs from the erf GELU by up to ~1e-3: the test above would catch
    a reference that used the wrong one."""
    inp = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert (gelu_forward(inp) - F.gelu(inp)).abs().max() > 1e-4
