"""The fully connected layer (llm.c's matmul), forward and backward written out.

Shapes: inp (B, T, C); weight (OC, C), stored as nn.Linear stores it (one row per output channel);
bias (OC,); out (B, T, OC). Every (b, t) position is an independent row, so the layer is one
(B*T, C) x (C, OC) matrix product plus a bias broadcast over the rows.
"""


def matmul_forward(inp, weight, bias):
    """out[b, t, o] = bias[o] + sum_c inp[b, t, c] * weight[o, c]."""
    return inp @ weight.transpose(0, 1) + bias


def matmul_backward(dout, inp, weight):
    """Gradients of out = inp @ weight^T + bias.

    dinp[b, t, c] = sum_o dout[b, t, o] * weight[o, c]        (a sum over the OC outputs)
    dweight[o, c] = sum_{b, t} dout[b, t, o] * inp[b, t, c]   (a sum over all B*T rows)
    dbias[o]      = sum_{b, t} dout[b, t, o]
    """
    rows_out = dout.reshape(-1, dout.shape[-1])  # (B*T, OC)
    rows_in = inp.reshape(-1, inp.shape[-1])  # (B*T, C)
    dinp = dout @ weight
    dweight = rows_out.transpose(0, 1) @ rows_in
    dbias = rows_out.sum(dim=0)
    return dinp, dweight, dbias
