"""Shapes and inputs shared by the classifier forward and backward contracts."""
import torch

from harness.contract import DTYPES, TensorSpec

DIMS = ("B", "T", "V", "Vp")
# (B, T, V, Vp): GPT-2 small (V = 50257 padded to Vp = 50304); three small vocabularies whose
# padding leaves a partial 128-bit pack (50 of 64, 100 of 128, 257 of 264; rows fewer than any
# block size); and one without padding (V = Vp = 36: a whole number of fp32 packs, not of bf16's).
SHAPES = [(8, 1024, 50257, 50304), (2, 3, 50, 64), (1, 7, 100, 128), (3, 5, 257, 264), (3, 4, 36, 36)]
BENCH_SHAPE = (8, 1024, 50257, 50304)

LOGITS = TensorSpec(lambda d: (d.B, d.T, d.Vp))
TARGETS = TensorSpec(lambda d: (d.B, d.T), "i32")
LOSSES = TensorSpec(lambda d: (d.B, d.T), "fp32")

# The padding columns are set this far above the row's largest real logit: a kernel that let them
# into the softmax sum would be far off, not just slightly.
PADDING_LEAD = 4.0


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def make_inputs(dims, dtype, generator):
    """Logits with a non-zero, row-varying mean and a spread like a trained model's; padding
    columns that would dominate the softmax; targets anywhere in [0, V)."""
    logits = torch.randn(dims.B, dims.T, dims.Vp, generator=generator, dtype=torch.float64) * 2.0
    logits += torch.rand(dims.B, dims.T, 1, generator=generator, dtype=torch.float64) * 6.0 - 2.0
    real_max = logits[..., :dims.V].max(dim=-1, keepdim=True).values
    logits[..., dims.V:] = real_max + PADDING_LEAD + torch.rand(
        dims.B, dims.T, dims.Vp - dims.V, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, dims.V, (dims.B, dims.T), generator=generator)
    return {"logits": rounded(logits, dtype), "targets": targets}
