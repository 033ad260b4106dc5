"""Flash attention forward: the contract and the launch geometry of each variant in forward/.

GPT-2's causal self-attention after the QKV projection (reference/flash_attention.py has the math):
    qkv (B, T, 3C) floatX in; out (B, T, C) floatX and lse (B, NH, T) fp32 out, C = NH * HS.
lse[b, h, t] = log(sum_{j <= t} exp(scale * q_t . k_j)) (natural log, scale = 1 / sqrt(HS)) is all the
backward needs to recompute the probabilities: one float per query row instead of attention's
(B, NH, T, T) att. Both outputs are overwritten; qkv is only read.

Variant 1 is one kernel, one warp per query row (the online softmax, 32 keys at a time):
    flash_attention_forward_rows(out, lse, qkv, B, T, NH, HS, scale)     grid ceil(B NH T / warps)
Variant 2 is one kernel on the tensor cores, a block per 64 query rows of one (b, h), HS = 64:
    flash_attention_forward_tiles(out, lse, qkv, B, T, NH, scale)        grid (ceil(T / 64), B NH)
Variant 3 is the same geometry on mma.sync, its scores and output in registers:
    flash_attention_forward_mma_sync(out, lse, qkv, B, T, NH, scale)     grid (ceil(T / 64), B NH)
Variant 4 is variant 3 with k and v double-buffered:
    flash_attention_forward_pipelined(out, lse, qkv, B, T, NH, scale)    grid (ceil(T / 64), B NH)

Rated like attention forward: TFLOP/s against the cuBLAS GEMM ceiling, counting the multiply-adds
of the two matmuls (q k^T and P v) over the causal half of the scores only. The bytes column counts
qkv read, out and lse written. The eager baseline is PyTorch's scaled_dot_product_attention (a flash
kernel itself on a GPU), through attention forward's sdpa_attention: it returns out only, not lse (it
computes one internally when autograd needs it), so it does slightly less than the contract asks.
The torch.compile baseline compiles the reference's own steps (scores, lse, probabilities, P v),
which do materialise the T x T scores.
"""
from pathlib import Path

import torch

from harness.contract import Op, Tolerance, block_sizes, ceil_div
from kernels.attention.forward import sdpa_attention
from kernels.attention.shapes import (
    BENCH_SHAPE, DIMS, QKV, SHAPES, TOKENS, causal_flops_per_matmul, random_tokens, refuse_other_head_sizes,
    scale)
from kernels.flash_attention.shapes import LSE
from reference.flash_attention import flash_attention_forward


def make_inputs(dims, dtype, generator):
    return {"qkv": random_tokens(dims, 3 * dims.NH * dims.HS, dtype, generator)}


def reference(t):
    out, lse = flash_attention_forward(t["qkv"], t["dims"].NH)  # qkv's shape does not say how C splits into heads
    return {"out": out, "lse": lse}


def torch_eager(t, dims):
    # PyTorch's attention on the same layout: out only (no lse; see the module docstring).
    qkv, NH = t["qkv"], dims.NH
    return lambda: sdpa_attention(qkv, NH)


def torch_compiled(t, dims):
    # The reference's own steps (out and lse), compiled.
    qkv, NH = t["qkv"], dims.NH
    compiled = torch.compile(lambda x: flash_attention_forward(x, NH), dynamic=False)
    return lambda: compiled(qkv)


