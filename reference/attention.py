"""GPT-2's causal self-attention (the part after the QKV projection), forward and backward written
out step by step, as llm.c's CPU reference does.

Shapes, with C = NH * HS:
    qkv (B, T, 3C): the QKV projection's output, q, k and v side by side along the last dimension,
        each split into NH heads of HS channels: q[b, h, t, d] = qkv[b, t, h * HS + d],
        k[b, h, t, d] = qkv[b, t, C + h * HS + d], v[b, h, t, d] = qkv[b, t, 2 * C + h * HS + d];
    att (B, NH, T, T): the softmax probabilities, saved for the backward. Row t holds position t's
        weights over positions j <= t; the entries above the diagonal (j > t) are exactly 0;
    out (B, T, C): the heads interleaved again, out[b, t, h * HS + d] = sum_j att[b, h, t, j] v[b, h, j, d].
The scores are scaled by 1 / sqrt(HS) before the softmax, as torch.nn.functional.scaled_dot_product_attention
does by default.
"""
import math

import torch


def split_heads(qkv: torch.Tensor, NH: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T, 3C) -> q, k, v, each (B, NH, T, HS)."""
    B, T, three_C = qkv.shape
    HS = three_C // (3 * NH)
    q, k, v = qkv.view(B, T, 3, NH, HS).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, NH, T, HS) -> (B, T, NH * HS): out[b, t, h * HS + d] = y[b, h, t, d]."""
    B, NH, T, HS = y.shape
    return y.permute(0, 2, 1, 3).reshape(B, T, NH * HS)


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) booleans, True where position t may attend to position j (j <= t)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention_forward(qkv: torch.Tensor, NH: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns out (B, T, C) and att (B, NH, T, T)."""
    q, k, v = split_heads(qkv, NH)
    T, HS = q.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(HS)
    mask = causal_mask(T, qkv.device)
    preatt = (q @ k.transpose(-2, -1)) * scale
    # Softmax over j <= t, written out: subtract the row maximum (over the unmasked scores) so exp
    # never overflows, exponentiate, normalise. Masked entries are set to exactly 0.
    row_max = preatt.masked_fill(~mask, -math.inf).amax(dim=-1, keepdim=True)
    exp = torch.where(mask, torch.exp(preatt - row_max), torch.zeros((), dtype=preatt.dtype))
    att = exp / exp.sum(dim=-1, keepdim=True)
    y = att @ v
    return merge_heads(y), att


def attention_backward(dout: torch.Tensor, qkv: torch.Tensor, att: torch.Tensor, NH: int) -> torch.Tensor:
    """Gradient dqkv (B, T, 3C) of out = attention_forward(qkv)[0], given dout (B, T, C) and the
    saved att.

    With y = att @ v and att = softmax(scale * q k^T) row by row (masked to j <= t):
        datt = dy v^T,   dv = att^T dy,
        dpreatt[t, j] = scale * att[t, j] * (datt[t, j] - sum_i att[t, i] datt[t, i])  for j <= t, else 0,
        dq = dpreatt k,  dk = dpreatt^T q.
    """
    q, k, v = split_heads(qkv, NH)
    B, _, T, HS = q.shape
    scale = 1.0 / math.sqrt(HS)
    mask = causal_mask(T, qkv.device)
    dy = dout.view(B, T, NH, HS).permute(0, 2, 1, 3)
    datt = dy @ v.transpose(-2, -1)
    dv = att.transpose(-2, -1) @ dy
    # The softmax's Jacobian is diag(att) - att att^T per row; att is 0 above the diagonal, so
    # the row sum already runs over j <= t only. The mask makes the zeros explicit.
    row_dot = (att * datt).sum(dim=-1, keepdim=True)
    dpreatt = torch.where(mask, scale * att * (datt - row_dot), torch.zeros((), dtype=att.dtype))
    dq = dpreatt @ k
    dk = dpreatt.transpose(-2, -1) @ q
    # dqkv[b, t] = [dq heads | dk heads | dv heads], the inverse of split_heads.
    return torch.cat([merge_heads(dq), merge_heads(dk), merge_heads(dv)], dim=-1)
