"""AdamW, one update step of a flat parameter vector, written out (as PyTorch's torch.optim.AdamW
and llm.c's adamw_kernel3 do it).

Shapes: params, m, v (P,) are the fp32 master weights and moments; grads (P,) the gradients.
Weight decay is decoupled (it shrinks the parameters directly instead of joining the gradient),
and step is 1-based: the bias corrections 1 - beta^step undo the moments' start at zero.
grad_scale multiplies the gradients first: the trainer's gradient clipping factor (1.0 when off).
"""
import torch


def adamw_update(params, grads, m, v, *, lr, beta1, beta2, eps, weight_decay, step, grad_scale):
    """Returns (params_out, m_out, v_out):

    g = grads * grad_scale
    m_out = beta1 * m + (1 - beta1) * g
    v_out = beta2 * v + (1 - beta2) * g^2
    params_out = params - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * params)
    with m_hat = m_out / (1 - beta1^step) and v_hat = v_out / (1 - beta2^step).
    """
    g = grads * grad_scale
    m_out = beta1 * m + (1.0 - beta1) * g
    v_out = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m_out / (1.0 - beta1 ** step)
    v_hat = v_out / (1.0 - beta2 ** step)
    params_out = params - lr * (m_hat / (torch.sqrt(v_hat) + eps) + weight_decay * params)
    return params_out, m_out, v_out
