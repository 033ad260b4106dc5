"""LayerNorm backward: the contract and the launch geometry of each variant in backward/.

Kernel arguments of the main kernel, in this order for every variant (scratch pointers, when a
variant has any, go right after dbias):
    dinp (N, C) floatX, dweight (C,) floatX, dbias (C,) floatX, [scratch...],
    dout (N, C) floatX, inp (N, C) floatX, weight (C,) floatX, mean (N,) float, rstd (N,) float,
    N = B * T, C

The outputs are overwritten, never accumulated into: the harness fills them with NaN before each
launch, so a variant that sums dweight and dbias with atomics zeroes them first (with a torch op
on the current stream, inside its launch function).

Variants 3 and 4 finish with a second kernel that sums the per-block partials column by column:
    dweight (C,) floatX, dbias (C,) floatX, partials (num_blocks, 2, C) float, num_blocks, C
"""
from pathlib import Path

import torch

from harness.contract import Op, TensorSpec, Tolerance, block_sizes, ceil_div, x128_size
from kernels.layernorm.shapes import (
    BENCH_SHAPE, CHANNELS, DIMS, PER_ROW_FP32, ROWS_BY_CHANNELS, SHAPES, random_activations, random_parameters,
    rounded)
from reference.layernorm import layernorm_backward, layernorm_forward


def make_inputs(dims, dtype, generator):
    inp = random_activations(dims, dtype, generator)
    weight = random_parameters(dims, dtype, generator, centre=1.0)
    bias = random_parameters(dims, dtype, generator, centre=0.0)  # only to run the forward
    # The upstream gradient gets a mean that varies by row (and is not zero overall): with centred
    # dout a kernel that dropped the mean(dnorm) term of dinp, or mixed up dbias, could still pass.
    noise = torch.randn(dims.B, dims.T, dims.C, generator=generator, dtype=torch.float64)
    offsets = torch.rand(dims.B, dims.T, 1, generator=generator, dtype=torch.float64) * 2.0 - 0.5
    dout = rounded(noise + offsets, dtype)
    # mean and rstd are what the forward saved: computed from the rounded inp, stored as fp32.
    _, mean, rstd = layernorm_forward(inp, weight, bias)
    return {"dout": dout, "inp": inp, "weight": weight, "mean": rounded(mean, "fp32"),
            "rstd": rounded(rstd, "fp32")}


def reference(t):
    dinp, dweight, dbias = layernorm_backward(t["dout"], t["inp"], t["weight"], t["mean"], t["rstd"])
    return {"dinp": dinp, "dweight": dweight, "dbias": dbias}


def _aten_backward(dout, inp, mean, rstd, weight, bias, C):
    return torch.ops.aten.native_layer_norm_backward(
        dout, inp, (C,), mean, rstd, weight, bias, [True, True, True])


def aten_statistics(t):
    """mean and rstd as aten's forward returns them: shaped (B, T, 1), in fp32 on a GPU (the CUDA
    kernel accumulates in fp32 for bf16 inputs) but in the input's dtype on the CPU."""
    dtype = torch.float32 if t["inp"].is_cuda else t["inp"].dtype
    return t["mean"].unsqueeze(-1).to(dtype), t["rstd"].unsqueeze(-1).to(dtype)


def torch_eager(t, dims):
    dout, inp, weight = t["dout"], t["inp"], t["weight"]
    mean, rstd = aten_statistics(t)
    bias = torch.zeros_like(weight)  # a placeholder: the backward never reads the bias values
    C = dims.C
    return lambda: _aten_backward(dout, inp, mean, rstd, weight, bias, C)


def torch_compiled(t, dims):
    dout, inp, weight = t["dout"], t["inp"], t["weight"]
    mean, rstd = aten_statistics(t)
    bias = torch.zeros_like(weight)
    C = dims.C
    compiled = torch.compile(
        lambda g, x, m, r, w, b: _aten_backward(g, x, m, r, w, b, C), dynamic=False)
    return lambda: compiled(dout, inp, mean, rstd, weight, bias)


# dweight and dbias are sums over all N = B * T rows (8192 at the bench shape) of values of order
# one, so fp32 rounding in the sum reaches a few 1e-4 however the sum is ordered.
FP32_PARAM_GRADS = Tolerance(atol=5e-4, rtol=1e-5)
BF16 = Tolerance(atol=1e-2, rtol=1e-2)

BACKWARD = Op(
    layer="layernorm",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": ROWS_BY_CHANNELS, "inp": ROWS_BY_CHANNELS, "weight": CHANNELS, "mean": PER_ROW_FP32,
            "rstd": PER_ROW_FP32},
    outputs={"dinp": ROWS_BY_CHANNELS, "dweight": CHANNELS, "dbias": CHANNELS},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        "fp32": {"dinp": Tolerance(atol=1e-5, rtol=1e-5), "dweight": FP32_PARAM_GRADS, "dbias": FP32_PARAM_GRADS},
        # every bf16 output is rounded to 8 bits of mantissa when it is stored
        "bf16": {"dinp": BF16, "dweight": BF16, "dbias": BF16},
    },
    # per element: norm (subtract, multiply), dnorm (multiply), the two row sums (add, multiply-add),
    # dinp (subtract, multiply-subtract, multiply), dbias (add) and dweight (multiply-add)
    flops=lambda d: 13 * d.B * d.T * d.C,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "backward",
)

