"""GPT-2's encoder: token embedding plus position embedding, forward and backward written out (as
llm.c's CPU reference).

Shapes: tokens (B, T) integers in [0, V); wte (V, C), one row per token; wpe (T, C), the first T rows
of the position table (the trainer passes wpe[:T]); out (B, T, C).
"""
import torch


def encoder_forward(tokens, wte, wpe):
    """out[b, t] = wte[tokens[b, t]] + wpe[t]: a row gather plus a broadcast over the batch."""
    return wte[tokens.long()] + wpe.unsqueeze(0)


def encoder_backward(dout, tokens, V):
    """Gradients of encoder_forward. A token row of wte receives the sum of dout over every position
    where that token occurs (rows of tokens that never occur get zero); a position row of wpe
    receives the sum of dout over the batch."""
    B, T, C = dout.shape
    dwte = torch.zeros(V, C, dtype=dout.dtype, device=dout.device)
    dwte.index_add_(0, tokens.reshape(B * T).long(), dout.reshape(B * T, C))
    dwpe = dout.sum(dim=0)
    return dwte, dwpe
