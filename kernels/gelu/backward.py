"""GELU backward: the contract and the launch geometry of each variant in backward/.

dinp = dout * gelu'(inp), elementwise over N values; dinp is overwritten. dinp may be the same
buffer as dout (the trainer computes the gradient in place): each thread reads its elements (or
128-bit packs) of dout and inp before writing the same ones of dinp, and no thread touches
another's.

Kernel arguments, in this order for every variant:
    dinp (N,) floatX, dout (N,) floatX, inp (N,) floatX, N
"""
from pathlib import Path

import torch

from harness.contract import Op, Tolerance, block_sizes, ceil_div
from kernels.gelu.forward import refuse_unvectorizable
from kernels.gelu.shapes import BENCH_SHAPE, DIMS, FLAT, SHAPES, random_preactivations, rounded
from reference.gelu import gelu_backward


def make_inputs(dims, dtype, generator):
    inp = random_preactivations(dims, dtype, generator)
    dout = torch.randn(dims.N, generator=generator, dtype=torch.float64) + 0.4
    return {"dout": rounded(dout, dtype), "inp": inp}


def reference(t):
    return {"dinp": gelu_backward(t["dout"], t["inp"])}


def _aten_backward(dout, inp):
    return torch.ops.aten.gelu_backward(dout, inp, approximate="tanh")


def torch_eager(t, dims):
    dout, inp = t["dout"], t["inp"]
    return lambda: _aten_backward(dout, inp)


def torch_compiled(t, dims):
    dout, inp = t["dout"], t["inp"]
    compiled = torch.compile(_aten_backward, dynamic=False)
    return lambda: compiled(dout, inp)


BACKWARD = Op(
    layer="gelu",
    pass_name="backward",
    dims=DIMS,
    inputs={"dout": FLAT, "inp": FLAT},
    outputs={"dinp": FLAT},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        # a few roundings and tanhf's couple of ulp; terms of up to ~|x| cancel for negative x,
        # leaving an absolute error of ~|x| * 1e-7
        "fp32": {"dinp": Tolerance(atol=1e-5, rtol=1e-5)},
        # computed in fp32, rounded once to 8 bits of mantissa when stored
        "bf16": {"dinp": Tolerance(atol=1e-2, rtol=1e-2)},
    },
    # per element: u and tanh as in the forward (6), du/dx (4), the derivative (6), times dout (1)
    flops=lambda d: 17 * d.N,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "backward",
    aliases=[{"dinp": "dout"}],
)


@BACKWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_element(k, a, s, block_size):
    k.gelu_backward_thread_per_element((ceil_div(s.N, block_size),), (block_size,), (a.dinp, a.dout, a.inp, s.N))


@BACKWARD.variant(2, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                  refuse=refuse_unvectorizable)
def vectorized(k, a, s, block_size):
    packs = s.N // (16 // a.inp.element_size())
    k.gelu_backward_vectorized((ceil_div(packs, block_size),), (block_size,), (a.dinp, a.dout, a.inp, s.N))
