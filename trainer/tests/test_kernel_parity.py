"""The kernel path against the plain PyTorch GPT-2 (llm.c's test_gpt2, in spirit), on the CPU emulator:
a tiny model, the whole chain of kernel variants best.yaml would name, compared on loss and every
parameter gradient with reference/gpt2.py in float64, and over AdamW steps with the TorchEngine.
On a GPU the same comparison runs at real sizes (test_kernel_parity_on_gpu)."""
import math
from dataclasses import replace

import pytest
import torch

import reference.gpt2 as gpt2
from harness.registry import all_ops
from trainer.config import ROOT, GPTConfig, TrainConfig
from trainer.engine import TorchEngine
from trainer.kernel_engine import KernelEngine
from trainer.kernels import (ATTENTION_FAMILIES, allowed, simplest_trainer_selection, trainer_section,
                             write_selection)
from trainer.model import PARAMETER_NAMES, init_parameters, parameter_views

TINY = GPTConfig(num_layers=2, num_heads=2, channels=32, max_seq_len=16, vocab_size=50, padded_vocab_size=64)
B, T = 2, 8


def highest_selection(dtype, family="attention", deterministic=False):
    """Each op's highest-numbered variant for dtype (of the deterministic ones, if asked): the most
    sophisticated kernels of each ladder, with one attention family."""
    section = {}
    for op in all_ops():
        usable = [v for v in op.variants if dtype in v.dtypes and allowed(v, deterministic)]
        if usable:
            section[op.id] = {"variant": usable[-1].number, "config": dict(usable[-1].configs[0])}
    return trainer_section(section, family)


def chosen(selection, dtype):
    """"simplest", or "highest" / "highest-flash_attention": a best.yaml section for the trainer."""
    if selection == "simplest":
        return simplest_trainer_selection(dtype)
    _, _, family = selection.partition("-")
    return highest_selection(dtype, family or "attention")


SELECTIONS = ["simplest", "highest", "highest-flash_attention"]


def engine_for(tmp_path, sections, dtype, model=TINY, batch=(B, T), device="cpu"):
    """The KernelEngine for `sections` (a best.yaml's content), or for an existing best.yaml's path."""
    if isinstance(sections, dict):
        path = tmp_path / f"kernels-{dtype}.yaml"
        write_selection(path, sections, "test")
    else:
        path = sections
    cfg = replace(TrainConfig(), kernels=str(path), device=device, dtype=dtype, batch_size=batch[0], seq_len=batch[1])
    params = init_parameters(model, seed=5)
    # random, not GPT-2's init: biases and layernorm parameters away from 0 and 1 exercise every term
    params += 0.05 * torch.randn(params.shape, generator=torch.Generator().manual_seed(6))
    return KernelEngine(model, params, cfg), params


def batch(model=TINY, shape=(B, T), seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.vocab_size, shape, generator=g)
    targets = torch.randint(0, model.vocab_size, shape, generator=g)
    return tokens, targets


def reference_grads(params, tokens, targets, model=TINY):
    p64 = {k: v.double().clone().requires_grad_() for k, v in parameter_views(params.double(), model).items()}
    _, loss = gpt2.forward(p64, tokens, model.num_heads, targets, model.vocab_size)
    loss.backward()
    return loss.item(), {k: v.grad for k, v in p64.items()}


@pytest.mark.emulated
@pytest.mark.parametrize("selection", SELECTIONS)
def test_fp32_loss_and_every_gradient_match_the_reference(tmp_path, selection):
    section = chosen(selection, "fp32")
    engine, params = engine_for(tmp_path, {"fp32": section}, "fp32")
    flash = selection.endswith("flash_attention")  # saves one log-sum-exp per row, no probabilities
    assert ("lse" in engine.net.a, "att" in engine.net.a) == (flash, not flash)
    tokens, targets = batch()
    engine.zero_grad()
    loss = engine.forward_backward(tokens, targets, loss_scale=1.0).item()
    want_loss, want = reference_grads(params, tokens, targets)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    grads = parameter_views(engine.net.grad_acc_flat.double(), TINY)
    for name in PARAMETER_NAMES:
        scale = want[name].abs().max().item()
        err = (grads[name] - want[name]).abs().max().item()
        assert err <= 1e-5 * scale + 1e-7, f"{name}: max error {err:.3g} for gradients up to {scale:.3g}"
    norm = math.sqrt(sum((g.double() ** 2).sum().item() for g in want.values()))
    assert engine.grad_norm() == pytest.approx(norm, rel=1e-5)


