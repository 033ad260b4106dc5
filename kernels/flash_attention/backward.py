"""Flash attention backward: the contract and the launch geometry of each variant in backward/.

The gradient of GPT-2's causal self-attention with respect to its input (reference/flash_attention.py):
    dout (B, T, C) floatX, qkv (B, T, 3C) floatX, and the forward's out (B, T, C) floatX and lse
    (B, NH, T) fp32 in; dqkv (B, T, 3C) floatX out, overwritten (never accumulated into), C = NH * HS.
No probabilities are read: every variant recomputes P = exp(scale q k^T - lse) (masked to j <= t)
from q, k and lse, and uses D_t = dout_t . out_t (per head) for the softmax backward's row dot
product. Inputs are only read. The variants keep D in a (B, NH, T) fp32 scratch buffer (row_dots).

Variant 1 is three kernels, one warp per row (query rows for D and dq, key rows for dk and dv):
    flash_attention_row_dots(row_dots, dout, out, B, T, NH, HS)
    flash_attention_backward_dq(dqkv, row_dots, dout, qkv, lse, B, T, NH, HS, scale)
    flash_attention_backward_dkdv(dqkv, row_dots, dout, qkv, lse, B, T, NH, HS, scale)
Variant 2 is two kernels on the tensor cores, a block per 64 rows of one (b, h), HS = 64:
    flash_attention_backward_dq_tiles(dqkv, row_dots, dout, qkv, out, lse, B, T, NH, scale)   also writes D
    flash_attention_backward_dkdv_tiles(dqkv, row_dots, dout, qkv, lse, B, T, NH, scale)
Variant 3 is variant 2's two kernels on mma.sync, everything between the products in registers:
    flash_attention_backward_dq_mma_sync(dqkv, row_dots, dout, qkv, out, lse, B, T, NH, scale)   also writes D
    flash_attention_backward_dkdv_mma_sync(dqkv, row_dots, dout, qkv, lse, B, T, NH, scale)
Variant 4 is variant 3 with every staged tile double-buffered:
    flash_attention_backward_dq_pipelined(dqkv, row_dots, dout, qkv, out, lse, B, T, NH, scale)   also writes D
    flash_attention_backward_dkdv_pipelined(dqkv, row_dots, dout, qkv, lse, B, T, NH, scale)
Variant 5 keeps only the key blocks and adds dq's shares into an fp32 scratch (B, T, C) with atomics:
    flash_attention_backward_prepare_atomic(row_dots, dq_accum, dout, out, B, T, NH)   D, and dq_accum zeroed
    flash_attention_backward_atomic_dq(dq_accum, dqkv, row_dots, dout, qkv, lse, B, T, NH, scale)
    flash_attention_backward_store_dq(dqkv, dq_accum, B, T, NH)   dq_accum rounded into dqkv

Rated like attention backward: TFLOP/s against the GEMM ceiling, counting five matmuls over the
causal half of the scores (5 x 2 B NH HS T (T + 1) / 2 flops): q k^T recomputed once, dP = dout v^T,
dv = P^T dout, dq = dS k and dk = dS^T q, the work a flash backward needs. Variants 2 to 4
recompute q k^T and dout v^T in each of their two directions (dq's kernel and dk/dv's kernel), so
they execute seven such matmuls to avoid atomics; the rating does not credit the two extra ones.
Variant 5 executes the five, and pays with atomics instead (and a dq sum whose order varies). The
bytes column counts dout, qkv, out and lse read and dqkv written. The eager baseline (autograd
through scaled_dot_product_attention, a flash backward on a GPU) and the torch.compile baseline (the
reference's backward, which materialises P, dP and dS) produce the same dqkv.
"""
from pathlib import Path

import torch

from harness.contract import Op, Tolerance, block_sizes, ceil_div
from kernels.attention.forward import sdpa_attention
from kernels.attention.shapes import (
    BENCH_SHAPE, DIMS, QKV, SHAPES, TOKENS, causal_flops_per_matmul, random_tokens, refuse_other_head_sizes,
    rounded, scale)
from kernels.flash_attention.forward import refuse_wide_heads
from kernels.flash_attention.shapes import DQ_ACCUMULATOR, LSE, ROW_DOTS
from reference.flash_attention import flash_attention_backward, flash_attention_forward


