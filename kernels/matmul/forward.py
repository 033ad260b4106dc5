"""Matmul forward (the fully connected layer): the contract and the launch geometry of each variant
in forward/.

    out (B, T, OC) = inp (B, T, C) @ weight (OC, C)^T + bias (OC,)

weight is stored as nn.Linear stores it, one row of C per output channel. out is overwritten (never
accumulated into) and must not alias inp, weight or bias. Kernel arguments, in this order for every
.cu variant:
    out (M, N) floatX, inp (M, K) floatX, weight (N, K) floatX, bias (N,) floatX, M = B * T, N = OC, K = C
Every variant adds the bias: a caller without one (GPT-2's tied LM head) passes zeros.
"""
from pathlib import Path

import torch

from harness.contract import Op, block_sizes, ceil_div
from kernels.matmul.shapes import (
    BENCH_SHAPE, BIAS, DIMS, ROWS_BY_INPUTS, ROWS_BY_OUTPUTS, SHAPES, WEIGHT, random_rows, random_weight, refuse_tf32,
    rounded, summed)
from reference.matmul import matmul_forward


def make_inputs(dims, dtype, generator):
    bias = 0.1 + 0.5 * torch.randn(dims.OC, generator=generator, dtype=torch.float64)
    return {
        "inp": random_rows((dims.B, dims.T, dims.C), generator, dtype),
        "weight": random_weight(dims, generator, dtype),
        "bias": rounded(bias, dtype),
    }


def reference(t):
    return {"out": matmul_forward(t["inp"], t["weight"], t["bias"])}


def torch_eager(t, dims):
    inp, weight, bias = t["inp"].view(-1, dims.C), t["weight"].t(), t["bias"]
    return lambda: torch.addmm(bias, inp, weight)


def torch_compiled(t, dims):
    inp, weight, bias = t["inp"], t["weight"], t["bias"]
    C = dims.C
    compiled = torch.compile(lambda x, w, b: torch.addmm(b, x.view(-1, C), w.t()), dynamic=False)
    return lambda: compiled(inp, weight, bias)


FORWARD = Op(
    layer="matmul",
    pass_name="forward",
    dims=DIMS,
    inputs={"inp": ROWS_BY_INPUTS, "weight": WEIGHT, "bias": BIAS},
    outputs={"out": ROWS_BY_OUTPUTS},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        # K = C = 768 products per output at most; out's RMS is 2.2 at the bench shape. One
        # product is about 1 / sqrt(C) = 0.04, far above the 8e-4 this allows, so a dropped term fails.
        "fp32": {"out": summed(terms=768, magnitude=3.0, unit=1e-5, rtol=1e-5)},
        # bf16 stores round to 8 bits of mantissa (relative error up to 2^-9); the atol covers
        # outputs near zero, and cuBLAS, which may add partial sums of K in reduced precision.
        "bf16": {"out": summed(terms=768, magnitude=3.0, unit=2e-4, rtol=1e-2)},
    },
    # a multiply-add per (row, input, output), plus the bias add per output
    flops=lambda d: 2 * d.B * d.T * d.C * d.OC + d.B * d.T * d.OC,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    bound="compute",
    folder=Path(__file__).parent / "forward",
)


def kernel_args(a, s):
    return (a.out, a.inp, a.weight, a.bias, s.B * s.T, s.OC, s.C)


@FORWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_output(k, a, s, block_size):
    k.matmul_forward_thread_per_output((ceil_div(s.B * s.T * s.OC, block_size),), (block_size,), kernel_args(a, s))


# Variant 2: 256 threads own a TILE x TILE block of outputs; the first config is the default.
TILE_CONFIGS = [{"tile": 128}, {"tile": 64}, {"tile": 32}]
MAX_GRID_Y = 65535


def refuse_tall(d, dtype, config):
    row_tiles = ceil_div(d.B * d.T, config["tile"])
    if row_tiles > MAX_GRID_Y:
        return f"{row_tiles} row tiles exceed the grid's y limit of {MAX_GRID_Y}; use a bigger tile"
    return None


@FORWARD.variant(2, configs=TILE_CONFIGS, dtypes=("fp32", "bf16"), refuse=refuse_tall)
def shared_memory_tiles(k, a, s, tile):
    kernel = getattr(k, f"matmul_forward_tiled_{tile}")
    kernel((ceil_div(s.OC, tile), ceil_div(s.B * s.T, tile)), (256,), kernel_args(a, s))


@FORWARD.variant(3, dtypes=("fp32", "bf16"), refuse=refuse_tf32, library_header="""/*
 * matmul forward, variant 3: cuBLAS through torch.addmm
 *
 * Changed: no kernel of ours: torch.addmm(bias, inp, weight^T, out=out) on 2-D views of the same
 * buffers, which calls cuBLAS (cublasLt, with the bias add fused into the GEMM where it can).
 * Teaches: the ceiling to measure the hand-written tiles against. cuBLAS picks among kernels tuned
 * for this GPU and shape: tiles staged into shared memory by asynchronous copies several steps
 * ahead, and for bf16 the tensor cores, which the fp32 rows cannot use without TF32 (left off).
 * Run: python bench.py matmul --variant 3
 */""")
def cublas(k, a, s):
    # .view and .t() make new tensor headers over the same storage: no device memory is allocated.
    torch.addmm(a.bias, a.inp.view(-1, s.C), a.weight.t(), out=a.out.view(-1, s.OC))


def refuse_unaligned_k(d, dtype, config):
    if d.C % 8:
        return f"C={d.C} is not a multiple of 8: rows would not start on the 16-byte boundaries the copies need"
    return refuse_tall(d, dtype, {"tile": 128})


@FORWARD.variant(4, dtypes=("bf16",), refuse=refuse_unaligned_k)
def tensor_cores_wmma(k, a, s):
    k.matmul_forward_wmma((ceil_div(s.OC, 128), ceil_div(s.B * s.T, 128)), (256,), kernel_args(a, s))


@FORWARD.variant(5, dtypes=("bf16",), refuse=refuse_unaligned_k)
def tensor_cores_cp_async(k, a, s):
    k.matmul_forward_cp_async((ceil_div(s.OC, 128), ceil_div(s.B * s.T, 128)), (256,), kernel_args(a, s))


@FORWARD.variant(6, dtypes=("bf16",), refuse=refuse_unaligned_k)
def mma_sync_swizzled(k, a, s):
    k.matmul_forward_mma_sync((ceil_div(s.OC, 128), ceil_div(s.B * s.T, 128)), (256,), kernel_args(a, s))
