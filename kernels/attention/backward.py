"""Attention backward: the contract and the launch geometry of each variant in backward/.

The gradient of GPT-2's causal self-attention with respect to its input (reference/attention.py):
    dout (B, T, C) floatX, qkv (B, T, 3C) floatX and the forward's att (B, NH, T, T) floatX in;
    dqkv (B, T, 3C) floatX out, overwritten (never accumulated into), C = NH * HS.
The backward reads the saved att rather than recomputing it from q and k. Inputs are only read.

Variant 1 is four kernels around four cuBLAS calls (torch.bmm with out=, on torch's stream):
    attention_split_qkv(q, k, v, qkv, B, T, NH, HS)           q, k, v (B, NH, T, HS) scratch
    attention_split_heads(dy, dout, B, T, NH, HS)              dy (B, NH, T, HS) scratch
    datt = dy @ v^T,  dv = att^T @ dy                          cuBLAS, datt (B, NH, T, T) scratch
    attention_softmax_causal_backward(datt, att, B * NH * T, T, scale)   datt becomes dpreatt in place
    dq = dpreatt @ k,  dk = dpreatt^T @ q                      cuBLAS
    attention_merge_qkv(dqkv, dq, dk, dv, B, T, NH, HS)

Rated like the forward: TFLOP/s against the GEMM ceiling, counting the four matmuls over the
causal half of the scores only (4 x 2 B NH HS T (T + 1) / 2 flops). The bytes column counts dout,
qkv and att read and dqkv written; the eager baseline (scaled_dot_product_attention's backward, a
flash kernel) recomputes the probabilities instead of reading att.
"""
from pathlib import Path

import torch

from harness.contract import Op, TensorSpec, Tolerance, block_sizes, ceil_div
from kernels.attention.forward import sdpa_attention
from kernels.attention.shapes import (
    BENCH_SHAPE, DIMS, HEADS, QKV, SCORES, SHAPES, TOKENS, causal_flops_per_matmul, random_tokens,
    refuse_other_head_sizes, rounded, scale)
from reference.attention import attention_backward, attention_forward


def make_inputs(dims, dtype, generator):
    C = dims.NH * dims.HS
    qkv = random_tokens(dims, 3 * C, dtype, generator)
    dout = random_tokens(dims, C, dtype, generator)
    # att is what the forward saved: the probabilities of the rounded qkv, stored in the dtype.
    _, att = attention_forward(qkv, dims.NH)
    return {"dout": dout, "qkv": qkv, "att": rounded(att, dtype)}


def reference(t):
    return {"dqkv": attention_backward(t["dout"], t["qkv"], t["att"], t["dims"].NH)}


def torch_eager(t, dims):
    # Autograd through PyTorch's attention: the forward graph is built once here, each call runs
    # only its backward (the head transposes' and the split's backward included).
    qkv = t["qkv"].detach().requires_grad_()
    out = sdpa_attention(qkv, dims.NH)
    dout = t["dout"]
    return lambda: torch.autograd.grad(out, qkv, dout, retain_graph=True)


def torch_compiled(t, dims):
    # The reference's own backward (reads att, four matmuls and the softmax backward), compiled.
    dout, qkv, att, NH = t["dout"], t["qkv"], t["att"], dims.NH
    compiled = torch.compile(lambda g, x, a: attention_backward(g, x, a, NH), dynamic=False)
    return lambda: compiled(dout, qkv, att)


TOLERANCES = {
    # fp32: every sum (HS terms for datt, up to T for dv, dq, dk) accumulates in fp32; errors stay
    # near 1e-6 to 1e-5 of gradients up to about 40 (measured at every test shape).
    "fp32": {"dqkv": Tolerance(atol=1e-5, rtol=1e-5)},
    # bf16: a looser atol. datt (values up to ~10) is rounded to bf16 before the softmax backward,
    # whose datt - sum(att * datt) cancels most of it, so dpreatt carries an absolute error of
    # ~2^-9 of |datt|, not of itself; dq and dk then sum up to T such terms. Measured with these
    # roundings in torch: dk needs 0.019 beyond rtol at (8,1024,12,64).
    "bf16": {"dqkv": Tolerance(atol=3e-2, rtol=1e-2)},
}

