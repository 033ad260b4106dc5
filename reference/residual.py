"""The residual connection of GPT-2's blocks, forward and backward written out.

Shapes: inp1, inp2, out, dout: any shape, the same for all (the layer treats them as flat (N,)).
"""


def residual_forward(inp1, inp2):
    return inp1 + inp2


def residual_backward(dout):
    """Gradients of out = inp1 + inp2: both inputs receive dout unchanged. (The trainer therefore
    needs no residual backward kernel; it uses the forward to add gradients into a buffer.)"""
    return dout, dout
