"""Encoder forward: the contract and the launch geometry of each variant in forward/.

out[b, t, :] = wte[tokens[b, t], :] + wpe[t, :]. wpe holds the first T rows of the position table
(the trainer passes wpe[:T]); token ids must lie in [0, V): the kernels do not check them.

Kernel arguments, in this order for every variant:
    out (B, T, C) floatX, tokens (B, T) int, wte (V, C) floatX, wpe (T, C) floatX, B, T, C
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contract import Op, Tolerance, block_sizes, ceil_div, x128_size
from kernels.encoder.shapes import (
    ACTIVATIONS, BENCH_SHAPE, DIMS, POSITION_TABLE, SHAPES, TOKEN_TABLE, TOKENS, random_table, random_tokens)
from reference.encoder import encoder_forward


def make_inputs(dims, dtype, generator):
    return {
        "tokens": random_tokens(dims, generator),
        "wte": random_table(dims.V, dims, dtype, generator, centre=0.5),
        "wpe": random_table(dims.T, dims, dtype, generator, centre=-0.3),
    }


def reference(t):
    return {"out": encoder_forward(t["tokens"], t["wte"], t["wpe"])}


def _embed(tokens, wte, wpe):
    return F.embedding(tokens, wte) + wpe


def torch_eager(t, dims):
    tokens, wte, wpe = t["tokens"], t["wte"], t["wpe"]
    return lambda: _embed(tokens, wte, wpe)


def torch_compiled(t, dims):
    tokens, wte, wpe = t["tokens"], t["wte"], t["wpe"]
    compiled = torch.compile(_embed, dynamic=False)
    return lambda: compiled(tokens, wte, wpe)


FORWARD = Op(
    layer="encoder",
    pass_name="forward",
    dims=DIMS,
    inputs={"tokens": TOKENS, "wte": TOKEN_TABLE, "wpe": POSITION_TABLE},
    outputs={"out": ACTIVATIONS},
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
    flops=lambda d: d.B * d.T * d.C,  # one add per output element
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
)


def kernel_args(a, s):
    return (a.out, a.tokens, a.wte, a.wpe, s.B, s.T, s.C)


@FORWARD.variant(1, configs=block_sizes(256, 32, 64, 128, 512, 1024), dtypes=("fp32", "bf16"))
def thread_per_element(k, a, s, block_size):
    k.encoder_forward_thread_per_element((ceil_div(s.B * s.T * s.C, block_size),), (block_size,), kernel_args(a, s))



def refuse_unvectorizable(d, dtype, config):
    if d.C % x128_size(dtype):
        return f"C={d.C} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return None


@FORWARD.variant(2, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                 refuse=refuse_unvectorizable)
def vectorized(k, a, s, block_size):
    packs = s.B * s.T * s.C // (16 // a.wte.element_size())
    k.encoder_forward_vectorized((ceil_div(packs, block_size),), (block_size,), kernel_args(a, s))
