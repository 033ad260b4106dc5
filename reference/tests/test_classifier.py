"""The readable classifier spec against torch.nn.functional.cross_entropy and autograd, in float64
on the CPU, with padded vocabularies."""
import pytest
import torch
import torch.nn.functional as F

from reference.classifier import classifier_backward, classifier_forward


@pytest.fixture(params=[(2, 3, 50, 64), (1, 7, 100, 128), (3, 5, 257, 264), (2, 2, 36, 36)], ids=str)
def tensors(request):
    B, T, V, Vp = request.param
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, Vp, generator=g, dtype=torch.float64) * 2 + 0.5
    logits[..., V:] += 10.0  # padding that would dominate the softmax if it were not ignored
    targets = torch.randint(0, V, (B, T), generator=g, dtype=torch.int32)
    return logits, targets, V


def test_forward_matches_cross_entropy(tensors):
    logits, targets, V = tensors
    want = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.long().reshape(-1), reduction="none")
    got = classifier_forward(logits, targets, V)
    torch.testing.assert_close(got, want.reshape(targets.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mean_loss", [True, False], ids=["mean", "sum-times-0.125"])
def test_backward_matches_autograd(tensors, mean_loss):
    logits, targets, V = tensors
    leaf = logits.clone().requires_grad_()
    per_token = F.cross_entropy(leaf[..., :V].reshape(-1, V), targets.long().reshape(-1), reduction="none")
    dloss = 1.0 / targets.numel() if mean_loss else 0.125
    (per_token.mean() if mean_loss else per_token.sum() * dloss).backward()
    dlogits, losses = classifier_backward(logits, targets, V, dloss)
    torch.testing.assert_close(dlogits, leaf.grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(losses, per_token.detach().reshape(targets.shape), rtol=1e-12, atol=1e-12)
    assert torch.all(dlogits[..., V:] == 0), "padding columns get exactly zero gradient"
