"""Classifier backward, fused with the forward as in llm.c: one kernel reads the logits and writes
both the gradient of the loss with respect to them and the per-token losses (the training step
needs both). The contract and the launch geometry of each variant in backward/.

Kernel arguments, in this order for every variant:
    dlogits (N, Vp) floatX, losses (N,) float, logits (N, Vp) floatX, targets (N,) int,
    dloss float, N = B * T, V, Vp

dlogits = (softmax(logits[:V]) - onehot(target)) * dloss in columns < V and exactly 0 in the
padding columns V..Vp-1; losses as the forward's. Both outputs are overwritten.

dloss is a per-call scalar: the gradient of the training loss with respect to each token's loss,
1 / (B * T) for the mean over tokens (the trainer passes it: run(dloss=...)). The check's default,
0.125, keeps the gradients well above fp32's noise.

In place: dlogits may be the logits tensor itself (the trainer overwrites the logits, as llm.c
does). Every variant reads a row only from the block that writes it, finishes every read other
threads depend on before the block's last barrier, and then writes only elements the same thread
has just read. The harness checks with separate buffers; kernels/test_aliasing.py checks the
aliased call on the emulator (Op.aliases).
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.contract import Op, Tolerance, block_sizes
from kernels.classifier.forward import LOSSES_TOLERANCE, refuse_unpackable, rows
from kernels.classifier.shapes import BENCH_SHAPE, DIMS, LOGITS, LOSSES, SHAPES, TARGETS, make_inputs
from reference.classifier import classifier_backward

DLOSS = 0.125  # the check's default; the trainer passes 1 / (B * T)


def reference(t):
    dlogits, losses = classifier_backward(t["logits"], t["targets"], t["dims"].V, t["dloss"])
    return {"dlogits": dlogits, "losses": losses}


def fused_classifier(logits, targets, V, dloss):
    """What the kernels compute, in torch: fp32 math, the padding columns of dlogits zeroed."""
    log_probs = torch.log_softmax(logits[..., :V].float(), dim=-1)
    index = targets.unsqueeze(-1)
    losses = -log_probs.gather(-1, index).squeeze(-1)
    grad = log_probs.exp_()
    grad.scatter_add_(-1, index, torch.full(index.shape, -1.0, device=grad.device))
    grad.mul_(dloss)
    return F.pad(grad, (0, logits.shape[-1] - V)).to(logits.dtype), losses


def torch_eager(t, dims):
    logits, targets, V = t["logits"], t["targets"].long(), dims.V
    return lambda: fused_classifier(logits, targets, V, DLOSS)


def torch_compiled(t, dims):
    logits, targets, V = t["logits"], t["targets"].long(), dims.V
    compiled = torch.compile(lambda x, y: fused_classifier(x, y, V, DLOSS), dynamic=False)
    return lambda: compiled(logits, targets)


BACKWARD = Op(
    layer="classifier",
    pass_name="backward",
    dims=DIMS,
    inputs={"logits": LOGITS, "targets": TARGETS},
    outputs={"dlogits": LOGITS, "losses": LOSSES},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        # prob = exp(x - max) / sum: fp32 rounding of x - max (|x - max| up to ~20), of exp and of
        # the sum leaves a few 1e-6 relative; the atol is only for the target column's p - 1 and
        # padding's exact 0, far below any real gradient (dloss / V ~ 2e-6 at GPT-2's V).
        "fp32": {"dlogits": Tolerance(atol=1e-9, rtol=1e-5), "losses": LOSSES_TOLERANCE},
        # dlogits is rounded to 8 bits of mantissa when stored; the losses are fp32 math on exactly
        # the bf16 logits the reference sees.
        "bf16": {"dlogits": Tolerance(atol=1e-9, rtol=1e-2), "losses": LOSSES_TOLERANCE},
    },
    # per real logit: the forward's 4 (max, subtract, exp, add), then subtract, exp, scale by 1/sum,
    # subtract the one-hot, multiply by dloss
    flops=lambda d: 9 * d.B * d.T * d.V,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    scalars={"dloss": DLOSS},
    folder=Path(__file__).parent / "backward",
    aliases=[{"dlogits": "logits"}],  # the trainer overwrites its logits, as llm.c
)


def kernel_args(a, s):
    return (a.dlogits, a.losses, a.logits, a.targets, float(a.dloss), rows(s), s.V, s.Vp)


@BACKWARD.variant(1, configs=block_sizes(1024, 32, 64, 128, 256, 512), dtypes=("fp32", "bf16"))
def block_per_row(k, a, s, block_size):
    k.classifier_backward_block_per_row((rows(s),), (block_size,), kernel_args(a, s))


@BACKWARD.variant(2, configs=block_sizes(1024, 32, 64, 128, 256, 512), dtypes=("fp32", "bf16"),
                  refuse=refuse_unpackable)
def online_vectorized(k, a, s, block_size):
    k.classifier_backward_online_vectorized((rows(s),), (block_size,), kernel_args(a, s))
