"""GELU forward: the contract and the launch geometry of each variant in forward/.

out = gelu(inp), elementwise over N values, with GPT-2's tanh approximation. out may be the same
buffer as inp: each thread reads its element (or 128-bit pack) before writing it, and no thread
touches another's.

Kernel arguments, in this order for every variant:
    out (N,) floatX, inp (N,) floatX, N
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contract import Op, Tolerance, block_sizes, ceil_div, x128_size
from kernels.gelu.shapes import BENCH_SHAPE, DIMS, FLAT, SHAPES, random_preactivations
from reference.gelu import gelu_forward


def make_inputs(dims, dtype, generator):
    return {"inp": random_preactivations(dims, dtype, generator)}


def reference(t):
    return {"out": gelu_forward(t["inp"])}


def torch_eager(t, dims):
    inp = t["inp"]
    return lambda: F.gelu(inp, approximate="tanh")


def torch_compiled(t, dims):
    inp = t["inp"]
    compiled = torch.compile(lambda x: F.gelu(x, approximate="tanh"), dynamic=False)
    return lambda: compiled(inp)


FORWARD = Op(
    layer="gelu",
    pass_name="forward",
    dims=DIMS,
    inputs={"inp": FLAT},
    outputs={"out": FLAT},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        # tanhf is within a couple of ulp; where 1 + tanh(u) cancels (x below about -3) that is a
        # large relative error of a tiny result, but an absolute one of ~|x| * 1e-7
        "fp32": {"out": Tolerance(atol=1e-5, rtol=1e-5)},
        # computed in fp32, rounded once to 8 bits of mantissa when stored
        "bf16": {"out": Tolerance(atol=1e-2, rtol=1e-2)},
    },
    # per element: x^3 (2 multiplies), multiply-add, scale, tanh (counted as one), add, 2 multiplies
    flops=lambda d: 8 * d.N,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
    aliases=[{"out": "inp"}],
)


@FORWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_element(k, a, s, block_size):
    k.gelu_forward_thread_per_element((ceil_div(s.N, block_size),), (block_size,), (a.out, a.inp, s.N))



def refuse_unvectorizable(d, dtype, config):
    if d.N % x128_size(dtype):
        return f"N={d.N} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return None


@FORWARD.variant(2, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                 refuse=refuse_unvectorizable)
def vectorized(k, a, s, block_size):
    packs = s.N // (16 // a.inp.element_size())
    k.gelu_forward_vectorized((ceil_div(packs, block_size),), (block_size,), (a.out, a.inp, s.N))
