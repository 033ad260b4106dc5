"""The readable attention spec against torch.nn.functional.scaled_dot_product_attention and autograd,
in float64 on the CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

from reference.attention import attention_backward, attention_forward, causal_mask, merge_heads, split_heads


@pytest.fixture(params=[(2, 5, 3, 8), (1, 17, 2, 16), (3, 33, 4, 8), (1, 64, 12, 64)], ids=str)
def tensors(request):
    B, T, NH, HS = request.param
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(B, T, 3 * NH * HS, generator=g, dtype=torch.float64) + 0.3
    dout = torch.randn(B, T, NH * HS, generator=g, dtype=torch.float64) - 0.2
    return qkv, dout, NH


def sdpa(qkv, NH):
    q, k, v = split_heads(qkv, NH)
    return merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_heads_round_trip_and_layout(tensors):
    qkv, _, NH = tensors
    q, k, v = split_heads(qkv, NH)
    B, _, T, HS = q.shape
    C = NH * HS
    assert torch.equal(q[1 % B, NH - 1, T - 1, HS - 1], qkv[1 % B, T - 1, (NH - 1) * HS + HS - 1])
    assert torch.equal(k[0, 0, 0, 1], qkv[0, 0, C + 1])
    assert torch.equal(v[0, NH - 1, 0, 0], qkv[0, 0, 2 * C + (NH - 1) * HS])
    assert torch.equal(torch.cat([merge_heads(q), merge_heads(k), merge_heads(v)], dim=-1), qkv)


def test_forward_matches_scaled_dot_product_attention(tensors):
    qkv, _, NH = tensors
    out, att = attention_forward(qkv, NH)
    torch.testing.assert_close(out, sdpa(qkv, NH), rtol=1e-12, atol=1e-12)
    # att is the softmax of the masked, scaled scores, with exact zeros above the diagonal.
    q, k, _ = split_heads(qkv, NH)
    T, HS = q.shape[-2:]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(HS)).masked_fill(~causal_mask(T), -math.inf)
    torch.testing.assert_close(att, torch.softmax(scores, dim=-1), rtol=1e-12, atol=1e-12)
    assert torch.all(att[..., ~causal_mask(T)] == 0)


def test_backward_matches_autograd(tensors):
    qkv, dout, NH = tensors
    leaf = qkv.clone().requires_grad_()
    sdpa(leaf, NH).backward(dout)
    _, att = attention_forward(qkv, NH)
    torch.testing.assert_close(attention_backward(dout, qkv, att, NH), leaf.grad, rtol=1e-10, atol=1e-10)
