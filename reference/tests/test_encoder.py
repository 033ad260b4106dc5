"""The readable encoder spec against torch.nn.functional.embedding and autograd, in float64 on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from reference.encoder import encoder_backward, encoder_forward


@pytest.fixture(params=[(2, 5, 32, 50), (3, 7, 40, 101), (1, 64, 8, 3)], ids=str)
def tensors(request):
    B, T, C, V = request.param
    g = torch.Generator().manual_seed(0)
    # int32 like the kernels get; V=3 with 64 positions makes every token occur many times
    tokens = torch.randint(0, V, (B, T), generator=g).to(torch.int32)
    wte = torch.randn(V, C, generator=g, dtype=torch.float64) + 0.3
    wpe = torch.randn(T, C, generator=g, dtype=torch.float64) - 0.2
    dout = torch.randn(B, T, C, generator=g, dtype=torch.float64) + 0.5
    return tokens, wte, wpe, dout


def test_forward_matches_embedding(tensors):
    tokens, wte, wpe, _ = tensors
    positions = torch.arange(tokens.shape[1])
    expected = F.embedding(tokens, wte) + F.embedding(positions, wpe)
    torch.testing.assert_close(encoder_forward(tokens, wte, wpe), expected, rtol=0, atol=0)


def test_backward_matches_autograd(tensors):
    tokens, wte, wpe, dout = tensors
    leaves = [t.clone().requires_grad_() for t in (wte, wpe)]
    (F.embedding(tokens, leaves[0]) + leaves[1]).backward(dout)
    dwte, dwpe = encoder_backward(dout, tokens, wte.shape[0])
    torch.testing.assert_close(dwte, leaves[0].grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dwpe, leaves[1].grad, rtol=1e-12, atol=1e-12)


def test_rows_of_absent_tokens_get_zero_gradient(tensors):
    tokens, wte, _, dout = tensors
    dwte, _ = encoder_backward(dout, tokens, wte.shape[0])
    absent = torch.ones(wte.shape[0], dtype=torch.bool)
    absent[tokens.flatten().long()] = False
    assert torch.count_nonzero(dwte[absent]) == 0
    assert torch.all(dwte[~absent].abs().sum(dim=-1) > 0)
