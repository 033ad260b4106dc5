"""Residual connection (out = inp1 + inp2): the forward ladder (forward.py and forward/). The
backward needs no kernel (both inputs receive dout unchanged); the trainer uses the forward to add
gradients into a buffer in place."""
from kernels.residual.forward import FORWARD

OPS = [FORWARD]
