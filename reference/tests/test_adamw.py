"""The readable AdamW spec against torch.optim.AdamW, several steps in float64 on the CPU."""
import pytest
import torch

from reference.adamw import adamw_update

HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


@pytest.mark.parametrize("P", [1, 1000, 4097])
@pytest.mark.parametrize("grad_scale", [1.0, 0.37])
def test_steps_match_torch_adamw(P, grad_scale):
    g = torch.Generator().manual_seed(P)
    start = torch.randn(P, generator=g, dtype=torch.float64) + 0.2
    theirs = start.clone().requires_grad_()
    optimizer = torch.optim.AdamW([theirs], lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]),
                                  eps=HYPER["eps"], weight_decay=HYPER["weight_decay"])
    params, m, v = start.clone(), torch.zeros(P, dtype=torch.float64), torch.zeros(P, dtype=torch.float64)
    for step in range(1, 6):
        grads = torch.randn(P, generator=g, dtype=torch.float64) * 0.1 + 0.02
        # torch has no grad_scale: the trainer's clipping multiplies the gradients before the step
        theirs.grad = grads * grad_scale
        optimizer.step()
        params, m, v = adamw_update(params, grads, m, v, step=step, grad_scale=grad_scale, **HYPER)
        state = optimizer.state[theirs]
        torch.testing.assert_close(m, state["exp_avg"], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(v, state["exp_avg_sq"], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(params, theirs.detach(), rtol=1e-12, atol=1e-14)


def test_outputs_are_new_tensors():
    """The spec never writes its inputs: kernels may alias outputs to inputs, the reference may not care."""
    params, grads, m, v = (torch.ones(8, dtype=torch.float64) for _ in range(4))
    before = [t.clone() for t in (params, grads, m, v)]
    adamw_update(params, grads, m, v, step=1, grad_scale=1.0, **HYPER)
    for tensor, original in zip((params, grads, m, v), before):
        assert torch.equal(tensor, original)
