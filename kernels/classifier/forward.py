"""Classifier forward: the per-token cross-entropy loss of the logits, softmax included (what the
trainer calls for the validation loss; the training step uses the backward, which also returns the
losses). The contract and the launch geometry of each variant in forward/.

Kernel arguments, in this order for every variant:
    losses (N,) float, logits (N, Vp) floatX, targets (N,) int, N = B * T, V, Vp

Columns V..Vp-1 of the logits are padding: no variant lets them into the softmax. targets must lie
in [0, V) (nothing checks; a target outside reads the wrong logit, or padding).
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contract import Op, Tolerance, block_sizes, element_size
from kernels.classifier.shapes import BENCH_SHAPE, DIMS, LOGITS, LOSSES, SHAPES, TARGETS, make_inputs
from reference.classifier import classifier_forward


def reference(t):
    # the padded tensors do not say where the vocabulary ends: the dims do
    return {"losses": classifier_forward(t["logits"], t["targets"], t["dims"].V)}


def per_token_losses(logits, targets, V):
    """What the kernels compute, in torch: fp32 math on the real columns, fp32 losses."""
    return F.cross_entropy(logits[..., :V].reshape(-1, V).float(), targets, reduction="none")


def torch_eager(t, dims):
    logits, targets, V = t["logits"], t["targets"].long().reshape(-1), dims.V
    return lambda: per_token_losses(logits, targets, V)


def torch_compiled(t, dims):
    logits, targets, V = t["logits"], t["targets"].long().reshape(-1), dims.V
    compiled = torch.compile(lambda x, y: per_token_losses(x, y, V), dynamic=False)
    return lambda: compiled(logits, targets)


# A loss is max + log(sum) - x[target], about log(V) ~ 11 at GPT-2's vocabulary: fp32 rounding of
# those three terms and of the V-term sum stays within a few 1e-6 absolute. bf16 logits are read
# exactly (the reference sees the same rounded values) and the math is fp32, so the same bound holds.
LOSSES_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-5)

FORWARD = Op(
    layer="classifier",
    pass_name="forward",
    dims=DIMS,
    inputs={"logits": LOGITS, "targets": TARGETS},
    outputs={"losses": LOSSES},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={"fp32": {"losses": LOSSES_TOLERANCE}, "bf16": {"losses": LOSSES_TOLERANCE}},
    # per real logit: compare for the maximum, subtract it, exp, add to the sum
    flops=lambda d: 4 * d.B * d.T * d.V,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    folder=Path(__file__).parent / "forward",
)


def rows(d):
    return d.B * d.T


def x128_size(dtype):
    return 16 // element_size("x", dtype)  # elements in one 128-bit load: 4 fp32, 8 bf16


def refuse_unpackable(d, dtype, config):
    if d.Vp % x128_size(dtype):
        return f"Vp={d.Vp} is not a multiple of {x128_size(dtype)} ({dtype} elements per 128-bit load)"
    return None


# The first config of each variant is its default (what bind() and a training loop use). One block
# per row: at GPT-2's Vp = 50304 a 1024-thread block still gives each thread ~50 logits (6 packs).
@FORWARD.variant(1, configs=block_sizes(1024, 32, 64, 128, 256, 512), dtypes=("fp32", "bf16"))
def block_per_row(k, a, s, block_size):
    k.classifier_forward_block_per_row(
        (rows(s),), (block_size,), (a.losses, a.logits, a.targets, rows(s), s.V, s.Vp))


@FORWARD.variant(2, configs=block_sizes(1024, 32, 64, 128, 256, 512), dtypes=("fp32", "bf16"),
                 refuse=refuse_unpackable)
def online_vectorized(k, a, s, block_size):
    k.classifier_forward_online_vectorized(
        (rows(s),), (block_size,), (a.losses, a.logits, a.targets, rows(s), s.V, s.Vp))
