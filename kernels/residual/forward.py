"""Residual forward: the contract and the launch geometry of each variant in forward/.

out = inp1 + inp2, elementwise over N values. out may be the same buffer as inp1 (or inp2): every
variant reads an element (or a whole 128-bit pack) before the same thread writes it, and no thread
touches another's elements, so grads += micro_step_grads is safe. (The kernels' pointers are not
__restrict__ for this reason.)

Kernel arguments, in this order for every variant:
    out (N,) floatX, inp1 (N,) floatX, inp2 (N,) floatX, N
"""
from pathlib import Path

import torch

from harness.contract import DTYPES, Op, TensorSpec, Tolerance, block_sizes, ceil_div, x128_size
from reference.residual import residual_forward

# (N,): one GPT-2 small activation (B * T * C at B=8, T=1024, C=768); N = 1000 packs into fp32
# and bf16 128-bit loads but is not a multiple of any block size; 131080 = 8 * 16385 packs too and
# takes several turns of variant 2's grid-stride loop on the emulator; 4097 and 12345 are not
# multiples of a pack (variant 2 refuses them).
SHAPES = [(8 * 1024 * 768,), (1000,), (131080,), (4097,), (12345,)]
BENCH_SHAPE = (8 * 1024 * 768,)
FLAT = TensorSpec(lambda d: (d.N,))


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def make_inputs(dims, dtype, generator):
    # different, non-zero means, so that a kernel that added one input twice would fail
    inp1 = torch.randn(dims.N, generator=generator, dtype=torch.float64) * 1.5 + 0.7
    inp2 = torch.randn(dims.N, generator=generator, dtype=torch.float64) - 0.4
    return {"inp1": rounded(inp1, dtype), "inp2": rounded(inp2, dtype)}


def reference(t):
    return {"out": residual_forward(t["inp1"], t["inp2"])}


def torch_eager(t, dims):
    inp1, inp2 = t["inp1"], t["inp2"]
    return lambda: torch.add(inp1, inp2)


def torch_compiled(t, dims):
    inp1, inp2 = t["inp1"], t["inp2"]
    compiled = torch.compile(torch.add, dynamic=False)
    return lambda: compiled(inp1, inp2)


FORWARD = Op(
    layer="residual",
    pass_name="forward",
    dims=("N",),
    inputs={"inp1": FLAT, "inp2": FLAT},
    outputs={"out": FLAT},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        # one fp32 addition: the only error is its rounding, 6e-8 of the result
        "fp32": {"out": Tolerance(atol=1e-6, rtol=1e-6)},
        # the sum is rounded to 8 bits of mantissa when it is stored
        "bf16": {"out": Tolerance(atol=1e-2, rtol=1e-2)},
    },
    flops=lambda d: d.N,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
    aliases=[{"out": "inp1"}, {"out": "inp2"}],  # the trainer adds gradients in place
)


@FORWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_element(k, a, s, block_size):
    k.residual_forward_thread_per_element((ceil_div(s.N, block_size),), (block_size,), (a.out, a.inp1, a.inp2, s.N))



def refuse_unvectorizable(d, dtype, config):
    if d.N % x128_size(dtype):
        return f"N={d.N} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return None


# Threads one SM holds at once on sm_80 and sm_90: variant 2 launches at most one such wave.
THREADS_PER_SM = 2048


@FORWARD.variant(2, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                 refuse=refuse_unvectorizable)
def vectorized(k, a, s, block_size):
    packs = s.N // (16 // a.out.element_size())
    # Enough blocks to fill every SM once, fewer when there is less work; the grid-stride loop
    # covers the rest.
    grid = min(ceil_div(packs, block_size), k.num_sms * (THREADS_PER_SM // block_size))
    k.residual_forward_vectorized((grid,), (block_size,), (a.out, a.inp1, a.inp2, s.N))
