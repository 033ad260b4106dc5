"""The readable global-norm spec against torch.linalg.vector_norm and clip_grad_norm_, in float64
on the CPU."""
import pytest
import torch

from reference.global_norm import global_norm


@pytest.mark.parametrize("P", [1, 1000, 4097, 123457])
def test_matches_vector_norm(P):
    grads = torch.randn(P, generator=torch.Generator().manual_seed(P), dtype=torch.float64) * 0.3 + 0.01
    torch.testing.assert_close(global_norm(grads), torch.linalg.vector_norm(grads).reshape(1),
                               rtol=1e-12, atol=0)


def test_is_the_norm_clip_grad_norm_sees_over_many_tensors():
    """The trainer keeps every gradient in one flat buffer; torch clips a list of tensors."""
    g = torch.Generator().manual_seed(0)
    shapes = [(768,), (50, 768), (3, 4, 5), (1,)]
    parameters = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    for p in parameters:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    total = torch.nn.utils.clip_grad_norm_(parameters, max_norm=float("inf"))
    torch.testing.assert_close(global_norm(flat), total.reshape(1), rtol=1e-12, atol=0)