def make_inputs(dims, dtype, generator):
    C = dims.NH * dims.HS
    qkv = random_tokens(dims, 3 * C, dtype, generator)
    dout = random_tokens(dims, C, dtype, generator)
    # out and lse are what the forward saved: computed in float64 from the rounded qkv, out stored in
    # the dtype, lse in fp32 whatever the dtype.
    out, lse = flash_attention_forward(qkv, dims.NH)
    return {"dout": dout, "qkv": qkv, "out": rounded(out, dtype), "lse": lse.to(torch.float32).to(torch.float64)}


def reference(t):
    return {"dqkv": flash_attention_backward(t["dout"], t["qkv"], t["out"], t["lse"], t["dims"].NH)}


def torch_eager(t, dims):
    # Autograd through PyTorch's attention: the forward graph is built once here, each call runs only
    # its backward (which recomputes the probabilities from the lse it saved, on a GPU).
    qkv = t["qkv"].detach().requires_grad_()
    out = sdpa_attention(qkv, dims.NH)
    dout = t["dout"]
    return lambda: torch.autograd.grad(out, qkv, dout, retain_graph=True)


def torch_compiled(t, dims):
    # The reference's own backward (recomputes P from lse, five matmuls), compiled.
    dout, qkv, out, lse, NH = t["dout"], t["qkv"], t["out"], t["lse"], dims.NH
    compiled = torch.compile(lambda g, x, y, s: flash_attention_backward(g, x, y, s, NH), dynamic=False)
    return lambda: compiled(dout, qkv, out, lse)


TOLERANCES = {
    # fp32: every sum (HS terms for the scores, dP and D; up to T for dq, dk and dv) accumulates in
    # fp32, and p = exp(score - lse) carries the score's fp32 error, relative. Measured by replaying
    # variant 1's fp32 arithmetic (sequential sums over keys, and over queries) in torch at
    # (1,1024,12,64): at most 28% of this tolerance, for dk (gradients up to ~40).
    "fp32": {"dqkv": Tolerance(atol=1e-5, rtol=1e-5)},
    # bf16: variant 1 works in fp32 and rounds dqkv once (within rtol). Variant 2 rounds P (for
    # dv = P^T dout) and dS = scale P (dP - D) (for dq and dk) to bf16 before the tensor-core
    # products. dP - D cancels most of dP (values up to ~10), so dS carries an absolute error of
    # ~2^-9 of P |dP|, not of itself, and dq and dk sum up to T such terms: attention backward's
    # reasoning, without its bf16 datt (dP stays fp32 here). Measured with variant 2's roundings in
    # torch at (8,1024,12,64): dq needs atol 0.0094 beyond rtol, dk 0.0084, dv 0.0069.
    "bf16": {"dqkv": Tolerance(atol=2e-2, rtol=1e-2)},
}

BACKWARD = Op(
    layer="flash_attention",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": TOKENS, "qkv": QKV, "out": TOKENS, "lse": LSE},
    outputs={"dqkv": QKV},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances=TOLERANCES,
    flops=lambda d: 5 * causal_flops_per_matmul(d),  # q k^T, dP, dv, dq, dk; causal half only
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "backward",
)


def row_dots_scratch(d, dtype, config):
    return {"row_dots": ROW_DOTS}


# One config value, the threads per block of the three kernels, each one warp per row
# (block_size / 32 rows a block). The dq kernel stages q_t, dout_t and 32 ds values per warp in
# dynamic shared memory, the dk/dv kernel k_j, v_j and 32 p and ds values (floats).
@BACKWARD.variant(1, configs=block_sizes(128, 32, 512), dtypes=("fp32", "bf16"), refuse=refuse_wide_heads,
                  scratch=row_dots_scratch)
def warp_per_row(k, a, s, block_size):
    warps = block_size // 32
    grid, block = (ceil_div(s.B * s.NH * s.T, warps),), (block_size,)
    k.flash_attention_row_dots(grid, block, (a.row_dots, a.dout, a.out, s.B, s.T, s.NH, s.HS))
    args = (a.dqkv, a.row_dots, a.dout, a.qkv, a.lse, s.B, s.T, s.NH, s.HS, scale(s))
    k.flash_attention_backward_dq(grid, block, args, shared_mem=warps * (2 * s.HS + 32) * 4)
    k.flash_attention_backward_dkdv(grid, block, args, shared_mem=warps * (2 * s.HS + 64) * 4)


