"""LayerNorm over the last dimension, forward and backward written out (as llm.c's CPU reference).

Shapes: inp (B, T, C); weight, bias (C,); mean, rstd (B, T). rstd is 1 / sqrt(var + eps) with the
biased variance, as torch.nn.functional.layer_norm uses.
"""
import torch

EPS = 1e-5


def layernorm_forward(inp, weight, bias, eps=EPS):
    mean = inp.mean(dim=-1, keepdim=True)
    centered = inp - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)
    rstd = 1.0 / torch.sqrt(var + eps)
    norm = centered * rstd
    out = norm * weight + bias
    return out, mean.squeeze(-1), rstd.squeeze(-1)


def layernorm_backward(dout, inp, weight, mean, rstd):
    """Gradients of out = norm * weight + bias with norm = (inp - mean) * rstd.

    The input gradient follows from differentiating through mean and rstd:
    dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight.
    """
    norm = (inp - mean.unsqueeze(-1)) * rstd.unsqueeze(-1)
    reduce_dims = tuple(range(dout.dim() - 1))
    dbias = dout.sum(dim=reduce_dims)
    dweight = (dout * norm).sum(dim=reduce_dims)
    dnorm = dout * weight
    dnorm_mean = dnorm.mean(dim=-1, keepdim=True)
    dnorm_norm_mean = (dnorm * norm).mean(dim=-1, keepdim=True)
    dinp = (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd.unsqueeze(-1)
    return dinp, dweight, dbias
