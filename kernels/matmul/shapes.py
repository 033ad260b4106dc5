"""Shapes and inputs shared by the matmul forward and backward contracts.

The layer is one matrix product over all B * T rows: M = B * T rows, K = C inputs, N = OC outputs.
"""
import math

import torch

from harness.contract import DTYPES, TensorSpec, Tolerance

DIMS = ("B", "T", "C", "OC")
# (B, T, C, OC) with M = B * T, K = C, N = OC: three small awkward shapes that run on the emulator
# (M = 10, K = 33, N = 47: a one-wide K tail past one 32-wide slice; M = 51, K = 96, N = 130: two
# 32-row tiles, K in whole slices, N just past 128; M = 150, K = 40, N = 200: two 128-row tiles and
# an 8-wide K tail; M = 140, K = 136, N = 264: every size a multiple of 8, as the tensor-core variants
# need, yet past a whole number of their 128-wide tiles in all three; M = 19, K = 24, N = 37: K a
# multiple of 8 but N odd, so rows of the output start at odd elements and a kernel storing pairs of
# outputs must fall back to single ones), then GPT-2 small's fused QKV
# projection on a short batch, and the bench shape: the MLP's first projection (768 -> 4 * 768) at
# B = 8, T = 1024.
SHAPES = [(2, 5, 33, 47), (3, 17, 96, 130), (5, 30, 40, 200), (2, 70, 136, 264), (1, 19, 24, 37),
          (4, 64, 768, 2304), (8, 1024, 768, 3072)]
BENCH_SHAPE = (8, 1024, 768, 3072)

ROWS_BY_INPUTS = TensorSpec(lambda d: (d.B, d.T, d.C))
ROWS_BY_OUTPUTS = TensorSpec(lambda d: (d.B, d.T, d.OC))
WEIGHT = TensorSpec(lambda d: (d.OC, d.C))
BIAS = TensorSpec(lambda d: (d.OC,))


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def random_rows(shape, generator: torch.Generator, dtype: str) -> torch.Tensor:
    """Unit-variance rows, each with its own mean in [-1, 1]: like the activations a layernorm
    hands on, and (unlike centred data) a mean that a wrong row index would visibly change. The
    means average to about zero over the rows, so the sums over B * T rows (dweight, dbias) grow
    like sqrt(B * T) rather than B * T, which keeps their fp32 rounding comparable to one term."""
    values = torch.randn(*shape, generator=generator, dtype=torch.float64)
    offsets = torch.rand(*shape[:-1], 1, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    return rounded(values + offsets, dtype)


def random_weight(dims, generator: torch.Generator, dtype: str) -> torch.Tensor:
    """Rows with means in [-0.2, 0.2], scaled by 1 / sqrt(C) as a trained layer's are, so the
    outputs stay of order one whatever C is."""
    values = torch.randn(dims.OC, dims.C, generator=generator, dtype=torch.float64)
    offsets = torch.rand(dims.OC, 1, generator=generator, dtype=torch.float64) * 0.4 - 0.2
    return rounded((values + offsets) / math.sqrt(dims.C), dtype)


def summed(terms: int, magnitude: float, unit: float, rtol: float) -> Tolerance:
    """The tolerance of an output that sums `terms` products in fp32.

    Each addition rounds by up to half an ulp of the running sum; the roundings have random signs,
    so the error grows like unit * sqrt(terms) * (the size of the running sums), and those are of the
    order of the output's typical magnitude (its RMS). `terms` and `magnitude` are those of the
    largest shape in SHAPES: a contract's tolerances are per dtype, not per shape, so the smaller
    shapes are checked a little more loosely than they could be.
    """
    return Tolerance(atol=unit * math.sqrt(terms) * magnitude, rtol=rtol)


def tf32_enabled() -> bool:
    """Whether cuBLAS may compute fp32 products in TF32. torch 2.9 and newer report it through
    fp32_precision, whichever API switched it on (reading the older allow_tf32 raises after the new
    API was used); older versions have only allow_tf32."""
    precision = getattr(torch.backends.cuda.matmul, "fp32_precision", None)
    if precision is not None:
        return precision == "tf32"
    return bool(torch.backends.cuda.matmul.allow_tf32)


def refuse_tf32(d, dtype, config):
    """For the cuBLAS variants: they read the global TF32 switch rather than change it. With it on,
    cuBLAS would round fp32 operands to 10-bit mantissas, and the row would not be an fp32 result."""
    if dtype == "fp32" and tf32_enabled():
        return "TF32 is on for cuBLAS matmuls (torch.backends.cuda.matmul): the result would not be fp32"
    return None
