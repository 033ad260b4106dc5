"""The classifier: softmax over the vocabulary fused with the cross-entropy loss (llm.c's
fused_classifier), forward and backward written out.

Shapes: logits (B, T, Vp) where Vp >= V is the vocabulary padded to a friendlier size (GPT-2:
V = 50257, Vp = 50304); the columns V..Vp-1 are padding and take no part in the softmax.
targets (B, T) holds token ids in [0, V). losses (B, T) is the per-token loss
-log softmax(logits[..., :V])[target].
"""
import torch


def _log_normalizer(x):
    """max and log(sum(exp(x - max))) over the last dimension: log-sum-exp = max + the second.
    Subtracting the row maximum first keeps every exp() in (0, 1], so nothing overflows."""
    row_max = x.max(dim=-1, keepdim=True).values
    exps = torch.exp(x - row_max)
    return row_max, exps, torch.log(exps.sum(dim=-1, keepdim=True))


def classifier_forward(logits, targets, vocab_size):
    """losses = log(sum_j exp(x_j)) - x_target over the first vocab_size columns."""
    x = logits[..., :vocab_size]
    row_max, _, log_sum = _log_normalizer(x)
    target_logit = x.gather(-1, targets.long().unsqueeze(-1))
    return (row_max + log_sum - target_logit).squeeze(-1)


def classifier_backward(logits, targets, vocab_size, dloss):
    """The gradient of sum(losses * dloss) with respect to logits, and the losses themselves.

    d loss / d x_j = softmax(x)_j - [j == target], so dlogits = (probs - onehot) * dloss in the
    vocabulary columns and exactly 0 in the padding columns, which the loss never saw. dloss is
    the same for every token: 1 / (B * T) when the training loss is the mean over tokens.
    """
    x = logits[..., :vocab_size]
    row_max, exps, log_sum = _log_normalizer(x)
    probs = exps / exps.sum(dim=-1, keepdim=True)
    index = targets.long().unsqueeze(-1)
    losses = (row_max + log_sum - x.gather(-1, index)).squeeze(-1)
    dlogits = torch.zeros_like(logits)
    dlogits[..., :vocab_size] = probs * dloss
    dlogits[..., :vocab_size].scatter_add_(-1, index, torch.full_like(index, -dloss, dtype=logits.dtype))
    return dlogits, losses
