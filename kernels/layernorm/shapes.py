"""Shapes and inputs shared by the layernorm forward and backward contracts."""
import torch

from harness.contract import DTYPES, TensorSpec

DIMS = ("B", "T", "C")
# (B, T, C): GPT-2 small, a GPT-2 XL width with few rows, C not a multiple of 32 with an odd
# row count, and a row count (5 * 67 = 335) that is not a multiple of any block size.
SHAPES = [(8, 1024, 768), (4, 64, 1600), (3, 37, 1000), (5, 67, 768)]
BENCH_SHAPE = (8, 1024, 768)

ROWS_BY_CHANNELS = TensorSpec(lambda d: (d.B, d.T, d.C))
CHANNELS = TensorSpec(lambda d: (d.C,))
PER_ROW_FP32 = TensorSpec(lambda d: (d.B, d.T), "fp32")


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def random_activations(dims, dtype: str, generator: torch.Generator) -> torch.Tensor:
    """Rows with non-zero, row-varying means: zeros or centred data would hide bugs."""
    rows = torch.randn(dims.B, dims.T, dims.C, generator=generator, dtype=torch.float64)
    offsets = torch.rand(dims.B, dims.T, 1, generator=generator, dtype=torch.float64) * 4.0 - 1.0
    return rounded(rows * 1.5 + offsets, dtype)


def random_parameters(dims, dtype: str, generator: torch.Generator, centre: float) -> torch.Tensor:
    return rounded(centre + 0.5 * torch.randn(dims.C, generator=generator, dtype=torch.float64), dtype)