# Mirrors of DQ_SHARED and DKDV_SHARED in 2_tensor_cores_recompute.cu (bytes; both over 48 KB, so
# the launches opt in): two 64 x 72 bf16 tiles, 4 warps' two 16 x 64 fp32 tiles in rows of 72 floats (scores and dP),
# and 4 warps' bf16 16 x 72 tiles (dS; for dk and dv also P^T), plus 64 lse and 64 D values.
TILE_BYTES = 64 * 72 * 2
SCORE_BYTES = 4 * 16 * 72 * 4
PROB_BYTES = 4 * 16 * 72 * 2
DQ_SHARED_BYTES = 2 * TILE_BYTES + 2 * SCORE_BYTES + PROB_BYTES + 2 * 64 * 4
DKDV_SHARED_BYTES = 2 * TILE_BYTES + 2 * SCORE_BYTES + 2 * PROB_BYTES + 2 * 64 * 4


@BACKWARD.variant(2, dtypes=("bf16",), refuse=refuse_other_head_sizes, scratch=row_dots_scratch)
def tensor_cores(k, a, s):
    grid = (ceil_div(s.T, 64), s.B * s.NH)
    k.flash_attention_backward_dq_tiles(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.out, a.lse, s.B, s.T,
                                                       s.NH, scale(s)), shared_mem=DQ_SHARED_BYTES)
    k.flash_attention_backward_dkdv_tiles(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.lse, s.B, s.T, s.NH,
                                                         scale(s)), shared_mem=DKDV_SHARED_BYTES)


# Variant 2's grid and blocks; the staged tiles (and lse and D) are static shared memory.
@BACKWARD.variant(3, dtypes=("bf16",), refuse=refuse_other_head_sizes, scratch=row_dots_scratch)
def mma_sync_registers(k, a, s):
    grid = (ceil_div(s.T, 64), s.B * s.NH)
    k.flash_attention_backward_dq_mma_sync(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.out, a.lse, s.B, s.T,
                                                          s.NH, scale(s)))
    k.flash_attention_backward_dkdv_mma_sync(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.lse, s.B, s.T, s.NH,
                                                            scale(s)))


# Variant 3's grids and blocks; the double buffers are static shared memory (32 KB and 33 KB).
@BACKWARD.variant(4, dtypes=("bf16",), refuse=refuse_other_head_sizes, scratch=row_dots_scratch)
def pipelined_tiles(k, a, s):
    grid = (ceil_div(s.T, 64), s.B * s.NH)
    k.flash_attention_backward_dq_pipelined(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.out, a.lse, s.B, s.T,
                                                           s.NH, scale(s)))
    k.flash_attention_backward_dkdv_pipelined(grid, (128,), (a.dqkv, a.row_dots, a.dout, a.qkv, a.lse, s.B, s.T,
                                                             s.NH, scale(s)))


def atomic_dq_scratch(d, dtype, config):
    return {"row_dots": ROW_DOTS, "dq_accum": DQ_ACCUMULATOR}


# Variant 3's dk/dv grid for the key blocks; one warp per (b, t, h) row to prepare, 4 values a
# thread to store dq. The key blocks' shared memory (32.5 KB) is static.
@BACKWARD.variant(5, dtypes=("bf16",), refuse=refuse_other_head_sizes, scratch=atomic_dq_scratch,
                  deterministic=False)
def atomic_dq_one_pass(k, a, s):
    rows = s.B * s.T * s.NH
    k.flash_attention_backward_prepare_atomic((ceil_div(rows, 4),), (128,), (a.row_dots, a.dq_accum, a.dout, a.out,
                                                                            s.B, s.T, s.NH))
    k.flash_attention_backward_atomic_dq((ceil_div(s.T, 64), s.B * s.NH), (128,),
                                         (a.dq_accum, a.dqkv, a.row_dots, a.dout, a.qkv, a.lse, s.B, s.T, s.NH,
                                          scale(s)))
    k.flash_attention_backward_store_dq((ceil_div(rows * s.HS, 4 * 128),), (128,), (a.dqkv, a.dq_accum, s.B, s.T,
                                                                                   s.NH))
