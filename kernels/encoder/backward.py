"""Encoder backward: the contract and the launch geometry of each variant in backward/.

dwte[v] = sum of dout[b, t] over the positions with tokens[b, t] == v (zero for tokens that never
occur); dwpe[t] = sum over b of dout[b, t]. Both outputs are overwritten, never accumulated into:
the harness fills them with NaN before each launch, and every variant writes every element
(variant 1 by zeroing them on the current stream before its atomics).

Kernel arguments, in this order:
    variant 1: dwte (V, C) float, dwpe (T, C) float, dout (B, T, C) floatX, tokens (B, T) int, B, T, C
    variant 2, first kernel: dwte_accum (V, C) float scratch, dwpe (T, C) floatX, dout, tokens, B, T, C
    variant 2, second kernel: dwte (V, C) floatX, dwte_accum (V, C) float, V * C
    variant 3 (N = B * T, int scratch): chunk_ranks(rank, chunk_counts, tokens, N, V),
        chunk_offsets(chunk_counts, totals, chunks, V), bucket_starts(starts, totals, V),
        scatter(order, rank, chunk_counts, starts, tokens, N, V), sum_buckets(dwte, order, starts, dout, C),
        position_sums(dwpe, dout, B, T, C)
"""
from pathlib import Path

import torch

from harness.contract import Op, TensorSpec, Tolerance, block_sizes, ceil_div
from kernels.encoder.shapes import (
    ACTIVATIONS, BENCH_SHAPE, DIMS, POSITION_TABLE, SHAPES, TOKEN_TABLE, TOKENS, random_tokens, rounded)
from reference.encoder import encoder_backward


def make_inputs(dims, dtype, generator):
    # dout with a mean that varies by position and is not zero overall: a kernel that mixed up
    # positions or dropped some terms of a sum would still pass on centred data more often.
    noise = torch.randn(dims.B, dims.T, dims.C, generator=generator, dtype=torch.float64)
    offsets = torch.rand(1, dims.T, 1, generator=generator, dtype=torch.float64) * 2.0 - 0.5
    return {"dout": rounded(noise + offsets, dtype), "tokens": random_tokens(dims, generator)}


def reference(t):
    dwte, dwpe = encoder_backward(t["dout"], t["tokens"], t["dims"].V)  # no input says the vocabulary's size
    return {"dwte": dwte, "dwpe": dwpe}


def torch_eager(t, dims):
    dout, tokens, V = t["dout"], t["tokens"], dims.V
    # what autograd runs for F.embedding's weight, plus the batch sum for the positions
    return lambda: (torch.ops.aten.embedding_dense_backward(dout, tokens, V, -1, False), dout.sum(dim=0))


def torch_compiled(t, dims):
    dout, tokens, V = t["dout"], t["tokens"], dims.V
    compiled = torch.compile(
        lambda g, ids: (torch.ops.aten.embedding_dense_backward(g, ids, V, -1, False), g.sum(dim=0)), dynamic=False)
    return lambda: compiled(dout, tokens)


# dwte rows are sums over every position holding that token: at the bench shape about
# B * T / 2 / COMMON_TOKENS = 512 terms of order one for the common ids, summed in fp32 in an order
# the atomics choose, so a few 1e-5 of absolute rounding; dwpe sums only B terms.
FP32_SUMS = Tolerance(atol=1e-4, rtol=1e-5)
# each bf16 output is the fp32 sum rounded once to 8 bits of mantissa
BF16 = Tolerance(atol=1e-2, rtol=1e-2)

BACKWARD = Op(
    layer="encoder",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": ACTIVATIONS, "tokens": TOKENS},
    outputs={"dwte": TOKEN_TABLE, "dwpe": POSITION_TABLE},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        "fp32": {"dwte": FP32_SUMS, "dwpe": FP32_SUMS},
        "bf16": {"dwte": BF16, "dwpe": BF16},
    },
    flops=lambda d: 2 * d.B * d.T * d.C,  # each dout element is added into dwte and into dwpe
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "backward",
)


@BACKWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32",), deterministic=False)
def atomics(k, a, s, block_size):
    # the atomics add into the outputs, which arrive poisoned: clear them first
    a.dwte.zero_()
    a.dwpe.zero_()
    k.encoder_backward_atomics(
        (ceil_div(s.B * s.T * s.C, block_size),), (block_size,), (a.dwte, a.dwpe, a.dout, a.tokens, s.B, s.T, s.C))


def accumulator_scratch(d, dtype, config):
    return {"dwte_accum": TensorSpec(lambda dd: (dd.V, dd.C), "fp32")}


@BACKWARD.variant(2, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                  scratch=accumulator_scratch, deterministic=False)
def fp32_scratch(k, a, s, block_size):
    a.dwte_accum.zero_()
    k.encoder_backward_accumulate(
        (ceil_div(s.T * s.C, block_size),), (block_size,), (a.dwte_accum, a.dwpe, a.dout, a.tokens, s.B, s.T, s.C))
    k.encoder_backward_convert((ceil_div(s.V * s.C, block_size),), (block_size,), (a.dwte, a.dwte_accum, s.V * s.C))


SORT_CHUNK = 1024  # CHUNK in 3_sorted_by_token.cu: positions ranked together by one block


def sort_scratch(d, dtype, config):
    chunks = lambda dd: ceil_div(dd.B * dd.T, SORT_CHUNK)
    return {"rank": TensorSpec(lambda dd: (dd.B * dd.T,), "i32"),
            "chunk_counts": TensorSpec(lambda dd: (chunks(dd), dd.V), "i32"),
            "totals": TensorSpec(lambda dd: (dd.V,), "i32"),
            "starts": TensorSpec(lambda dd: (dd.V + 1,), "i32"),
            "order": TensorSpec(lambda dd: (dd.B * dd.T,), "i32")}


# block_size: the threads of the per-token sums (across C) and of the per-position, per-token and
# dwpe kernels; the ranking blocks are SORT_CHUNK threads, the scan one block of 1024.
@BACKWARD.variant(3, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"), scratch=sort_scratch)
def sorted_by_token(k, a, s, block_size):
    N, chunks = s.B * s.T, ceil_div(s.B * s.T, SORT_CHUNK)
    a.chunk_counts.zero_()  # only the tokens a chunk holds are written
    k.encoder_backward_chunk_ranks((chunks,), (SORT_CHUNK,), (a.rank, a.chunk_counts, a.tokens, N, s.V))
    k.encoder_backward_chunk_offsets((ceil_div(s.V, block_size),), (block_size,), (a.chunk_counts, a.totals, chunks,
                                                                                   s.V))
    k.encoder_backward_bucket_starts((1,), (1024,), (a.starts, a.totals, s.V))
    k.encoder_backward_scatter((ceil_div(N, block_size),), (block_size,), (a.order, a.rank, a.chunk_counts, a.starts,
                                                                          a.tokens, N, s.V))
    k.encoder_backward_sum_buckets((s.V,), (block_size,), (a.dwte, a.order, a.starts, a.dout, s.C))
    k.encoder_backward_position_sums((ceil_div(s.T * s.C, block_size),), (block_size,), (a.dwpe, a.dout, s.B, s.T,
                                                                                        s.C))