@pytest.mark.emulated
@pytest.mark.parametrize("family", ATTENTION_FAMILIES)
def test_bf16_gradients_match_within_a_stated_bound(tmp_path, family):
    """bf16 activations, parameters and gradients (fp32 accumulation inside kernels): each gradient
    within 2% of its tensor's largest value, the loss within 1e-3 relative. One head of 64 channels:
    GPT-2's head size, the one the fused tensor-core attention is compiled for."""
    model = replace(TINY, num_heads=1, channels=64)
    engine, params = engine_for(tmp_path, {"bf16": highest_selection("bf16", family)}, "bf16", model=model)
    tokens, targets = batch(model, seed=1)
    engine.zero_grad()
    loss = engine.forward_backward(tokens, targets, loss_scale=1.0).item()
    bf16_params = params.to(torch.bfloat16).float()  # the model runs on the rounded parameters
    want_loss, want = reference_grads(bf16_params, tokens, targets, model)
    assert loss == pytest.approx(want_loss, rel=1e-3)
    grads = parameter_views(engine.net.grad_acc_flat.double(), model)
    for name in PARAMETER_NAMES:
        scale = want[name].abs().max().item()
        err = (grads[name] - want[name]).abs().max().item()
        assert err <= 2e-2 * scale, f"{name}: max error {err:.3g} for gradients up to {scale:.3g}"


@pytest.mark.emulated
def test_ten_adamw_steps_track_the_torch_engine(tmp_path):
    """The issue's parity: 10 AdamW steps give the same losses within 1e-4 relative in fp32."""
    model = replace(TINY, num_layers=1)
    engine, params = engine_for(tmp_path, {"fp32": highest_selection("fp32")}, "fp32", model=model)
    torch_engine = TorchEngine(model, params, device="cpu", dtype="fp32")
    tokens, targets = batch(model)
    losses = {"kernels": [], "torch": []}
    for step in range(1, 11):
        for name, e in (("kernels", engine), ("torch", torch_engine)):
            e.zero_grad()
            losses[name].append(e.forward_backward(tokens, targets, loss_scale=1.0).item())
            scale = min(1.0, 1.0 / max(e.grad_norm(), 1e-12))
            e.adamw_step(lr=1e-2, step=step, grad_scale=scale, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    assert losses["kernels"][-1] < losses["kernels"][0] - 0.1, "the loss should fall on a repeated batch"
    for got, want in zip(losses["kernels"], losses["torch"]):
        assert got == pytest.approx(want, rel=1e-4)
    # Parameters agree too, except the key biases: their gradient is exactly zero in exact arithmetic
    # (softmax ignores a shift shared by all keys), so both engines feed rounding noise to AdamW, which
    # normalises it into full-size steps of arbitrary sign.
    got, want = (parameter_views(e.get_parameters(), model) for e in (engine, torch_engine))
    C = model.channels
    for name in PARAMETER_NAMES:
        if name == "qkvb":
            got[name], want[name] = got[name][:, list(range(C)) + list(range(2 * C, 3 * C))], \
                want[name][:, list(range(C)) + list(range(2 * C, 3 * C))]
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=name)


def test_selection_with_a_missing_op_is_rejected(tmp_path):
    from harness.errors import UserError

    section = simplest_trainer_selection("fp32")
    del section["gelu.backward"]
    with pytest.raises(UserError, match="no entry for gelu.backward"):
        engine_for(tmp_path, {"fp32": section}, "fp32")


