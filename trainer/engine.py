"""The Engine interface: everything the training loop asks of whatever runs the model.

train.py never touches a tensor of the model; it calls an Engine. Two implement it:

- TorchEngine (here): reference/gpt2.py differentiated by autograd, on the CPU or a GPU, fp32 or
  bf16 mixed precision (torch.autocast) with fp32 master weights; AdamW written out.
- KernelEngine (trainer/kernel_engine.py, selected by --kernels FILE.yaml): the workbench's CUDA
  kernel variants chained by hand, forward and backward, as llm.c's train_gpt2.cu.

Construction (what train.py calls):

    TorchEngine(model, params, device="cpu", dtype="fp32")
    KernelEngine(model, params, cfg)        # cfg: the TrainConfig (cfg.kernels is the YAML path;
                                            # cfg.device, cfg.dtype already resolved; B = cfg.batch_size,
                                            # T = cfg.seq_len are the largest batch shape it will see)

`model` is a GPTConfig and `params` the flat fp32 CPU buffer in llm.c's order (trainer/model.py);
the engine copies it (to its device) and owns the master weights from then on.

Conventions for every method:
- tokens and targets are int64 CPU tensors of shape (B, T); the engine moves them to its device.
- The loss is the mean cross-entropy over the B*T positions, over the first V logits.
- forward_backward returns its loss as a 0-d fp32 tensor on the engine's device, possibly not yet
  computed: the loop adds up the micro-batches' losses and reads them once, after the step's
  gradient norm (the one host sync of a step, as in llm.c). evaluate and grad_norm return floats.
- Parameters, gradients, m and v are flat fp32 buffers in llm.c's order; get_*/set_* exchange CPU
  copies, so a checkpoint written from one engine loads into any other.
"""
from __future__ import annotations

import abc
from contextlib import nullcontext

import torch

from reference import gpt2
from trainer.config import GPTConfig
from trainer.model import DECAYED, PARAMETER_NAMES, parameter_views


