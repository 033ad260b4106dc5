"""The global gradient norm: the L2 norm of all the model's gradients taken as one flat vector,
which the trainer compares with its clipping threshold (torch.nn.utils.clip_grad_norm_ computes
the same number over a list of tensors).

Shapes: grads (P,); norm (1,).
"""
import torch


def global_norm(grads):
    """sqrt(sum_i grads_i^2)."""
    return torch.sqrt((grads * grads).sum()).reshape(1)