def assert_fp32_parity_on_gpu(kernels_file, tmp_path):
    """GPT-2 d2-sized with GPT-2's real vocabulary, B=4, T=64, fp32: the loss and every gradient against
    reference/gpt2.py in float64."""
    model = GPTConfig(num_layers=2, num_heads=4, channels=64)
    engine, params = engine_for(tmp_path, kernels_file, "fp32", model=model, batch=(4, 64), device="cuda")
    tokens, targets = batch(model, (4, 64))
    engine.zero_grad()
    loss = engine.forward_backward(tokens, targets, loss_scale=1.0).item()
    want_loss, want = reference_grads(params, tokens, targets, model)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    grads = parameter_views(engine.net.grad_acc_flat.double().cpu(), model)
    for name in PARAMETER_NAMES:
        scale = want[name].abs().max().item()
        assert (grads[name] - want[name]).abs().max().item() <= 1e-4 * scale + 1e-7, name


def assert_bf16_parity_on_gpu(kernels_file, tmp_path):
    """Heads of GPT-2's 64 channels (the tensor-core attention needs them), GPT-2's real vocabulary,
    B=4, T=128, bf16: the bound of the emulated bf16 test, each gradient within 2% of its tensor's
    largest value."""
    model = GPTConfig(num_layers=2, num_heads=2, channels=128)
    engine, params = engine_for(tmp_path, kernels_file, "bf16", model=model, batch=(4, 128), device="cuda")
    tokens, targets = batch(model, (4, 128), seed=1)
    engine.zero_grad()
    loss = engine.forward_backward(tokens, targets, loss_scale=1.0).item()
    want_loss, want = reference_grads(params.to(torch.bfloat16).float(), tokens, targets, model)
    assert loss == pytest.approx(want_loss, rel=1e-3)
    grads = parameter_views(engine.net.grad_acc_flat.double().cpu(), model)
    for name in PARAMETER_NAMES:
        scale = want[name].abs().max().item()
        err = (grads[name] - want[name]).abs().max().item()
        assert err <= 2e-2 * scale, f"{name}: max error {err:.3g} for gradients up to {scale:.3g}"


@pytest.mark.gpu
@pytest.mark.parametrize("selection", SELECTIONS)
def test_kernel_parity_on_gpu(gpu, tmp_path, selection):
    """Every layer's simplest and most refined fp32 variants (each attention family) on the GPU."""
    assert_fp32_parity_on_gpu({"fp32": chosen(selection, "fp32")}, tmp_path)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ATTENTION_FAMILIES)
def test_bf16_kernel_parity_on_gpu(gpu, tmp_path, family):
    """The bf16 chain of every layer's most refined variant (the tensor-core matmuls and the fused
    attention among them) on the GPU."""
    assert_bf16_parity_on_gpu({"bf16": highest_selection("bf16", family)}, tmp_path)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_best_yaml_parity_on_gpu(gpu, tmp_path, dtype):
    """The kernels this GPU's best.yaml names (`bench.py --select`; `make gpu-train` writes it), as
    the training run uses them, at the sizes and bounds of the two tests above."""
    best = ROOT / "best.yaml"
    if not best.is_file():
        pytest.skip(f"no {best.name} here: `python bench.py --select best.yaml` on a GPU writes it")
    (assert_fp32_parity_on_gpu if dtype == "fp32" else assert_bf16_parity_on_gpu)(best, tmp_path)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ATTENTION_FAMILIES)
def test_deterministic_kernels_repeat_training_steps_bit_for_bit_on_gpu(gpu, tmp_path, family):
    """What `bench.py --select --deterministic` promises: two engines from the same weights, given the
    same batches, give the same losses and the same weights after three AdamW steps, to the bit, with
    every layer's most refined deterministic bf16 variant (encoder backward 3 among them)."""
    model = GPTConfig(num_layers=2, num_heads=2, channels=128)
    section = {"bf16": highest_selection("bf16", family, deterministic=True)}
    runs = []
    for _ in range(2):
        engine, _ = engine_for(tmp_path, section, "bf16", model=model, batch=(4, 128), device="cuda")
        losses = []
        for step in range(1, 4):
            tokens, targets = batch(model, (4, 128), seed=step)
            engine.zero_grad()
            losses.append(engine.forward_backward(tokens, targets, loss_scale=1.0).item())
            engine.adamw_step(lr=1e-3, step=step, grad_scale=1.0, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
        runs.append((losses, engine.get_parameters().cpu()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1].view(torch.int32), runs[1][1].view(torch.int32))