class Engine(abc.ABC):
    """What the training loop needs. See the module docstring for the conventions."""

    name: str  # shown in the log, e.g. "torch cpu fp32" or "kernels best.yaml cuda bf16"
    model: GPTConfig
    device: torch.device

    @abc.abstractmethod
    def forward_backward(self, tokens: torch.Tensor, targets: torch.Tensor, loss_scale: float) -> torch.Tensor:
        """Forward and backward of one micro-batch: ADD loss_scale * d(loss)/d(params) to the gradients
        (gradient accumulation: loss_scale = 1 / micro-batches per step). Returns the unscaled mean loss
        as a 0-d fp32 tensor on the device, without waiting for it."""

    @abc.abstractmethod
    def zero_grad(self) -> None:
        """Set every gradient to zero (before the first micro-batch of a step)."""

    @abc.abstractmethod
    def grad_norm(self) -> float:
        """The global L2 norm of the accumulated gradients (all parameters as one vector)."""

    @abc.abstractmethod
    def adamw_step(self, lr: float, step: int, grad_scale: float, beta1: float, beta2: float, eps: float,
                   weight_decay: float) -> None:
        """One AdamW update with the accumulated gradients multiplied by grad_scale (clipping: the
        loop passes min(1, clip / norm)). step counts from 1 (bias correction). For each parameter:
            g = grad * grad_scale;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
            p -= lr * (m / (1 - beta1^step) / (sqrt(v / (1 - beta2^step)) + eps) + wd * p)
        with wd = weight_decay for model.DECAYED tensors (matrices, embeddings) and 0 for the rest."""

    @abc.abstractmethod
    def evaluate(self, tokens: torch.Tensor, targets: torch.Tensor) -> float:
        """The mean loss of a batch, without touching the gradients."""

    @abc.abstractmethod
    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (b, t, V) as fp32 on the CPU, for sampling; b <= B and t <= T. An engine with fixed
        (B, T) buffers may pad: attention is causal, so positions after t do not change positions < t."""

    @abc.abstractmethod
    def get_parameters(self) -> torch.Tensor:
        """A CPU fp32 copy of the master weights, flat, in llm.c's order."""

    @abc.abstractmethod
    def set_parameters(self, flat: torch.Tensor) -> None:
        """Overwrite the master weights with a flat fp32 buffer."""

    @abc.abstractmethod
    def get_optimizer_state(self) -> dict[str, torch.Tensor]:
        """{"m": ..., "v": ...}: CPU fp32 copies of AdamW's moments, flat, in llm.c's order."""

    @abc.abstractmethod
    def set_optimizer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what get_optimizer_state returned."""

    def profile(self, tokens: torch.Tensor, targets: torch.Tensor) -> list[tuple[str, float, int]] | None:
        """Optional: time one forward_backward per op; rows of (op name, milliseconds, calls), slowest
        first. Must leave parameters, optimizer state and gradients as they were. None: not supported."""
        return None

    def describe_kernels(self) -> list[str]:
        """One line per op naming the kernel variant and launch configuration it runs ([]: not kernels)."""
        return []

    def synchronize(self) -> None:
        """Wait for queued device work (so step times are honest)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class TorchEngine(Engine):
    """reference/gpt2.py with autograd; fp32 master weights, gradients, m and v as flat buffers."""

    def __init__(self, model: GPTConfig, params: torch.Tensor, device: str = "cpu", dtype: str = "fp32"):
        if dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be fp32 or bf16, not {dtype!r}")
        self.model, self.device, self.dtype = model, torch.device(device), dtype
        self.name = f"torch {self.device.type} {dtype}"
        self.flat = params.detach().to(self.device, torch.float32, copy=True)
        self.grad = torch.zeros_like(self.flat)
        self.m = torch.zeros_like(self.flat)
        self.v = torch.zeros_like(self.flat)
        # Leaf tensors that share the flat buffers: autograd accumulates each gradient in place into
        # the matching view of self.grad (a .grad that exists is added to, never replaced).
        self.params = {name: view.detach().requires_grad_() for name, view in parameter_views(self.flat, model).items()}
        for name, g in parameter_views(self.grad, model).items():
            self.params[name].grad = g

    def _autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _forward(self, tokens, targets=None):
        tokens = tokens.to(self.device, non_blocking=True)
        if targets is not None:
            targets = targets.to(self.device, non_blocking=True)
        with self._autocast():
            return gpt2.forward(self.params, tokens, self.model.num_heads, targets, self.model.vocab_size)

    def forward_backward(self, tokens, targets, loss_scale):
        _, loss = self._forward(tokens, targets)
        (loss * loss_scale).backward()
        return loss.detach().float()

    def zero_grad(self):
        self.grad.zero_()

    def grad_norm(self):
        return torch.linalg.vector_norm(self.grad).item()

    @torch.no_grad()
    def adamw_step(self, lr, step, grad_scale, beta1, beta2, eps, weight_decay):
        bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
        views = [parameter_views(t, self.model) for t in (self.flat, self.grad, self.m, self.v)]
        for name in PARAMETER_NAMES:  # one tensor at a time keeps the temporaries small
            p, grad, m, v = (vs[name] for vs in views)
            g = grad * grad_scale
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            update = (m / bias1) / ((v / bias2).sqrt_().add_(eps))
            if name in DECAYED:
                update.add_(p, alpha=weight_decay)
            p.sub_(update, alpha=lr)

    @torch.no_grad()
    def evaluate(self, tokens, targets):
        _, loss = self._forward(tokens, targets)
        return loss.item()

    @torch.no_grad()
    def logits(self, tokens):
        logits, _ = self._forward(tokens)
        return logits[..., :self.model.vocab_size].float().cpu()

    def get_parameters(self):
        return self.flat.detach().to("cpu", copy=True)

    def set_parameters(self, flat):
        self.flat.copy_(flat)

    def get_optimizer_state(self):
        return {"m": self.m.to("cpu", copy=True), "v": self.v.to("cpu", copy=True)}

    def set_optimizer_state(self, state):
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])

    def profile(self, tokens, targets):
        """torch.profiler over one forward_backward, summed per aten op (self time: CUDA on a GPU)."""
        from torch.profiler import ProfilerActivity, profile

        saved = self.grad.clone()
        self.forward_backward(tokens, targets, 1.0)  # warm-up: first-call allocations out of the way
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            self.forward_backward(tokens, targets, 1.0)
            self.synchronize()
        self.grad.copy_(saved)
        on_gpu = self.device.type == "cuda"
        rows = []
        for e in prof.key_averages():
            us = e.self_device_time_total if on_gpu else e.self_cpu_time_total
            if us > 0 and e.key.startswith("aten::"):
                rows.append((e.key, us / 1000.0, e.count))
        return sorted(rows, key=lambda r: -r[1])

