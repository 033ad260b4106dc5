"""TorchEngine against PyTorch's own pieces: autograd gradients, torch.optim.AdamW, accumulation."""
import pytest
import torch

from reference import gpt2
from trainer.config import GPTConfig
from trainer.engine import TorchEngine
from trainer.model import DECAYED, init_parameters, parameter_views

# small vocabulary so these tests take milliseconds
TINY = GPTConfig(num_layers=2, num_heads=2, channels=16, max_seq_len=32, vocab_size=97, padded_vocab_size=128)


def batch(B=2, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY.vocab_size, (B, T), generator=g), torch.randint(0, TINY.vocab_size, (B, T), generator=g)


def autograd_grads(flat, x, y):
    p = {k: v.clone().requires_grad_() for k, v in parameter_views(flat.clone(), TINY).items()}
    _, loss = gpt2.forward(p, x, TINY.num_heads, y, TINY.vocab_size)
    loss.backward()
    return loss.item(), torch.cat([p[k].grad.reshape(-1) for k in p])


def test_gradients_land_in_one_flat_buffer():
    flat = init_parameters(TINY, seed=0)
    engine = TorchEngine(TINY, flat)
    x, y = batch()
    loss = engine.forward_backward(x, y, 1.0).item()
    ref_loss, ref_grad = autograd_grads(flat, x, y)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    torch.testing.assert_close(engine.grad, ref_grad)
    assert engine.grad_norm() == pytest.approx(ref_grad.norm().item(), rel=1e-5)
    assert (parameter_views(engine.grad, TINY)["wte"][TINY.vocab_size:] == 0).all()  # padding gets no gradient


def test_accumulation_with_loss_scale_equals_one_big_batch():
    flat = init_parameters(TINY, seed=1)
    x, y = batch(B=4)
    big = TorchEngine(TINY, flat)
    big.forward_backward(x, y, 1.0)
    acc = TorchEngine(TINY, flat)
    acc.forward_backward(x[:2], y[:2], 0.5)
    acc.forward_backward(x[2:], y[2:], 0.5)
    torch.testing.assert_close(acc.grad, big.grad, rtol=1e-5, atol=1e-7)
    acc.zero_grad()
    assert acc.grad_norm() == 0.0


def test_adamw_matches_torch_optim_adamw_with_decay_on_matrices_only():
    flat = init_parameters(TINY, seed=2)
    engine = TorchEngine(TINY, flat)
    ref = {k: v.clone().requires_grad_() for k, v in parameter_views(flat.clone(), TINY).items()}
    hp = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    opt = torch.optim.AdamW([{"params": [ref[k] for k in ref if k in DECAYED], "weight_decay": 0.1},
                             {"params": [ref[k] for k in ref if k not in DECAYED], "weight_decay": 0.0}], **hp)
    for step in range(1, 4):
        x, y = batch(seed=step)
        engine.zero_grad()
        engine.forward_backward(x, y, 1.0)
        engine.adamw_step(1e-2, step, 1.0, 0.9, 0.95, 1e-8, 0.1)
        opt.zero_grad()
        _, loss = gpt2.forward(ref, x, TINY.num_heads, y, TINY.vocab_size)
        loss.backward()
        opt.step()
    mine = parameter_views(engine.get_parameters(), TINY)
    C = TINY.channels
    for name in ref:
        a, b = mine[name], ref[name].detach()
        if name == "qkvb":  # the key bias's gradient is 0 up to rounding (softmax ignores a shift)
            a, b = torch.cat([a[:, :C], a[:, 2 * C:]]), torch.cat([b[:, :C], b[:, 2 * C:]])  # and Adam amplifies noise
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_grad_scale_scales_the_gradient_seen_by_adamw():
    """Clipping by grad_scale s is the same as AdamW on s * grad."""
    flat = init_parameters(TINY, seed=3)
    x, y = batch()
    a, b = TorchEngine(TINY, flat), TorchEngine(TINY, flat)
    a.forward_backward(x, y, 1.0)
    b.forward_backward(x, y, 0.25)
    a.adamw_step(1e-3, 1, 0.25, 0.9, 0.95, 1e-8, 0.0)
    b.adamw_step(1e-3, 1, 1.0, 0.9, 0.95, 1e-8, 0.0)
    torch.testing.assert_close(a.get_parameters(), b.get_parameters())
    torch.testing.assert_close(a.get_optimizer_state()["v"], b.get_optimizer_state()["v"])


def test_state_exchange_evaluate_and_logits():
    flat = init_parameters(TINY, seed=4)
    engine = TorchEngine(TINY, flat)
    x, y = batch()
    engine.forward_backward(x, y, 1.0)
    engine.adamw_step(1e-2, 1, 1.0, 0.9, 0.95, 1e-8, 0.1)
    other = TorchEngine(TINY, engine.get_parameters())
    other.set_optimizer_state(engine.get_optimizer_state())
    assert other.evaluate(x, y) == engine.evaluate(x, y)
    assert torch.equal(other.get_optimizer_state()["m"], engine.get_optimizer_state()["m"])
    logits = engine.logits(x[:1, :5])
    assert logits.shape == (1, 5, TINY.vocab_size) and logits.dtype == torch.float32
    full = engine.logits(x[:1])
    torch.testing.assert_close(full[:, :5], logits)  # causal: later tokens do not change earlier logits


def test_profile_reports_ops_and_leaves_the_gradients_alone():
    engine = TorchEngine(TINY, init_parameters(TINY, seed=5))
    x, y = batch()
    engine.forward_backward(x, y, 1.0)
    before = engine.grad.clone()
    rows = engine.profile(x, y)
    assert torch.equal(engine.grad, before)
    names = [name for name, _, _ in rows]
    assert any("mm" in n for n in names) and all(ms >= 0 for _, ms, _ in rows)


def test_bf16_mixed_precision_keeps_fp32_master_weights():
    flat = init_parameters(TINY, seed=6)
    x, y = batch()
    fp32, bf16 = TorchEngine(TINY, flat), TorchEngine(TINY, flat, dtype="bf16")
    l32, l16 = fp32.forward_backward(x, y, 1.0).item(), bf16.forward_backward(x, y, 1.0).item()
    assert abs(l32 - l16) < 0.05
    assert bf16.flat.dtype == torch.float32 and bf16.grad.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(fp32.grad, bf16.grad, dim=0)
    assert cos > 0.99