TOLERANCES = {
    # fp32: scores are HS-long fp32 dot products, the online softmax's running sums add up to T terms
    # in fp32. Measured by replaying variant 1's key-by-key fp32 recurrence in torch at (1,1024,12,64):
    # 14% of this tolerance for out (values up to ~5), 2% for lse (values up to ~12).
    "fp32": {"out": Tolerance(atol=1e-5, rtol=1e-5), "lse": Tolerance(atol=1e-5, rtol=1e-5)},
    # bf16: the products of bf16 q and k are exact in fp32 and every sum is fp32, so lse stays as
    # accurate as in fp32 (and is stored in fp32): 1e-4 leaves room for the tensor cores' summation
    # order. out is rounded to bf16 when stored (within rtol), and variant 2 also rounds each
    # probability (exp(score - running max), in [0, 1]) to bf16 before the P v product on the tensor
    # cores: an error of up to 2^-9 of each term, so an absolute error of order 2^-9 of |v| (values of
    # 1 to 6) in out, however small out is after cancellation. Unlike attention forward, the scores
    # themselves are never rounded to bf16, hence a tighter atol than attention's 3e-2. Measured with
    # variant 2's roundings (per-tile running maximum, bf16 P, fp32 sum) in torch at (8,1024,12,64):
    # out needs atol 0.0022 beyond rtol; lse stays within rtol alone.
    "bf16": {"out": Tolerance(atol=1e-2, rtol=1e-2), "lse": Tolerance(atol=1e-4, rtol=1e-4)},
}

FORWARD = Op(
    layer="flash_attention",
    pass_name="forward",
    dims=DIMS,
    inputs={"qkv": QKV},
    outputs={"out": TOKENS, "lse": LSE},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances=TOLERANCES,
    flops=lambda d: 2 * causal_flops_per_matmul(d),  # q k^T and P v, causal half only
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "forward",
)


# Mirror of MAX_HS in 1_warp_per_row_online_softmax.cu: the widest head a lane's register slots hold.
MAX_HS = 128


def refuse_wide_heads(d, dtype, config):
    if d.HS > MAX_HS:
        return f"HS={d.HS}: variant 1 holds at most {MAX_HS} channels of a head in a warp's registers"
    return None


# One warp per query row, block_size / 32 rows per block; each warp stages q_t and a chunk's 32
# probabilities in dynamic shared memory (HS + 32 floats).
@FORWARD.variant(1, configs=block_sizes(128, 32, 512), dtypes=("fp32", "bf16"), refuse=refuse_wide_heads)
def warp_per_row(k, a, s, block_size):
    warps = block_size // 32
    k.flash_attention_forward_rows((ceil_div(s.B * s.NH * s.T, warps),), (block_size,),
                                   (a.out, a.lse, a.qkv, s.B, s.T, s.NH, s.HS, scale(s)),
                                   shared_mem=warps * (s.HS + 32) * 4)


# Mirror of SHARED_BYTES in 2_tensor_cores_online_softmax.cu: the q, k and v tiles (64 x 72 bf16
# each), 4 warps' 16 x 64 fp32 score tiles (rows of 72 floats) and 16 x 72 bf16 probability tiles. Over 48 KB, so the
# launch opts in (harness.gpu does it when shared_mem passes 48 KB).
TILE_BYTES = 64 * 72 * 2
SHARED_BYTES = 3 * TILE_BYTES + 4 * 16 * 72 * 4 + 4 * 16 * 72 * 2


# A block per 64 query rows of one (b, h), 4 warps of 16 rows.
@FORWARD.variant(2, dtypes=("bf16",), refuse=refuse_other_head_sizes)
def tensor_cores(k, a, s):
    k.flash_attention_forward_tiles((ceil_div(s.T, 64), s.B * s.NH), (128,),
                                    (a.out, a.lse, a.qkv, s.B, s.T, s.NH, scale(s)), shared_mem=SHARED_BYTES)


# The same geometry as variant 2; its 24 KB of q, k and v tiles are static shared memory.
@FORWARD.variant(3, dtypes=("bf16",), refuse=refuse_other_head_sizes)
def mma_sync_registers(k, a, s):
    k.flash_attention_forward_mma_sync((ceil_div(s.T, 64), s.B * s.NH), (128,),
                                       (a.out, a.lse, a.qkv, s.B, s.T, s.NH, scale(s)))


# Variant 3's geometry; q and two buffers each of k and v (40 KB) are static shared memory.
@FORWARD.variant(4, dtypes=("bf16",), refuse=refuse_other_head_sizes)
def pipelined_key_tiles(k, a, s):
    k.flash_attention_forward_pipelined((ceil_div(s.T, 64), s.B * s.NH), (128,),
                                        (a.out, a.lse, a.qkv, s.B, s.T, s.NH, scale(s)))
