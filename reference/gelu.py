"""GPT-2's GELU, the tanh approximation (torch.nn.functional.gelu(approximate="tanh")), forward and
backward written out (as llm.c's CPU reference).

Shapes: inp, out, dout, dinp: any shape, the same for all (the layer treats them as flat (N,)).

    gelu(x) = 0.5 * x * (1 + tanh(u)),  u = sqrt(2 / pi) * (x + 0.044715 * x^3)
"""
import math

import torch

GELU_SCALE = math.sqrt(2.0 / math.pi)
GELU_CUBE = 0.044715


def gelu_forward(inp):
    u = GELU_SCALE * (inp + GELU_CUBE * inp ** 3)
    return 0.5 * inp * (1.0 + torch.tanh(u))


def gelu_backward(dout, inp):
    """dinp = dout * gelu'(x), by the product rule on 0.5 * x * (1 + tanh(u)):

        gelu'(x) = 0.5 * (1 + tanh(u)) + 0.5 * x * (1 - tanh(u)^2) * du/dx,
        du/dx = sqrt(2 / pi) * (1 + 3 * 0.044715 * x^2)

    (1 - tanh^2 is 1 / cosh^2, the derivative of tanh.)
    """
    tanh_u = torch.tanh(GELU_SCALE * (inp + GELU_CUBE * inp ** 3))
    du_dx = GELU_SCALE * (1.0 + 3.0 * GELU_CUBE * inp ** 2)
    local_grad = 0.5 * (1.0 + tanh_u) + 0.5 * inp * (1.0 - tanh_u * tanh_u) * du_dx
    return dout * local_grad
