"""Global gradient norm: the contract and the launch geometry of each variant in forward/.

Kernel arguments of the main kernel, in this order for every variant:
    target float* (variant 1: norm, (1,); variants 2 and 3: partials, (num_blocks,)),
    grads (P,) floatX, P
Variant 1 then runs global_norm_sqrt(norm); variants 2 and 3 run the shared second kernel
global_norm_reduce_partials(norm, partials, num_blocks) of forward/reduce_partials.cuh.

norm (1,) float = sqrt(sum(grads^2)), accumulated in fp32, is overwritten (variant 1 zeroes it
first, on the current stream). The trainer divides its clipping threshold by it to get AdamW's
grad_scale.
"""
from pathlib import Path

import torch

from harness.contract import DTYPES, Op, TensorSpec, Tolerance, block_sizes, ceil_div, element_size
from reference.global_norm import global_norm

DIMS = ("P",)
# (P,): GPT-2 small's parameter count (the bench shape), a thousand, one past a power of two, a
# six-digit count that is not a multiple of anything useful, and a multiple of 8 that is not a
# multiple of any block size (the vectorised variant's partial last block).
SHAPES = [(124_439_808,), (1000,), (4097,), (123_457,), (98_312,)]
BENCH_SHAPE = (124_439_808,)

GRADS = TensorSpec(lambda d: (d.P,))
NORM = TensorSpec(lambda d: (1,), "fp32")


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def make_inputs(dims, dtype, generator):
    grads = 0.003 + 0.02 * torch.randn(dims.P, generator=generator, dtype=torch.float64)
    return {"grads": rounded(grads, dtype)}


def reference(t):
    return {"norm": global_norm(t["grads"])}


def torch_eager(t, dims):
    grads = t["grads"]
    return lambda: torch.linalg.vector_norm(grads, dtype=torch.float32)


def torch_compiled(t, dims):
    grads = t["grads"]
    compiled = torch.compile(lambda g: torch.linalg.vector_norm(g, dtype=torch.float32), dynamic=False)
    return lambda: compiled(grads)


# A sum of P positive squares in fp32: each addition rounds the running sum by at most 2^-24
# relative, with a random sign, along chains of roughly (elements per thread + log2(block) + partials
# or atomics) ~ 1000 additions at the bench shape, so the sum is off by ~sqrt(1000) * 6e-8 ~ 2e-6
# typically (6e-5 in the worst case, all roundings one way), and the square root halves that.
# 1e-5 is several standard deviations. bf16 gradients are read exactly (the reference sees the same
# rounded values) and squared and summed in fp32, so the same bound holds.
NORM_TOLERANCE = Tolerance(atol=0.0, rtol=1e-5)

FORWARD = Op(
    layer="global_norm",
    pass_name="forward",
    dims=DIMS,
    inputs={"grads": GRADS},
    outputs={"norm": NORM},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={"fp32": {"norm": NORM_TOLERANCE}, "bf16": {"norm": NORM_TOLERANCE}},
    flops=lambda d: 2 * d.P,  # a multiply and an add per element
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
)

# Threads an SM can hold at once on sm_80 and sm_90: variant 1's grid fills them and no more.
THREADS_PER_SM = 2048


@FORWARD.variant(1, configs=block_sizes(512, 128, 256, 1024), dtypes=("fp32", "bf16"), deterministic=False)
def atomic(k, a, s, block_size):
    a.norm.zero_()  # the blocks add into it; it arrives poisoned
    grid = min(ceil_div(s.P, block_size), k.num_sms * (THREADS_PER_SM // block_size))
    k.global_norm_sum_squares_atomic((grid,), (block_size,), (a.norm, a.grads, s.P))
    k.global_norm_sqrt((1,), (1,), (a.norm,))


# Variants 2 and 3: a fixed grid (the scratch is sized from the config, without a device, and the
# grid fixes the order of the additions). An H100 has 132 SMs of 2048 threads: 264 x 512 threads
# fill half of it, 528 x 512 all of it (an A100, 108 SMs, runs those in 1.2 waves). The last, a
# grid far too small, shows what too few bytes in flight cost (and makes the grid-stride loop
# go round on the emulator's small test shapes).
PARTIALS_CONFIGS = [
    {"block_size": 512, "num_blocks": 264},
    {"block_size": 512, "num_blocks": 528},
    {"block_size": 256, "num_blocks": 528},
    {"block_size": 1024, "num_blocks": 132},
    {"block_size": 128, "num_blocks": 64},
]
# Threads of the one block that adds the partials.
REDUCE_THREADS = 512


def partials_scratch(d, dtype, config):
    num_blocks = config["num_blocks"]
    return {"partials": TensorSpec(lambda dd: (num_blocks,), "fp32")}


def launch_partials(main_kernel, k, a, s, block_size, num_blocks):
    main_kernel((num_blocks,), (block_size,), (a.partials, a.grads, s.P))
    k.global_norm_reduce_partials((1,), (REDUCE_THREADS,), (a.norm, a.partials, num_blocks))


@FORWARD.variant(2, configs=PARTIALS_CONFIGS, dtypes=("fp32", "bf16"), scratch=partials_scratch)
def deterministic(k, a, s, block_size, num_blocks):
    launch_partials(k.global_norm_block_partials, k, a, s, block_size, num_blocks)


def x128_size(dtype):
    return 16 // element_size("x", dtype)  # elements in one 128-bit load: 4 fp32, 8 bf16


def refuse_unpackable(d, dtype, config):
    if d.P % x128_size(dtype):
        return f"P={d.P} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return None


@FORWARD.variant(3, configs=PARTIALS_CONFIGS, dtypes=("fp32", "bf16"), scratch=partials_scratch,
                 refuse=refuse_unpackable)
def vectorized(k, a, s, block_size, num_blocks):
    launch_partials(k.global_norm_vectorized_partials, k, a, s, block_size, num_blocks)