BACKWARD = Op(
    layer="attention",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": TOKENS, "qkv": QKV, "att": SCORES},
    outputs={"dqkv": QKV},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances=TOLERANCES,
    flops=lambda d: 4 * causal_flops_per_matmul(d),  # datt, dv, dq, dk; causal half only
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "backward",
)


def three_step_scratch(d, dtype, config):
    # floatX throughout, as cuBLAS (through torch.bmm) reads and writes the op's dtype. datt
    # holds dout v^T, then (rewritten in place by the softmax backward) dpreatt.
    return {"q": HEADS, "k": HEADS, "v": HEADS, "dy": HEADS, "datt": SCORES, "dq": HEADS, "dk": HEADS, "dv": HEADS}


# One config value, the threads per block of every kernel: one thread per element for the
# permutes, one warp per row (block_size / 32 rows a block) for the softmax backward.
@BACKWARD.variant(1, configs=block_sizes(256, 64, 1024), dtypes=("fp32", "bf16"), scratch=three_step_scratch)
def three_step(k, a, s, block_size):
    n, bh, T, HS = s.B * s.NH * s.T * s.HS, s.B * s.NH, s.T, s.HS
    elements = (ceil_div(n, block_size),)
    k.attention_split_qkv(elements, (block_size,), (a.q, a.k, a.v, a.qkv, s.B, T, s.NH, HS))
    k.attention_split_heads(elements, (block_size,), (a.dy, a.dout, s.B, T, s.NH, HS))
    q, key, v = (x.view(bh, T, HS) for x in (a.q, a.k, a.v))
    dy, att, datt = a.dy.view(bh, T, HS), a.att.view(bh, T, T), a.datt.view(bh, T, T)
    torch.bmm(dy, v.transpose(1, 2), out=datt)
    torch.bmm(att.transpose(1, 2), dy, out=a.dv.view(bh, T, HS))
    rows = bh * T
    k.attention_softmax_causal_backward((ceil_div(rows, block_size // 32),), (block_size,),
                                        (a.datt, a.att, rows, T, scale(s)))
    torch.bmm(datt, key, out=a.dq.view(bh, T, HS))
    torch.bmm(datt.transpose(1, 2), q, out=a.dk.view(bh, T, HS))
    k.attention_merge_qkv(elements, (block_size,), (a.dqkv, a.dq, a.dk, a.dv, s.B, T, s.NH, HS))


# Variant 2: two fused tensor-core kernels (dq, then dk and dv), compiled for HS = 64 only. D, the
# softmax backward's row dot product, passes from the first kernel to the second in scratch.
ROW_DOTS = TensorSpec(lambda d: (d.B, d.NH, d.T), "fp32")
# Mirror of DKDV_SHARED in 2_fused_tensor_cores.cu: dout and q tiles, the att tile, 4 warps' score (rows of 72 floats),
# probability and dpreatt tiles, 64 dots (bytes; over 48 KB, so the launch opts in).
DKDV_SHARED_BYTES = 2 * 64 * 72 * 2 + 64 * 66 * 2 + 4 * 16 * 72 * 4 + 2 * 4 * 16 * 72 * 2 + 64 * 4


def fused_scratch(d, dtype, config):
    return {"row_dots": ROW_DOTS}


@BACKWARD.variant(2, dtypes=("bf16",), refuse=refuse_other_head_sizes, scratch=fused_scratch)
def fused_tensor_cores(k, a, s):
    grid, args = (ceil_div(s.T, 64), s.B * s.NH), (a.dqkv, a.row_dots, a.dout, a.qkv, a.att, s.B, s.T, s.NH, scale(s))
    k.attention_backward_dq(grid, (128,), args)
    k.attention_backward_dkdv(grid, (128,), args, shared_mem=DKDV_SHARED_BYTES)
