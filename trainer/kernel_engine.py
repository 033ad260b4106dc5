"""KernelEngine: the Engine (trainer/engine.py) that trains with the CUDA kernel variants best.yaml
chooses, chained by trainer/kernel_model.py. On device "cpu" it runs them on the CPU emulator: only
for tiny models (tests), since the emulator runs one CUDA thread at a time."""
from __future__ import annotations

import time
from collections import defaultdict

import torch

from trainer.config import GPTConfig
from trainer.engine import Engine
from trainer.kernel_model import KernelGPT2
from trainer.kernels import load_selection


class KernelEngine(Engine):
    def __init__(self, model: GPTConfig, params: torch.Tensor, cfg):
        self.model, self.dtype = model, cfg.dtype
        self.device = torch.device(cfg.device)
        self.choices = load_selection(cfg.kernels, cfg.dtype)
        self.net = KernelGPT2(model, cfg.batch_size, cfg.seq_len, self.choices, cfg.dtype, cfg.device)
        self.name = f"kernels {cfg.kernels} {self.device.type}{' (emulated)' if self.device.type == 'cpu' else ''} " \
                    f"{cfg.dtype}"
        self.set_parameters(params)
        if self.device.type == "cuda":
            self._staging = [{"tokens": torch.empty(cfg.batch_size, cfg.seq_len, dtype=torch.int32).pin_memory(),
                              "targets": torch.empty(cfg.batch_size, cfg.seq_len, dtype=torch.int32).pin_memory(),
                              "copied": torch.cuda.Event()} for _ in range(2)]
            self._next_staging = 0

    def describe_kernels(self) -> list[str]:
        return [f"{op_id:22s} {choice.describe()}" for op_id, choice in sorted(self.choices.items())]

    def _batch(self, tokens: torch.Tensor, targets: torch.Tensor | None) -> None:
        B, T = self.net.B, self.net.T
        if tuple(tokens.shape) != (B, T):
            raise ValueError(f"the kernel engine's buffers are for batches of {(B, T)}, got {tuple(tokens.shape)}")
        if self.device.type != "cuda":
            self.net.set_batch(tokens, targets)
            return
        # A copy from pageable memory may wait for the GPU to drain; from pinned memory it is queued
        # like a kernel. Two pinned buffers used in turn let the host prepare batch n+1 while the
        # GPU still reads batch n; the event says when a buffer's last copy has been done.
        staging = self._staging[self._next_staging]
        self._next_staging ^= 1
        staging["copied"].synchronize()
        staging["tokens"].copy_(tokens)
        if targets is not None:
            staging["targets"].copy_(targets)
        self.net.set_batch(staging["tokens"], None if targets is None else staging["targets"], non_blocking=True)
        staging["copied"].record()

    def forward_backward(self, tokens, targets, loss_scale):
        self._batch(tokens, targets)
        self.net.forward_backward(dloss=loss_scale / tokens.numel())
        return self.net.a["losses"].mean()  # enqueued, not read: the next micro-batch follows at once

    def zero_grad(self):
        self.net.zero_grad()

    def grad_norm(self):
        return self.net.grad_norm().item()

    def adamw_step(self, lr, step, grad_scale, beta1, beta2, eps, weight_decay):
        self.net.adamw(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, step=step,
                       grad_scale=grad_scale)

    def evaluate(self, tokens, targets):
        self._batch(tokens, targets)
        self.net.forward(with_loss=True)
        return self.net.a["losses"].mean().item()

    def logits(self, tokens):
        b, t = tokens.shape
        padded = torch.zeros(self.net.B, self.net.T, dtype=tokens.dtype)
        padded[:b, :t] = tokens  # causal attention: the padding after t cannot change positions < t
        self._batch(padded, None)
        self.net.forward(with_loss=False)
        return self.net.a["logits"][:b, :t, :self.model.vocab_size].float().cpu()

    def get_parameters(self):
        return self.net.master.to("cpu", copy=True)

    def set_parameters(self, flat):
        self.net.load_parameters(flat.to(self.device, torch.float32))

    def get_optimizer_state(self):
        return {"m": self.net.m.to("cpu", copy=True), "v": self.net.v.to("cpu", copy=True)}

    def set_optimizer_state(self, state):
        self.net.m.copy_(state["m"])
        self.net.v.copy_(state["v"])

    def profile(self, tokens, targets):
        """Time every kernel call of one forward_backward (CUDA events on a GPU), summed per op."""
        self._batch(tokens, targets)
        saved = self.net.grad_acc_flat.clone()
        calls = self.net.forward_calls + [self.net.dlogits_call] + self.net.backward_calls + [self.net.accumulate_call]
        scalars = {id(self.net.dlogits_call): {"dloss": 1.0 / tokens.numel()}}
        totals, counts = defaultdict(float), defaultdict(int)
        on_gpu = self.device.type == "cuda"
        for call in calls:  # warm-up: module loads out of the timing
            call(**scalars.get(id(call), {}))
        self.synchronize()
        for call in calls:
            if on_gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                call(**scalars.get(id(call), {}))
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                began = time.perf_counter()
                call(**scalars.get(id(call), {}))
                elapsed = (time.perf_counter() - began) * 1000.0
            totals[call.op_id] += elapsed
            counts[call.op_id] += 1
        self.net.grad_acc_flat.copy_(saved)
        return sorted(((op, ms, counts[op]) for op, ms in totals.items()), key=lambda row: -row[1])
