"""GPT-2's forward pass in plain PyTorch (torch.nn.functional), on llm.c's parameter layout.

The parity reference for the trainer's kernel path and the model of its CPU path: the trainer's
TorchEngine differentiates `forward` with autograd.

`params` maps llm.c's names to tensors (in practice views into one flat buffer, trainer/model.py):

    wte (Vp, C)  wpe (maxT, C)                          token and position embeddings
    ln1w, ln1b (L, C)                                   layernorm before attention
    qkvw (L, 3C, C)  qkvb (L, 3C)                       attention's q, k, v projection
    attprojw (L, C, C)  attprojb (L, C)                 attention's output projection
    ln2w, ln2b (L, C)                                   layernorm before the MLP
    fcw (L, 4C, C)  fcb (L, 4C)                         MLP up-projection
    fcprojw (L, C, 4C)  fcprojb (L, C)                  MLP down-projection
    lnfw, lnfb (C,)                                     final layernorm

Weight matrices are (out_features, in_features), as torch.nn.Linear, so a matmul is x @ w.T + b.
The lm_head reuses wte (weight tying). Rows V..Vp-1 of wte are padding: their logits are computed
(the kernels work on Vp columns) but the loss and sampling use the first V logits only.

Each op below is one kernel layer of the workbench (encoder, layernorm, matmul, attention, residual,
gelu, crossentropy). `forward(..., trace=[])` records the ops in the order they run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5  # layernorm's epsilon, as GPT-2


def encoder(wte, wpe, tokens):
    """Token embedding plus position embedding: (B, T) ids -> (B, T, C)."""
    T = tokens.shape[1]
    return wte[tokens] + wpe[:T]


def layernorm(x, weight, bias):
    return F.layer_norm(x, x.shape[-1:], weight, bias, EPS)


def matmul(x, weight, bias=None):
    """x @ weight.T + bias, with weight (OC, C) as llm.c stores it."""
    return F.linear(x, weight, bias)


def attention(qkv, num_heads):
    """Causal multi-head self-attention: (B, T, 3C) packed q, k, v -> (B, T, C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.split(C, dim=2)
    # (B, T, C) -> (B, NH, T, hs): each head attends on its own slice of the channels
    q, k, v = (t.view(B, T, num_heads, C // num_heads).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # softmax(q k^T / sqrt(hs)) v, masked
    return y.transpose(1, 2).reshape(B, T, C)


def residual(x, y):
    return x + y


def gelu(x):
    return F.gelu(x, approximate="tanh")  # GPT-2's tanh approximation


def crossentropy(logits, targets, vocab_size):
    """Mean negative log-likelihood of the targets over the first vocab_size logits (bf16 logits: in fp32)."""
    V = vocab_size
    logits = logits[..., :V].reshape(-1, V)
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()
    return F.cross_entropy(logits, targets.reshape(-1))


def block(x, params, l, num_heads, trace=None):
    """Transformer block l: x + attn(ln1(x)), then + mlp(ln2(.)). (B, T, C) -> (B, T, C)."""
    p = {name: params[name][l] for name in ("ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                                            "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb")}
    h = _op(trace, f"h{l}.ln1", "layernorm", layernorm(x, p["ln1w"], p["ln1b"]))
    qkv = _op(trace, f"h{l}.qkv", "matmul", matmul(h, p["qkvw"], p["qkvb"]))
    a = _op(trace, f"h{l}.attention", "attention", attention(qkv, num_heads))
    a = _op(trace, f"h{l}.attproj", "matmul", matmul(a, p["attprojw"], p["attprojb"]))
    x = _op(trace, f"h{l}.residual1", "residual", residual(x, a))
    h = _op(trace, f"h{l}.ln2", "layernorm", layernorm(x, p["ln2w"], p["ln2b"]))
    h = _op(trace, f"h{l}.fc", "matmul", matmul(h, p["fcw"], p["fcb"]))
    h = _op(trace, f"h{l}.gelu", "gelu", gelu(h))
    h = _op(trace, f"h{l}.fcproj", "matmul", matmul(h, p["fcprojw"], p["fcprojb"]))
    return _op(trace, f"h{l}.residual2", "residual", residual(x, h))


def forward(params, tokens, num_heads, targets=None, vocab_size=50257, trace=None):
    """GPT-2 forward: tokens (B, T) int64 -> (logits (B, T, Vp), mean loss or None).

    trace: a list to append (name, layer, output shape) to for every op, in order.
    """
    num_layers = params["ln1w"].shape[0]
    x = _op(trace, "encoder", "encoder", encoder(params["wte"], params["wpe"], tokens))
    for l in range(num_layers):
        x = block(x, params, l, num_heads, trace)
    x = _op(trace, "lnf", "layernorm", layernorm(x, params["lnfw"], params["lnfb"]))
    logits = _op(trace, "lm_head", "matmul", matmul(x, params["wte"]))  # tied to the token embedding
    if targets is None:
        return logits, None
    loss = _op(trace, "loss", "crossentropy", crossentropy(logits, targets, vocab_size))
    return logits, loss


def _op(trace, name, layer, out):
    if trace is not None:
        trace.append((name, layer, tuple(out.shape)))
    return out