# The largest dynamic shared memory a block may opt into on every target architecture
# (sm_80: 163 KB; sm_90 allows 227 KB).
MAX_SHARED_BYTES = 163 * 1024
# Threads per block of the column reduction of the partials (variants 3 and 4): 16 warps, each
# summing every 16th block's partials for the same 32 columns.
REDUCE_THREADS = 512


def rows(d):
    return d.B * d.T


def zero_param_grads(a):
    """The atomic variants add into dweight and dbias, which arrive poisoned: clear them first."""
    a.dweight.zero_()
    a.dbias.zero_()


@BACKWARD.variant(1, configs=block_sizes(32, 64, 128, 256, 512, 1024), dtypes=("fp32",), deterministic=False)
def one_thread_per_row(k, a, s, block_size):
    zero_param_grads(a)
    k.layernorm_backward_thread_per_row(
        (ceil_div(rows(s), block_size),), (block_size,),
        (a.dinp, a.dweight, a.dbias, a.dout, a.inp, a.weight, a.mean, a.rstd, rows(s), s.C))


def block_accumulator_bytes(d):
    return 2 * d.C * 4  # dweight and dbias sums of one block, fp32


def refuse_block_accumulator(d, dtype, config):
    if block_accumulator_bytes(d) > MAX_SHARED_BYTES:
        return f"2*C floats of shared memory ({block_accumulator_bytes(d)} bytes) exceed {MAX_SHARED_BYTES}"
    return None


@BACKWARD.variant(2, configs=block_sizes(64, 128, 256, 512, 1024), dtypes=("fp32",),
                  refuse=refuse_block_accumulator, deterministic=False)
def one_warp_per_row(k, a, s, block_size):
    zero_param_grads(a)
    warps_per_block = block_size // 32
    k.layernorm_backward_warp_per_row(
        (ceil_div(rows(s), warps_per_block),), (block_size,),
        (a.dinp, a.dweight, a.dbias, a.dout, a.inp, a.weight, a.mean, a.rstd, rows(s), s.C),
        shared_mem=block_accumulator_bytes(s))


# Variants 3 and 4: a fixed grid (the scratch is sized from the config, without a device), each
# warp with its own dweight/dbias sums in shared memory: (block_size / 32) * 2 * C floats.
PARTIALS_CONFIGS = [
    {"block_size": 256, "num_blocks": 264},
    {"block_size": 256, "num_blocks": 528},
    {"block_size": 128, "num_blocks": 528},
    {"block_size": 128, "num_blocks": 1056},
    {"block_size": 512, "num_blocks": 132},
    {"block_size": 512, "num_blocks": 264},
]


def warp_accumulator_bytes(d, block_size):
    return (block_size // 32) * 2 * d.C * 4


def partials_scratch(d, dtype, config):
    num_blocks = config["num_blocks"]
    return {"partials": TensorSpec(lambda dd: (num_blocks, 2, dd.C), "fp32")}


def refuse_warp_accumulators(d, dtype, config):
    needed = warp_accumulator_bytes(d, config["block_size"])
    if needed > MAX_SHARED_BYTES:
        return (f"{config['block_size'] // 32} warps x 2*C floats of shared memory ({needed} bytes) "
                f"exceed {MAX_SHARED_BYTES}; use fewer threads per block")
    return None


def launch_partials(main_kernel, k, a, s, block_size, num_blocks):
    main_kernel(
        (num_blocks,), (block_size,),
        (a.dinp, a.dweight, a.dbias, a.partials, a.dout, a.inp, a.weight, a.mean, a.rstd, rows(s), s.C),
        shared_mem=warp_accumulator_bytes(s, block_size))
    k.layernorm_backward_reduce_partials(
        (ceil_div(2 * s.C, 32),), (REDUCE_THREADS,), (a.dweight, a.dbias, a.partials, num_blocks, s.C))


@BACKWARD.variant(3, configs=PARTIALS_CONFIGS, dtypes=("fp32", "bf16"), refuse=refuse_warp_accumulators,
                  scratch=partials_scratch)
def block_partials(k, a, s, block_size, num_blocks):
    launch_partials(k.layernorm_backward_block_partials, k, a, s, block_size, num_blocks)



def refuse_unvectorizable(d, dtype, config):
    if d.C % x128_size(dtype):
        return f"C={d.C} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return refuse_warp_accumulators(d, dtype, config)


@BACKWARD.variant(4, configs=PARTIALS_CONFIGS, dtypes=("fp32", "bf16"), refuse=refuse_unvectorizable,
                  scratch=partials_scratch)
def vectorized(k, a, s, block_size, num_blocks):
    launch_partials(k.layernorm_backward_vectorized, k, a, s, block_size, num_blocks)
