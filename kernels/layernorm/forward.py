"""LayerNorm forward: the contract and the launch geometry of each variant in forward/.

Kernel arguments, in this order for every variant:
    out (N, C) floatX, mean (N,) float, rstd (N,) float, inp (N, C) floatX, weight (C,) floatX,
    bias (C,) floatX, N = B * T, C
"""
from pathlib import Path

import torch

from harness.contract import Op, Tolerance, block_sizes, ceil_div, x128_size
from kernels.layernorm.shapes import (
    BENCH_SHAPE, CHANNELS, DIMS, PER_ROW_FP32, ROWS_BY_CHANNELS, SHAPES, random_activations, random_parameters)
from reference.layernorm import EPS, layernorm_forward


def make_inputs(dims, dtype, generator):
    return {
        "inp": random_activations(dims, dtype, generator),
        "weight": random_parameters(dims, dtype, generator, centre=1.0),
        "bias": random_parameters(dims, dtype, generator, centre=0.0),
    }


def reference(t):
    out, mean, rstd = layernorm_forward(t["inp"], t["weight"], t["bias"])
    return {"out": out, "mean": mean, "rstd": rstd}


def torch_eager(t, dims):
    inp, weight, bias = t["inp"], t["weight"], t["bias"]
    return lambda: torch.native_layer_norm(inp, (dims.C,), weight, bias, EPS)


def torch_compiled(t, dims):
    inp, weight, bias = t["inp"], t["weight"], t["bias"]
    compiled = torch.compile(lambda x, w, b: torch.native_layer_norm(x, (dims.C,), w, b, EPS), dynamic=False)
    return lambda: compiled(inp, weight, bias)


FP32_STATS = Tolerance(atol=1e-5, rtol=1e-5)

FORWARD = Op(
    layer="layernorm",
    pass_name="forward",
    dims=DIMS,
    inputs={"inp": ROWS_BY_CHANNELS, "weight": CHANNELS, "bias": CHANNELS},
    outputs={"out": ROWS_BY_CHANNELS, "mean": PER_ROW_FP32, "rstd": PER_ROW_FP32},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        "fp32": {"out": Tolerance(atol=1e-5, rtol=1e-5), "mean": FP32_STATS, "rstd": FP32_STATS},
        # bf16 output carries 8 bits of mantissa; statistics are still computed and stored in fp32.
        "bf16": {"out": Tolerance(atol=1e-2, rtol=1e-2), "mean": FP32_STATS, "rstd": FP32_STATS},
    },
    # per element: subtract mean, square, accumulate twice, scale, multiply-add with weight and bias
    flops=lambda d: 8 * d.B * d.T * d.C,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
)


def rows(d):
    return d.B * d.T


@FORWARD.variant(1, configs=block_sizes(32, 64, 128, 256, 512, 1024), dtypes=("fp32", "bf16"))
def one_thread_per_row(k, a, s, block_size):
    k.layernorm_forward_thread_per_row(
        (ceil_div(rows(s), block_size),), (block_size,),
        (a.out, a.mean, a.rstd, a.inp, a.weight, a.bias, rows(s), s.C))


# The first config of each variant is its default (what bind() and a training loop use).
def kernel_args(a, s):
    return (a.out, a.mean, a.rstd, a.inp, a.weight, a.bias, rows(s), s.C)


# Variants 4 and 5 hold a row in a fixed 64-value register array per lane.
MAX_C_IN_REGISTERS = 2048


def refuse_wide_rows(d, dtype, config):
    if d.C > MAX_C_IN_REGISTERS:
        return f"C={d.C} does not fit the {MAX_C_IN_REGISTERS}-value register array per row"
    return None


def refuse_unpackable(d, dtype, config):
    if d.C % x128_size(dtype):
        return f"C={d.C} is not a multiple of {x128_size(dtype)} ({dtype} values per 128-bit pack)"
    return refuse_wide_rows(d, dtype, config)


@FORWARD.variant(2, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def block_per_row(k, a, s, block_size):
    k.layernorm_forward_block_per_row((rows(s),), (block_size,), kernel_args(a, s))


@FORWARD.variant(3, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def warp_per_row(k, a, s, block_size):
    k.layernorm_forward_warp_per_row((ceil_div(rows(s), block_size // 32),), (block_size,), kernel_args(a, s))


# 4 and 5 use 86 to 116 registers a thread (ptxas, sm_80/sm_90), so 1024-thread blocks cannot launch.
@FORWARD.variant(4, configs=block_sizes(128, 32, 64, 256, 512), dtypes=("fp32", "bf16"), refuse=refuse_wide_rows)
def row_in_registers(k, a, s, block_size):
    k.layernorm_forward_row_in_registers((ceil_div(rows(s), block_size // 32),), (block_size,), kernel_args(a, s))


@FORWARD.variant(5, configs=block_sizes(128, 32, 64, 256, 512), dtypes=("fp32", "bf16"), refuse=refuse_unpackable)
def vectorized(k, a, s, block_size):
    k.layernorm_forward_vectorized((ceil_div(rows(s), block_size // 32),), (block_size,), kernel_args(a, s))


def persistent_threads_per_sm(C, dtype):
    """Mirror of THREADS_PER_SM in 6_persistent_smem_params.cu: the threads per SM its kernel for
    this C is compiled to fit (64 registers for up to 24 values per lane, else 128)."""
    packs = ceil_div(C, 32 * x128_size(dtype))
    return 1024 if packs * x128_size(dtype) <= 24 else 512


def refuse_persistent(d, dtype, config):
    reason = refuse_unpackable(d, dtype, config)
    if reason is None and config["block_size"] > persistent_threads_per_sm(d.C, dtype):
        reason = (f"C={d.C} {dtype} needs 128 registers a thread, so blocks of "
                  f"{config['block_size']} threads do not fit an SM")
    return reason


@FORWARD.variant(6, configs=block_sizes(256, 128, 512, 1024), dtypes=("fp32", "bf16"), refuse=refuse_persistent)
def persistent_smem_params(k, a, s, block_size):
    dtype = "bf16" if a.inp.dtype == torch.bfloat16 else "fp32"
    packs = ceil_div(s.C, 32 * x128_size(dtype))
    # Launch only as many blocks as are resident at once: a block beyond that would start its
    # share of the rows after the others finished theirs, doubling the kernel's time.
    resident = k.num_sms * (persistent_threads_per_sm(s.C, dtype) // block_size)
    grid = min(resident, ceil_div(rows(s), block_size // 32))
    kernel = getattr(k, f"layernorm_forward_persistent_{packs}")
    kernel((grid,), (block_size,), kernel_args(a, s), shared_mem=2 * s.C * a.weight.element_size())
