"""Attention forward: the contract and the launch geometry of each variant in forward/.

GPT-2's causal self-attention after the QKV projection (reference/attention.py has the math):
    qkv (B, T, 3C) floatX in; out (B, T, C) floatX and att (B, NH, T, T) floatX out, C = NH * HS.
att is the softmax of the scaled, masked scores, saved for the backward; every entry is written,
the ones above the diagonal as exact zeros. Both outputs are overwritten. qkv is only read.

Variant 1 is three kernels around two cuBLAS calls (torch.bmm with out=, on torch's stream):
    attention_split_qkv(q, k, v, qkv, B, T, NH, HS)           q, k, v (B, NH, T, HS) scratch
    preatt = q @ k^T                                           cuBLAS, (B * NH) x (T, T)
    attention_softmax_causal(att, preatt, B * NH * T, T, scale)
    y = att @ v                                                cuBLAS, (B * NH) x (T, HS)
    attention_merge_heads(out, y, B, T, NH, HS)
Variant 2 drops the preatt scratch: cuBLAS writes the scores into att and
    attention_softmax_causal_inplace(att, B * NH * T, T, scale)
turns them into probabilities in place (T <= 1024).

The rating: attention is compute-bound at GPT-2 sizes, so rows are rated in TFLOP/s against the
cuBLAS GEMM ceiling, counting the multiply-adds of the two matmuls over the causal half of the
scores only (2 matmuls x 2 B NH HS T (T + 1) / 2 flops): the work the op needs, not the masked
zeros variant 1 also multiplies. The bytes column counts qkv read, out and att written. The eager
baseline (scaled_dot_product_attention, a flash kernel) produces out only: it never writes att,
so it does less work than the contract asks and its GB/s on this basis overstates what it moved.
The torch.compile baseline compiles the reference's own steps and returns att too.
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contract import Op, Tolerance, block_sizes, ceil_div
from kernels.attention.shapes import (
    BENCH_SHAPE, DIMS, HEADS, QKV, SCORES, SHAPES, TOKENS, causal_flops_per_matmul, random_tokens,
    refuse_other_head_sizes, scale)
from reference.attention import attention_forward


def make_inputs(dims, dtype, generator):
    return {"qkv": random_tokens(dims, 3 * dims.NH * dims.HS, dtype, generator)}


def reference(t):
    out, att = attention_forward(t["qkv"], t["dims"].NH)  # qkv's shape does not say how C splits into heads
    return {"out": out, "att": att}


def sdpa_attention(qkv, NH):
    """PyTorch's own attention on the same layout, as nanoGPT writes it: the split and the head
    transposes are views (scaled_dot_product_attention reads strided q, k, v), the final
    contiguous() is the permute back into (B, T, C)."""
    B, T, three_C = qkv.shape
    C = three_C // 3
    q, k, v = (x.view(B, T, NH, C // NH).transpose(1, 2) for x in qkv.split(C, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return y.transpose(1, 2).contiguous().view(B, T, C)


def torch_eager(t, dims):
    qkv, NH = t["qkv"], dims.NH
    return lambda: sdpa_attention(qkv, NH)


def torch_compiled(t, dims):
    # The reference's own three steps (matmul, masked softmax, matmul; out and att), compiled.
    qkv, NH = t["qkv"], dims.NH
    compiled = torch.compile(lambda x: attention_forward(x, NH), dynamic=False)
    return lambda: compiled(qkv)


# fp32: the scores are sums of HS products and out sums up to T terms of att * v, all accumulated
# in fp32; errors stay near 1e-6 of values of order one to ten (measured at every test shape).
FP32 = Tolerance(atol=1e-5, rtol=1e-5)
TOLERANCES = {
    "fp32": {"out": FP32, "att": FP32},
    # bf16: att is rounded to 8 bits of mantissa when stored. out needs a looser atol: the scores
    # themselves are rounded to bf16 before the softmax (cuBLAS writes preatt in the op's dtype),
    # an absolute error of up to scale * |q.k| * 2^-9, about 0.01 in the logits, so each att value
    # is off by up to ~1% relative and out by ~1% of |v| (values of 1 to 6), however small out is
    # after cancellation. Measured with these roundings in torch: 0.019 beyond rtol at (8,1024,12,64).
    "bf16": {"out": Tolerance(atol=3e-2, rtol=1e-2), "att": Tolerance(atol=1e-2, rtol=1e-2)},
}

FORWARD = Op(
    layer="attention",
    pass_name="forward",
    dims=DIMS,
    inputs={"qkv": QKV},
    outputs={"out": TOKENS, "att": SCORES},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances=TOLERANCES,
    flops=lambda d: 2 * causal_flops_per_matmul(d),  # q k^T and att v, causal half only
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "forward",
)


def heads(d):
    return d.B * d.NH


def head_elements(d):
    return d.B * d.NH * d.T * d.HS


def three_step_scratch(d, dtype, config):
    # floatX throughout: cuBLAS (through torch.bmm) reads and writes the op's dtype, so a bf16 run
    # keeps its scores in bf16 too (rounded once before the softmax, which works in fp32).
    return {"q": HEADS, "k": HEADS, "v": HEADS, "preatt": SCORES, "y": HEADS}


# One config value, the threads per block of the three kernels: the permutes use one thread per
# element, the softmax one warp per row (block_size / 32 rows a block).
@FORWARD.variant(1, configs=block_sizes(256, 64, 1024), dtypes=("fp32", "bf16"), scratch=three_step_scratch)
def three_step(k, a, s, block_size):
    n, bh = head_elements(s), heads(s)
    k.attention_split_qkv((ceil_div(n, block_size),), (block_size,), (a.q, a.k, a.v, a.qkv, s.B, s.T, s.NH, s.HS))
    torch.bmm(a.q.view(bh, s.T, s.HS), a.k.view(bh, s.T, s.HS).transpose(1, 2), out=a.preatt.view(bh, s.T, s.T))
    rows = bh * s.T
    k.attention_softmax_causal((ceil_div(rows, block_size // 32),), (block_size,),
                               (a.att, a.preatt, rows, s.T, scale(s)))
    torch.bmm(a.att.view(bh, s.T, s.T), a.v.view(bh, s.T, s.HS), out=a.y.view(bh, s.T, s.HS))
    k.attention_merge_heads((ceil_div(n, block_size),), (block_size,), (a.out, a.y, s.B, s.T, s.NH, s.HS))


# Mirror of MAX_T in 2_softmax_in_registers.cu: the longest row its register array holds.
MAX_T_IN_REGISTERS = 1024


def refuse_long_rows(d, dtype, config):
    if d.T > MAX_T_IN_REGISTERS:
        return f"T={d.T} does not fit the {MAX_T_IN_REGISTERS}-score register array per row"
    return None


def in_place_scratch(d, dtype, config):
    return {"q": HEADS, "k": HEADS, "v": HEADS, "y": HEADS}  # no preatt: the scores live in att


# The softmax kernel uses 72 (fp32) to 80 (bf16) registers a thread (ptxas, sm_90), so
# 1024-thread blocks (over 64K registers) cannot launch.
@FORWARD.variant(2, configs=block_sizes(256, 64, 512), dtypes=("fp32", "bf16"), refuse=refuse_long_rows,
                 scratch=in_place_scratch)
def softmax_in_registers(k, a, s, block_size):
    n, bh = head_elements(s), heads(s)
    k.attention_split_qkv((ceil_div(n, block_size),), (block_size,), (a.q, a.k, a.v, a.qkv, s.B, s.T, s.NH, s.HS))
    att = a.att.view(bh, s.T, s.T)
    torch.bmm(a.q.view(bh, s.T, s.HS), a.k.view(bh, s.T, s.HS).transpose(1, 2), out=att)
    rows = bh * s.T
    k.attention_softmax_causal_inplace((ceil_div(rows, block_size // 32),), (block_size,), (a.att, rows, s.T, scale(s)))
    torch.bmm(att, a.v.view(bh, s.T, s.HS), out=a.y.view(bh, s.T, s.HS))
    k.attention_merge_heads((ceil_div(n, block_size),), (block_size,), (a.out, a.y, s.B, s.T, s.NH, s.HS))


# Variant 3: one fused kernel, a block per 64 query rows of one (b, h).
@FORWARD.variant(3, dtypes=("bf16",), refuse=refuse_other_head_sizes)
def fused_tensor_cores(k, a, s):
    k.attention_forward_fused((ceil_div(s.T, 64), s.B * s.NH), (128,), (a.out, a.att, a.qkv, s.B, s.T, s.NH, scale(s)))
