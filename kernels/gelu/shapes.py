"""Shapes and inputs shared by the gelu forward and backward contracts."""
import torch

from harness.contract import DTYPES, TensorSpec

DIMS = ("N",)
# (N,): the MLP's hidden activation of GPT-2 small (B * T * 4C at B=8, T=1024, C=768); N = 1000
# packs into fp32 and bf16 128-bit loads but is not a multiple of any block size; 16392 = 8 * 2049
# packs too; 4097 and 12345 are not multiples of a pack (the vectorized variants refuse them).
SHAPES = [(8 * 1024 * 4 * 768,), (1000,), (16392,), (4097,), (12345,)]
BENCH_SHAPE = (8 * 1024 * 4 * 768,)
FLAT = TensorSpec(lambda d: (d.N,))


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def random_preactivations(dims, dtype: str, generator: torch.Generator) -> torch.Tensor:
    """Spread over [-6, 6] and beyond, with a non-zero mean: both tails (where tanh saturates and
    1 + tanh(u) cancels) and the curved middle are exercised."""
    values = torch.randn(dims.N, generator=generator, dtype=torch.float64) * 2.5 + 0.3
    return rounded(values, dtype)
