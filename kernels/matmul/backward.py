"""Matmul backward: the contract and the launch geometry of each variant in backward/.

    dinp (B, T, C)  = dout (B, T, OC) @ weight (OC, C)
    dweight (OC, C) = dout^T @ inp, summed over all B * T rows
    dbias (OC,)     = dout summed over all B * T rows

All three outputs are overwritten, never accumulated into: a training loop that accumulates
gradients over micro-steps adds them into its own buffers. They must not alias the inputs.
Kernel arguments of variant 1 (M = B * T, N = OC, K = C):
    dinp:    dinp (M, K) floatX, dout (M, N) floatX, weight (N, K) floatX, M, N, K
    dweight: dweight (N, K) floatX, dout (M, N) floatX, inp (M, K) floatX, M, N, K
    dbias:   dbias (N,) floatX, dout (M, N) floatX, M, N
"""
from pathlib import Path

import torch

from harness.contract import Op, TensorSpec, block_sizes, ceil_div
from kernels.matmul.shapes import (
    BENCH_SHAPE, BIAS, DIMS, ROWS_BY_INPUTS, ROWS_BY_OUTPUTS, SHAPES, WEIGHT, random_rows, random_weight, refuse_tf32,
    summed)
from reference.matmul import matmul_backward


def make_inputs(dims, dtype, generator):
    return {
        "dout": random_rows((dims.B, dims.T, dims.OC), generator, dtype),
        "inp": random_rows((dims.B, dims.T, dims.C), generator, dtype),
        "weight": random_weight(dims, generator, dtype),
    }


def reference(t):
    dinp, dweight, dbias = matmul_backward(t["dout"], t["inp"], t["weight"])
    return {"dinp": dinp, "dweight": dweight, "dbias": dbias}


def torch_eager(t, dims):
    dout, inp, weight = t["dout"].view(-1, dims.OC), t["inp"].view(-1, dims.C), t["weight"]
    return lambda: (torch.mm(dout, weight), torch.mm(dout.t(), inp), dout.sum(dim=0))


def torch_compiled(t, dims):
    dout, inp, weight = t["dout"].view(-1, dims.OC), t["inp"].view(-1, dims.C), t["weight"]
    compiled = torch.compile(lambda g, x, w: (g @ w, g.t() @ x, g.sum(dim=0)), dynamic=False)
    return lambda: compiled(dout, inp, weight)


# The bound is that of summed(): the number of terms and the RMS of each output at the bench shape
# (dinp: OC = 3072 terms, RMS 2.3; dweight: B * T = 8192 terms, RMS 116; dbias: 8192 terms,
# RMS 99). In fp32 a single term (dinp about 0.04, dweight and dbias about 1) is still
# well above each atol, so a dropped row or column fails.
BACKWARD = Op(
    layer="matmul",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": ROWS_BY_OUTPUTS, "inp": ROWS_BY_INPUTS, "weight": WEIGHT},
    outputs={"dinp": ROWS_BY_INPUTS, "dweight": WEIGHT, "dbias": BIAS},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        "fp32": {"dinp": summed(terms=3072, magnitude=2.5, unit=1e-5, rtol=1e-5),
                 "dweight": summed(terms=8192, magnitude=120.0, unit=1e-5, rtol=1e-5),
                 "dbias": summed(terms=8192, magnitude=100.0, unit=1e-5, rtol=1e-5)},
        # bf16 stores round to 8 bits of mantissa; the atol covers outputs near zero and cuBLAS
        # partial sums kept in reduced precision, as in the forward.
        "bf16": {"dinp": summed(terms=3072, magnitude=2.5, unit=2e-4, rtol=1e-2),
                 "dweight": summed(terms=8192, magnitude=120.0, unit=2e-4, rtol=1e-2),
                 "dbias": summed(terms=8192, magnitude=100.0, unit=2e-4, rtol=1e-2)},
    },
    # two matrix products of the forward's size (dinp and dweight) and one add per dout element (dbias)
    flops=lambda d: 4 * d.B * d.T * d.C * d.OC + d.B * d.T * d.OC,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "backward",
)


@BACKWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_output(k, a, s, block_size):
    M, N, K = s.B * s.T, s.OC, s.C
    k.matmul_backward_dinp((ceil_div(M * K, block_size),), (block_size,), (a.dinp, a.dout, a.weight, M, N, K))
    k.matmul_backward_dweight((ceil_div(N * K, block_size),), (block_size,), (a.dweight, a.dout, a.inp, M, N, K))
    k.matmul_backward_dbias((ceil_div(N, block_size),), (block_size,), (a.dbias, a.dout, M, N))


@BACKWARD.variant(2, dtypes=("fp32", "bf16"), refuse=refuse_tf32, library_header="""/*
 * matmul backward, variant 2: cuBLAS through torch.mm and torch.sum
 *
 * Changed: no kernel of ours: torch.mm(dout, weight, out=dinp) and torch.mm(dout^T, inp,
 * out=dweight) on 2-D views of the same buffers (two cuBLAS GEMMs; the transpose is a flag to
 * cuBLAS, not a copy), and torch.sum(dout, dim=0, out=dbias), a column reduction kernel.
 * Teaches: the ceiling for the backward pass, and that it is two GEMMs of the forward's size: the
 * backward costs twice the forward's FLOPs, whichever kernels compute it.
 * Run: python bench.py matmul --pass backward --variant 2
 */""")
