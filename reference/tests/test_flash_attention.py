"""The readable flash attention spec against torch.nn.functional.scaled_dot_product_attention, autograd
and reference/attention.py, in float64 on the CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

from reference.attention import attention_backward, attention_forward, causal_mask, merge_heads, split_heads
from reference.flash_attention import flash_attention_backward, flash_attention_forward


# Awkward shapes too: T = 1 (a single key), T = 5, 17, 33 (not multiples of a warp or a tile), HS = 8
# and 16 (fewer channels than a warp has lanes), T = 70 (a second 64-row tile cut short).
@pytest.fixture(params=[(2, 5, 3, 8), (1, 17, 2, 16), (3, 33, 4, 8), (1, 1, 2, 8), (1, 70, 2, 64), (1, 64, 12, 64)],
                ids=str)
def tensors(request):
    B, T, NH, HS = request.param
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(B, T, 3 * NH * HS, generator=g, dtype=torch.float64) + 0.3
    dout = torch.randn(B, T, NH * HS, generator=g, dtype=torch.float64) - 0.2
    return qkv, dout, NH


def sdpa(qkv, NH):
    q, k, v = split_heads(qkv, NH)
    return merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))


def masked_scores(qkv, NH):
    q, k, _ = split_heads(qkv, NH)
    T, HS = q.shape[-2:]
    return (q @ k.transpose(-2, -1) / math.sqrt(HS)).masked_fill(~causal_mask(T), -math.inf)


def test_forward_matches_scaled_dot_product_attention(tensors):
    qkv, _, NH = tensors
    out, lse = flash_attention_forward(qkv, NH)
    torch.testing.assert_close(out, sdpa(qkv, NH), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, attention_forward(qkv, NH)[0], rtol=1e-12, atol=1e-12)


def test_lse_is_the_log_sum_exp_of_the_masked_scaled_scores(tensors):
    qkv, _, NH = tensors
    _, lse = flash_attention_forward(qkv, NH)
    B, T = qkv.shape[:2]
    assert lse.shape == (B, NH, T)
    torch.testing.assert_close(lse, torch.logsumexp(masked_scores(qkv, NH), dim=-1), rtol=1e-12, atol=1e-12)
    # The first row has one unmasked score: its lse is that score itself.
    torch.testing.assert_close(lse[..., 0], masked_scores(qkv, NH)[..., 0, 0], rtol=1e-12, atol=1e-12)


def test_lse_recovers_the_probabilities(tensors):
    """exp(scores - lse) is attention's att, exact zeros above the diagonal included."""
    qkv, _, NH = tensors
    _, lse = flash_attention_forward(qkv, NH)
    _, att = attention_forward(qkv, NH)
    recovered = torch.exp(masked_scores(qkv, NH) - lse.unsqueeze(-1))
    torch.testing.assert_close(recovered, att, rtol=1e-12, atol=1e-12)
    T = qkv.shape[1]
    assert torch.all(recovered[..., ~causal_mask(T)] == 0)


def test_lse_does_not_overflow_on_large_scores():
    """Scores of several hundred: exp alone would overflow float32 (and near 710, float64); the
    maximum-subtracted form keeps lse finite and exact."""
    g = torch.Generator().manual_seed(1)
    qkv = 40.0 * torch.randn(1, 9, 3 * 2 * 8, generator=g, dtype=torch.float64)
    _, lse = flash_attention_forward(qkv, 2)
    assert torch.isfinite(lse).all()
    torch.testing.assert_close(lse, torch.logsumexp(masked_scores(qkv, 2), dim=-1), rtol=1e-12, atol=1e-12)


def test_backward_matches_autograd(tensors):
    qkv, dout, NH = tensors
    leaf = qkv.clone().requires_grad_()
    sdpa(leaf, NH).backward(dout)
    out, lse = flash_attention_forward(qkv, NH)
    torch.testing.assert_close(flash_attention_backward(dout, qkv, out, lse, NH), leaf.grad, rtol=1e-10, atol=1e-10)


def test_backward_matches_the_attention_reference(tensors):
    """The same gradient as reference/attention.py, which reads the saved att and sums att * datt for
    the row dot product, where flash attention recomputes att and uses dout . out."""
    qkv, dout, NH = tensors
    out, lse = flash_attention_forward(qkv, NH)
    _, att = attention_forward(qkv, NH)
    torch.testing.assert_close(flash_attention_backward(dout, qkv, out, lse, NH),
                               attention_backward(dout, qkv, att, NH), rtol=1e-10, atol=1e-10)


def test_backward_uses_the_saved_out_and_lse(tensors):
    """The backward reads what the forward saved, not a recomputation of it: shifting lse scales every
    probability (dv scales with it), and a different out changes D (dq and dk move, dv does not)."""
    qkv, dout, NH = tensors
    out, lse = flash_attention_forward(qkv, NH)
    C = out.shape[-1]
    base = flash_attention_backward(dout, qkv, out, lse, NH)
    shifted = flash_attention_backward(dout, qkv, out, lse - math.log(2.0), NH)
    torch.testing.assert_close(shifted[..., 2 * C:], 2.0 * base[..., 2 * C:], rtol=1e-12, atol=1e-12)
    changed = flash_attention_backward(dout, qkv, out + 1.0, lse, NH)
    torch.testing.assert_close(changed[..., 2 * C:], base[..., 2 * C:], rtol=1e-12, atol=1e-12)
    if qkv.shape[1] > 1:  # with one key, dS = P (dP - D) is 0 whatever D is
        assert not torch.allclose(changed[..., :2 * C], base[..., :2 * C])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_keeps_the_operands_dtype_with_an_fp32_lse(dtype):
    """The baselines run the reference in the op's dtype with lse in fp32, as the kernels store it."""
    g = torch.Generator().manual_seed(3)
    B, T, NH, HS = 1, 9, 2, 8
    qkv = torch.randn(B, T, 3 * NH * HS, generator=g, dtype=torch.float64)
    dout = torch.randn(B, T, NH * HS, generator=g, dtype=torch.float64)
    out, lse = flash_attention_forward(qkv, NH)
    want = flash_attention_backward(dout, qkv, out, lse, NH)
    got = flash_attention_backward(dout.to(dtype), qkv.to(dtype), out.to(dtype), lse.float(), NH)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, rtol=0.05, atol=0.05)
