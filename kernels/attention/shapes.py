"""Shapes and inputs shared by the attention forward and backward contracts."""
import math

import torch

from harness.contract import DTYPES, TensorSpec

DIMS = ("B", "T", "NH", "HS")  # C = NH * HS
# (B, T, NH, HS): GPT-2 small at its training size; GPT-2 small's heads with a short sequence;
# and three tiny awkward ones (T = 5, 17, 33: not multiples of 32, so the softmax warps' last
# strides are partial, and T = 33 spills one column past a warp's width; HS = 8 and 16, fewer
# channels than a warp has lanes) that the emulator runs in CI; and GPT-2's head size with T = 70, a
# second 64-row tile of queries and keys cut short (the fused variant is compiled for HS = 64 only).
SHAPES = [(8, 1024, 12, 64), (2, 64, 12, 64), (2, 5, 3, 8), (1, 17, 2, 16), (3, 33, 4, 8), (1, 70, 2, 64)]
BENCH_SHAPE = (8, 1024, 12, 64)

QKV = TensorSpec(lambda d: (d.B, d.T, 3 * d.NH * d.HS))  # q, k, v side by side
TOKENS = TensorSpec(lambda d: (d.B, d.T, d.NH * d.HS))  # out, dout: heads interleaved
SCORES = TensorSpec(lambda d: (d.B, d.NH, d.T, d.T))  # preatt, att and their gradients
HEADS = TensorSpec(lambda d: (d.B, d.NH, d.T, d.HS))  # head-major q, k, v, y and their gradients


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def random_tokens(dims, width: int, dtype: str, generator: torch.Generator) -> torch.Tensor:
    """(B, T, width) values with non-zero means that vary by channel and by token. A per-channel
    mean alone would cancel out of the softmax (it adds the same amount to a whole row of scores),
    so every token also gets its own offset; zero-mean data would hide a dropped mask or a wrong
    scale less well."""
    values = torch.randn(dims.B, dims.T, width, generator=generator, dtype=torch.float64)
    channel_means = 0.5 * torch.randn(width, generator=generator, dtype=torch.float64)
    token_offsets = torch.rand(dims.B, dims.T, 1, generator=generator, dtype=torch.float64) - 0.5
    return rounded(values + channel_means + token_offsets, dtype)


def causal_flops_per_matmul(d) -> int:
    """Multiply-adds (x2) of one (T x T) by (T x HS) product per head, counting only the causal
    half (T (T + 1) / 2 of the T^2 scores are unmasked): the work attention must do. A kernel
    that multiplies the masked zeros too, as cuBLAS does in variant 1, does twice this."""
    return 2 * d.B * d.NH * d.HS * d.T * (d.T + 1) // 2


def scale(d) -> float:
    return 1.0 / math.sqrt(d.HS)


# The fused tensor-core variants (forward 3, backward 2) are compiled for GPT-2's head size.
FUSED_HEAD_SIZE = 64


def refuse_other_head_sizes(d, dtype, config):
    if d.HS != FUSED_HEAD_SIZE:
        return f"HS={d.HS}: the fused kernels are compiled for GPT-2's head size {FUSED_HEAD_SIZE}"
    if d.B * d.NH > 65535:
        return f"B * NH = {d.B * d.NH} heads exceed the grid's y limit of 65535"
    return None