def cublas(k, a, s):
    # .view and .t() make new tensor headers over the same storage: no device memory is allocated.
    dout = a.dout.view(-1, s.OC)
    torch.mm(dout, a.weight, out=a.dinp.view(-1, s.C))
    torch.mm(dout.t(), a.inp.view(-1, s.C), out=a.dweight)
    torch.sum(dout, dim=0, out=a.dbias)


def refuse_unaligned_rows(d, dtype, config):
    if d.C % 8 or d.OC % 8:
        return (f"C={d.C} and OC={d.OC} must be multiples of 8: rows would not start on the 16-byte boundaries "
                "the copies need")
    for name, tiles in (("C", ceil_div(d.C, 128)), ("B*T", ceil_div(d.B * d.T, 128)), ("OC", ceil_div(d.OC, 128))):
        if tiles > 65535:
            return f"{name} needs {tiles} tiles of 128, past the grid's y limit of 65535"
    return None


@BACKWARD.variant(3, dtypes=("bf16",), refuse=refuse_unaligned_rows)
def tensor_cores_wmma(k, a, s):
    M, N, K = s.B * s.T, s.OC, s.C
    k.matmul_backward_dinp_wmma((ceil_div(K, 128), ceil_div(M, 128)), (256,), (a.dinp, a.dout, a.weight, M, N, K))
    k.matmul_backward_dweight_dbias_wmma((ceil_div(K, 128), ceil_div(N, 128)), (256,),
                                         (a.dweight, a.dbias, a.dout, a.inp, M, N, K))


# Variant 4: split-K. The first config is the default; the sweep shows where the trade turns.
SPLIT_CONFIGS = [{"splits": 4}, {"splits": 2}, {"splits": 8}, {"splits": 16}]
SUM_BLOCK = 256  # threads a block of the partials' sum


# A split pays only while the unsplit grid leaves SMs idle. A grid this many blocks wide is already
# many waves deep (an H100 has 132 SMs), so the launch splits it no further than this: GPT-2's tied
# classifier (OC = 50,304: 2,358 blocks unsplit) then runs unsplit at every config, where 16 splits
# would write and re-read 16 x 50,304 x 768 fp32 partials (2.5 GB of scratch) for nothing. The
# bench shape (144 blocks) and the smaller layers are split as configured: 16 x 144 < 4,096.
SPLIT_GRID_CAP = 4096


def effective_splits(d, splits: int) -> int:
    """The splits a launch makes at dims d: the config's, fewer where the grid is already wide."""
    unsplit_blocks = ceil_div(d.C, 128) * ceil_div(d.OC, 128)
    return max(1, min(splits, SPLIT_GRID_CAP // unsplit_blocks))


def split_scratch(d, dtype, config):
    splits = effective_splits(d, config["splits"])
    return {"dweight_partials": TensorSpec(lambda d: (splits, d.OC, d.C), "fp32"),
            "dbias_partials": TensorSpec(lambda d: (splits, d.OC), "fp32")}


def launch_split_k(dinp, dweight_partials, sum_partials, a, s, splits):
    """The three launches of a split-K variant (4 and 5 differ only in their kernels): dinp, the
    partials of dweight and dbias, and their sum."""
    M, N, K = s.B * s.T, s.OC, s.C
    splits = effective_splits(s, splits)
    chunk = ceil_div(ceil_div(M, splits), 32) * 32  # whole 32-row slices per split
    dinp((ceil_div(K, 128), ceil_div(M, 128)), (256,), (a.dinp, a.dout, a.weight, M, N, K))
    dweight_partials((ceil_div(K, 128), ceil_div(N, 128), splits), (256,),
                     (a.dweight_partials, a.dbias_partials, a.dout, a.inp, M, N, K, chunk))
    sum_partials((ceil_div(N * K + N, SUM_BLOCK),), (SUM_BLOCK,),
                 (a.dweight, a.dbias, a.dweight_partials, a.dbias_partials, N, K, splits))


@BACKWARD.variant(4, configs=SPLIT_CONFIGS, dtypes=("bf16",), refuse=refuse_unaligned_rows, scratch=split_scratch)
def split_k(k, a, s, splits):
    launch_split_k(k.matmul_backward_dinp_split, k.matmul_backward_dweight_partials, k.matmul_backward_sum_partials,
                   a, s, splits)


@BACKWARD.variant(5, configs=SPLIT_CONFIGS, dtypes=("bf16",), refuse=refuse_unaligned_rows, scratch=split_scratch)
def mma_sync_split_k(k, a, s, splits):
    launch_split_k(k.matmul_backward_dinp_mma_sync, k.matmul_backward_dweight_partials_mma_sync,
                   k.matmul_backward_sum_partials_mma_sync, a, s, splits)


# Variant 5's kernels with two buffers of slices (32 KB of static shared memory a block).
@BACKWARD.variant(6, configs=SPLIT_CONFIGS, dtypes=("bf16",), refuse=refuse_unaligned_rows, scratch=split_scratch)
def mma_sync_pipelined(k, a, s, splits):
    launch_split_k(k.matmul_backward_dinp_pipelined, k.matmul_backward_dweight_partials_pipelined,
                   k.matmul_backward_sum_partials_pipelined, a, s, splits)
