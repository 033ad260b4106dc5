"""Shapes and inputs shared by the encoder forward and backward contracts."""
import torch

from harness.contract import DTYPES, TensorSpec

DIMS = ("B", "T", "C", "V")
# (B, T, C, V): GPT-2 small with its real vocabulary; fewer rows at the same widths (the GPU tests
# check token ids up to 50256); and three small shapes for the emulator, none with C a multiple of
# 32 or B * T a multiple of any block size: C=40 packs into fp32 and bf16 128-bit loads, C=36 only
# into fp32 ones (bf16's vectorized variants refuse it). The last one is narrow but long: B * T = 2,100
# positions, more than two of backward 3's 1,024-position ranking chunks, over 300 tokens.
SHAPES = [(8, 1024, 768, 50257), (2, 64, 768, 50257), (2, 5, 32, 50), (3, 7, 40, 101), (3, 7, 36, 101),
          (3, 700, 8, 300)]
BENCH_SHAPE = (8, 1024, 768, 50257)

TOKENS = TensorSpec(lambda d: (d.B, d.T), "i32")
ACTIVATIONS = TensorSpec(lambda d: (d.B, d.T, d.C))
TOKEN_TABLE = TensorSpec(lambda d: (d.V, d.C))
POSITION_TABLE = TensorSpec(lambda d: (d.T, d.C))

# How many token ids get half of all positions: real text repeats a few tokens ("the", ",") often,
# which is what makes the token gradient a contended sum.
COMMON_TOKENS = 8


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def random_tokens(dims, generator: torch.Generator) -> torch.Tensor:
    """Token ids (int64; the harness stores them as int32): half uniform over the vocabulary, half
    from a few common ids so that many positions share a token row, and the last id V - 1 at least
    once so that the table's last row is reached."""
    uniform = torch.randint(0, dims.V, (dims.B, dims.T), generator=generator)
    common = torch.randint(0, min(COMMON_TOKENS, dims.V), (dims.B, dims.T), generator=generator)
    pick_common = torch.rand(dims.B, dims.T, generator=generator) < 0.5
    tokens = torch.where(pick_common, common, uniform)
    tokens[0, -1] = dims.V - 1
    return tokens


def random_table(rows: int, dims, dtype: str, generator: torch.Generator, centre: float) -> torch.Tensor:
    """An embedding table whose rows have different, non-zero means."""
    values = torch.randn(rows, dims.C, generator=generator, dtype=torch.float64) * 0.5
    offsets = torch.rand(rows, 1, generator=generator, dtype=torch.float64) - 0.5 + centre
    return rounded(values + offsets, dtype)
