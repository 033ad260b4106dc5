"""Flash attention's contract for GPT-2's causal self-attention, forward and backward written out step
by step: the same function as reference/attention.py, but what the forward saves for the backward is
one number per query row, the log-sum-exp of its scores, instead of the (B, NH, T, T) probabilities.

Shapes, with C = NH * HS (q, k and v are laid out in qkv as in reference/attention.py):
    qkv (B, T, 3C): the QKV projection's output;
    out (B, T, C): the heads interleaved, out[b, t, h * HS + d] = sum_j att[b, h, t, j] v[b, h, j, d];
    lse (B, NH, T): lse[b, h, t] = log(sum_{j <= t} exp(scale * q_t . k_j)), the natural log of the
        softmax's normaliser, scale = 1 / sqrt(HS). Every row has at least its diagonal term, so it is
        finite. The probabilities are att[b, h, t, j] = exp(scale * q_t . k_j - lse[b, h, t]) for j <= t.
The backward recomputes att from q, k and lse, and replaces the softmax backward's row dot product
sum_j att[t, j] datt[t, j] by D_t = dout_t . out_t (per head), which is the same number:
sum_j att[t, j] (dy_t . v_j) = dy_t . (sum_j att[t, j] v_j) = dy_t . y_t.
"""
import math

import torch

from reference.attention import causal_mask, merge_heads, split_heads


def flash_attention_forward(qkv: torch.Tensor, NH: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns out (B, T, C) and lse (B, NH, T)."""
    q, k, v = split_heads(qkv, NH)
    T, HS = q.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(HS)
    mask = causal_mask(T, qkv.device)
    scores = (q @ k.transpose(-2, -1)) * scale
    # The log-sum-exp over j <= t, written out: subtract the row maximum (over the unmasked scores)
    # so no exp overflows, sum, take the log, add the maximum back.
    row_max = scores.masked_fill(~mask, -math.inf).amax(dim=-1, keepdim=True)
    exp = torch.where(mask, torch.exp(scores - row_max), torch.zeros((), dtype=scores.dtype))
    lse = row_max + torch.log(exp.sum(dim=-1, keepdim=True))
    # The probabilities, as the backward will recompute them: exp(score - lse), masked to exact zeros.
    att = torch.where(mask, torch.exp(scores - lse), torch.zeros((), dtype=scores.dtype))
    y = att @ v
    return merge_heads(y), lse.squeeze(-1)


def flash_attention_backward(dout: torch.Tensor, qkv: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
                             NH: int) -> torch.Tensor:
    """Gradient dqkv (B, T, 3C) of out = flash_attention_forward(qkv)[0], given dout (B, T, C) and the
    forward's saved out (B, T, C) and lse (B, NH, T).

    With S = scale * q k^T (masked to j <= t), P = exp(S - lse) row by row and y = P v:
        dv = P^T dy,   dP = dy v^T,   D_t = dy_t . y_t,
        dS[t, j] = P[t, j] * (dP[t, j] - D_t)  for j <= t, else 0,
        dq = scale * dS k,   dk = scale * dS^T q.
    """
    q, k, v = split_heads(qkv, NH)
    B, _, T, HS = q.shape
    scale = 1.0 / math.sqrt(HS)
    mask = causal_mask(T, qkv.device)
    dy = dout.view(B, T, NH, HS).permute(0, 2, 1, 3)
    y = out.view(B, T, NH, HS).permute(0, 2, 1, 3)
    # Recompute the probabilities from q, k and the saved log-sum-exp: no row maximum or sum needed.
    scores = (q @ k.transpose(-2, -1)) * scale
    # lse is fp32 whatever the dtype: cast it so P keeps the operands' dtype (bf16 in the baselines).
    P = torch.where(mask, torch.exp(scores - lse.unsqueeze(-1).to(scores.dtype)), torch.zeros((), dtype=scores.dtype))
    dv = P.transpose(-2, -1) @ dy
    dP = dy @ v.transpose(-2, -1)
    # The softmax backward's row dot product, from the output instead of from P and dP (a T-long sum
    # per row becomes an HS-long one).
    D = (dy * y).sum(dim=-1, keepdim=True)
    dS = torch.where(mask, P * (dP - D), torch.zeros((), dtype=P.dtype))
    dq = scale * (dS @ k)
    dk = scale * (dS.transpose(-2, -1) @ q)
    # dqkv[b, t] = [dq heads | dk heads | dv heads], the inverse of split_heads.
    return torch.cat([merge_heads(dq), merge_heads(dk), merge_heads(dv)], dim=-1)
