"""reference/gpt2.py against a second, independent formulation of GPT-2 written with explicit math
(layernorm from its moments, attention as a masked softmax per head, the tanh GELU formula, the
loss from log-sum-exp), in float64 on the CPU; and the loss at initialisation."""
import math

import pytest
import torch

from reference import gpt2

V, VP, MAXT = 50257, 50304, 1024


def random_params(L, C, scale=0.02, seed=0, dtype=torch.float64):
    """llm.c-layout parameters; layernorm and bias values are random too so every term is exercised."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, mean=0.0, std=scale):
        return torch.randn(*shape, generator=g, dtype=dtype) * std + mean

    return {
        "wte": rnd(VP, C), "wpe": rnd(MAXT, C),
        "ln1w": rnd(L, C, mean=1.0, std=0.1), "ln1b": rnd(L, C, std=0.1),
        "qkvw": rnd(L, 3 * C, C), "qkvb": rnd(L, 3 * C, std=0.1),
        "attprojw": rnd(L, C, C), "attprojb": rnd(L, C, std=0.1),
        "ln2w": rnd(L, C, mean=1.0, std=0.1), "ln2b": rnd(L, C, std=0.1),
        "fcw": rnd(L, 4 * C, C), "fcb": rnd(L, 4 * C, std=0.1),
        "fcprojw": rnd(L, C, 4 * C), "fcprojb": rnd(L, C, std=0.1),
        "lnfw": rnd(C, mean=1.0, std=0.1), "lnfb": rnd(C, std=0.1),
    }


def explicit_forward(p, tokens, NH, targets):
    """GPT-2 again, every op spelled out (no torch.nn.functional)."""
    B, T = tokens.shape
    L, C = p["ln1w"].shape
    hs = C // NH

    def ln(x, w, b):
        mu = x.sum(-1, keepdim=True) / C
        var = ((x - mu) ** 2).sum(-1, keepdim=True) / C
        return (x - mu) / torch.sqrt(var + 1e-5) * w + b

    def gelu(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    mask = torch.ones(T, T, dtype=torch.bool).tril()
    x = p["wte"][tokens] + p["wpe"][torch.arange(T)]
    for l in range(L):
        h = ln(x, p["ln1w"][l], p["ln1b"][l])
        qkv = torch.einsum("btc,oc->bto", h, p["qkvw"][l]) + p["qkvb"][l]
        heads = []
        for n in range(NH):
            q = qkv[:, :, n * hs:(n + 1) * hs]
            k = qkv[:, :, C + n * hs:C + (n + 1) * hs]
            v = qkv[:, :, 2 * C + n * hs:2 * C + (n + 1) * hs]
            scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(hs)
            scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.exp(scores - scores.amax(-1, keepdim=True))
            weights = weights / weights.sum(-1, keepdim=True)
            heads.append(torch.einsum("bqk,bkd->bqd", weights, v))
        a = torch.cat(heads, dim=-1)
        x = x + torch.einsum("btc,oc->bto", a, p["attprojw"][l]) + p["attprojb"][l]
        h = ln(x, p["ln2w"][l], p["ln2b"][l])
        h = gelu(torch.einsum("btc,oc->bto", h, p["fcw"][l]) + p["fcb"][l])
        x = x + torch.einsum("btc,oc->bto", h, p["fcprojw"][l]) + p["fcprojb"][l]
    x = ln(x, p["lnfw"], p["lnfb"])
    logits = torch.einsum("btc,vc->btv", x, p["wte"])
    real = logits[..., :V]
    logz = real.amax(-1, keepdim=True) + torch.log(torch.exp(real - real.amax(-1, keepdim=True)).sum(-1, keepdim=True))
    nll = logz.squeeze(-1) - real.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logits, nll.mean()


@pytest.mark.parametrize("L,C,NH,B,T", [(1, 16, 2, 2, 5), (2, 32, 4, 3, 17)])
def test_forward_and_gradients_match_explicit_math(L, C, NH, B, T):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    p1 = {k: v.requires_grad_() for k, v in random_params(L, C, scale=0.3).items()}
    p2 = {k: v.detach().clone().requires_grad_() for k, v in p1.items()}

    logits1, loss1 = gpt2.forward(p1, tokens, NH, targets)
    logits2, loss2 = explicit_forward(p2, tokens, NH, targets)
    torch.testing.assert_close(logits1, logits2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss1, loss2, rtol=1e-12, atol=1e-12)

    loss1.backward()
    loss2.backward()
    for name in p1:
        torch.testing.assert_close(p1[name].grad, p2[name].grad, rtol=1e-8, atol=1e-12, msg=name)


def test_loss_at_initialisation_is_about_ln_V():
    """GPT-2's init (std 0.02) gives near-uniform logits over V tokens: loss ~ ln(50257) = 10.82."""
    L, C, NH = 2, 64, 4
    p = random_params(L, C, dtype=torch.float32)
    for name in ("ln1w", "ln2w", "lnfw"):
        p[name] = torch.ones_like(p[name])
    for name in ("ln1b", "ln2b", "lnfb", "qkvb", "attprojb", "fcb", "fcprojb"):
        p[name] = torch.zeros_like(p[name])
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, V, (4, 64), generator=g)
    targets = torch.randint(0, V, (4, 64), generator=g)
    _, loss = gpt2.forward(p, tokens, NH, targets)
    assert abs(loss.item() - math.log(V)) < 0.1


def test_trace_lists_the_ops_of_each_block_in_order():
    p = random_params(2, 16, dtype=torch.float32)
    trace = []
    tokens = torch.zeros(1, 3, dtype=torch.long)
    gpt2.forward(p, tokens, 2, targets=tokens, trace=trace)
    layers = [layer for _, layer, _ in trace]
    block = ["layernorm", "matmul", "attention", "matmul", "residual", "layernorm", "matmul", "gelu", "matmul",
             "residual"]
    assert layers == ["encoder"] + block * 2 + ["layernorm", "matmul", "crossentropy"]
    assert trace[-2] == ("lm_head", "matmul", (1, 3, VP))


def test_bf16_autocast_stays_close_to_fp32():
    p = random_params(2, 64, scale=0.1, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, V, (2, 16), generator=g)
    _, loss32 = gpt2.forward(p, tokens, 4, tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss16 = gpt2.forward(p, tokens, 4, tokens)
    assert loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) < 0.05
