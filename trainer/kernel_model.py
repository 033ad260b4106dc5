"""GPT-2 forward and backward as a chain of the kernel variants best.yaml chooses.

Every buffer is allocated once, for a fixed (B, T); every kernel call is bound once (the contract
checks shapes and dtypes then), so a training step only enqueues kernels: no allocation, and no
host synchronisation except reading the gradient norm once per step. The order of calls follows
llm.c's train_gpt2.cu. On device "cpu" the same chain runs on the CPU emulator (small models only):
that is how the kernel path is tested against reference/gpt2.py without a GPU.

Kernel outputs are overwritten, never accumulated, so the sums of the backward pass (the residual
stream's gradient, wte's two gradients, gradient accumulation over micro-steps) go through the
residual kernel (out = inp1 + inp2, safe with out aliasing inp1).
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from harness.contract import torch_dtype
from trainer.config import GPTConfig
from trainer.kernels import Choice
from trainer.model import DECAYED, num_parameters, parameter_views


class BoundCall:
    """One bound kernel call, labelled with its op for --profile."""

    def __init__(self, op_id: str, run):
        self.op_id, self.run = op_id, run

    def __call__(self, **scalars) -> None:
        self.run(**scalars)


class KernelGPT2:
    """Buffers and bound kernel calls for one (model, B, T, dtype, device)."""

    def __init__(self, model: GPTConfig, B: int, T: int, choices: dict[str, Choice], dtype: str,
                 device: str = "cuda"):
        if T > model.max_seq_len:
            raise ValueError(f"T={T} exceeds the model's max_seq_len {model.max_seq_len}")
        self.model, self.B, self.T, self.choices, self.dtype, self.device = model, B, T, choices, dtype, device
        x = torch_dtype("x", dtype)
        self.kind = torch.device(device).type
        self.num_params = P = num_parameters(model)

        def buffer(*size, dtype=x):
            return torch.zeros(*size, dtype=dtype, device=device)

        # parameters: fp32 master copy (AdamW updates it) and the model's copy in its dtype
        self.master = buffer(P, dtype=torch.float32)
        self.params_flat = buffer(P)
        self.grads_flat = buffer(P)  # one micro-step's gradients (fully overwritten each time)
        self.grad_acc_flat = buffer(P)  # their sum over the micro-steps of a step
        self.m = buffer(P, dtype=torch.float32)
        self.v = buffer(P, dtype=torch.float32)
        self.params = parameter_views(self.params_flat, model)
        self.grads = parameter_views(self.grads_flat, model)
        self.masters = parameter_views(self.master, model)
        self.grad_accs = parameter_views(self.grad_acc_flat, model)
        self.ms, self.vs = parameter_views(self.m, model), parameter_views(self.v, model)

        C, L, NH, Vp = model.channels, model.num_layers, model.num_heads, model.padded_vocab_size
        # What the attention saves for its backward: the probabilities, or flash attention's one
        # log-sum-exp per query row (at GPT-2 124M, B=32, T=1024 in bf16: 9.7 GB against 19 MB).
        self.flash = "flash_attention.forward" in choices
        saved = {"lse": (L, B, NH, T)} if self.flash else {"att": (L, B, NH, T, T)}
        self.tokens = buffer(B, T, dtype=torch.int32)
        self.targets = buffer(B, T, dtype=torch.int32)
        acts = {
            "encoded": (B, T, C), "ln1": (L, B, T, C), "ln1_mean": (L, B, T), "ln1_rstd": (L, B, T),
            "qkv": (L, B, T, 3 * C), "atty": (L, B, T, C), **saved, "attproj": (L, B, T, C),
            "residual2": (L, B, T, C), "ln2": (L, B, T, C), "ln2_mean": (L, B, T), "ln2_rstd": (L, B, T),
            "fch": (L, B, T, 4 * C), "fch_gelu": (L, B, T, 4 * C), "fcproj": (L, B, T, C),
            "residual3": (L, B, T, C), "lnf": (B, T, C), "lnf_mean": (B, T), "lnf_rstd": (B, T),
            "logits": (B, T, Vp), "losses": (B, T),
        }
        fp32_acts = {"ln1_mean", "ln1_rstd", "ln2_mean", "ln2_rstd", "lnf_mean", "lnf_rstd", "losses", "lse"}
        self.a = {name: buffer(*size, dtype=torch.float32 if name in fp32_acts else x)
                  for name, size in acts.items()}
        grads = {"dresidual": (B, T, C), "dtmp": (B, T, C), "dln": (B, T, C), "datty": (B, T, C),
                 "dqkv": (B, T, 3 * C), "dfch": (B, T, 4 * C), "dfch_gelu": (B, T, 4 * C),
                 "dwte_encoder": (Vp, C), "dbias_discard": (Vp,), "zero_bias": (Vp,)}
        self.d = {name: buffer(*size) for name, size in grads.items()}
        self.norm = buffer(1, dtype=torch.float32)
        self.s = SimpleNamespace(L=L, C=C, NH=NH, V=model.vocab_size, Vp=Vp, B=B, T=T)
        self._scratch: dict = {}
        self.forward_calls = self._bind_forward()
        self.backward_calls = self._bind_backward()
        self.accumulate_call = self._bind("residual.forward", (P,), inp1=self.grad_acc_flat,
                                          inp2=self.grads_flat, out=self.grad_acc_flat)
        self.norm_call = self._bind("global_norm.forward", (P,), grads=self.grad_acc_flat, norm=self.norm)
        self.adamw_calls = [
            (name, self._bind("adamw.update", (self.params[name].numel(),),
                              params=self.masters[name].view(-1), grads=self.grad_accs[name].view(-1),
                              m=self.ms[name].view(-1), v=self.vs[name].view(-1),
                              params_out=self.masters[name].view(-1), m_out=self.ms[name].view(-1),
                              v_out=self.vs[name].view(-1), params_model=self.params[name].view(-1)))
            for name in self.params]

    # -- binding -------------------------------------------------------------------------------

    def _bind(self, op_id: str, dims, **tensors):
        choice = self.choices[op_id]
        variant, config = choice.variant, choice.config
        dims = variant.op.make_dims(dims)
        key = (op_id, tuple(dims))
        if key not in self._scratch:  # scratch is shared by every call of an op at one shape
            specs = variant.scratch_specs(dims, self.dtype, config)
            self._scratch[key] = {name: torch.empty(spec.shape(dims), device=self.device,
                                                    dtype=torch_dtype(spec.element_type, self.dtype))
                                  for name, spec in specs.items()}
        return BoundCall(op_id, variant.bind(tensors | self._scratch[key], dims, self.dtype, config,
                                             device=self.kind))

    def _layernorm(self, inp, weight, bias, out, mean, rstd):
        s = self.s
        return self._bind("layernorm.forward", (s.B, s.T, s.C), inp=inp, weight=weight, bias=bias, out=out,
                          mean=mean, rstd=rstd)

    def _matmul(self, inp, weight, bias, out):
        s = self.s
        return self._bind("matmul.forward", (s.B, s.T, inp.shape[-1], weight.shape[0]), inp=inp, weight=weight,
                          bias=bias, out=out)

    def _residual(self, inp1, inp2, out):
        return self._bind("residual.forward", (inp1.numel(),), inp1=inp1.view(-1), inp2=inp2.view(-1),
                          out=out.view(-1))

    def _attention(self, l):
        s, a = self.s, self.a
        dims = (s.B, s.T, s.NH, s.C // s.NH)
        if self.flash:
            return self._bind("flash_attention.forward", dims, qkv=a["qkv"][l], out=a["atty"][l], lse=a["lse"][l])
        return self._bind("attention.forward", dims, qkv=a["qkv"][l], out=a["atty"][l], att=a["att"][l])

    def _attention_backward(self, l):
        s, a, d = self.s, self.a, self.d
        dims = (s.B, s.T, s.NH, s.C // s.NH)
        if self.flash:
            return self._bind("flash_attention.backward", dims, dout=d["datty"], qkv=a["qkv"][l], out=a["atty"][l],
                              lse=a["lse"][l], dqkv=d["dqkv"])
        return self._bind("attention.backward", dims, dout=d["datty"], qkv=a["qkv"][l], att=a["att"][l],
                          dqkv=d["dqkv"])

    def _bind_forward(self):
        s, p, a = self.s, self.params, self.a
        B, T, C = s.B, s.T, s.C
        calls = [self._bind("encoder.forward", (B, T, C, s.Vp), tokens=self.tokens, wte=p["wte"],
                            wpe=p["wpe"][:T], out=a["encoded"])]
        for l in range(s.L):
            residual = a["encoded"] if l == 0 else a["residual3"][l - 1]
            calls += [
                self._layernorm(residual, p["ln1w"][l], p["ln1b"][l], a["ln1"][l], a["ln1_mean"][l], a["ln1_rstd"][l]),
                self._matmul(a["ln1"][l], p["qkvw"][l], p["qkvb"][l], a["qkv"][l]),
                self._attention(l),
                self._matmul(a["atty"][l], p["attprojw"][l], p["attprojb"][l], a["attproj"][l]),
                self._residual(residual, a["attproj"][l], a["residual2"][l]),
                self._layernorm(a["residual2"][l], p["ln2w"][l], p["ln2b"][l], a["ln2"][l], a["ln2_mean"][l],
                                a["ln2_rstd"][l]),
                self._matmul(a["ln2"][l], p["fcw"][l], p["fcb"][l], a["fch"][l]),
                self._bind("gelu.forward", (B * T * 4 * C,), inp=a["fch"][l].view(-1), out=a["fch_gelu"][l].view(-1)),
                self._matmul(a["fch_gelu"][l], p["fcprojw"][l], p["fcprojb"][l], a["fcproj"][l]),
                self._residual(a["residual2"][l], a["fcproj"][l], a["residual3"][l]),
            ]
        calls += [
            self._layernorm(a["residual3"][s.L - 1], p["lnfw"], p["lnfb"], a["lnf"], a["lnf_mean"], a["lnf_rstd"]),
            self._matmul(a["lnf"], p["wte"], self.d["zero_bias"], a["logits"]),
        ]
        self.loss_call = self._bind("classifier.forward", (B, T, s.V, s.Vp), logits=a["logits"],
                                    targets=self.targets, losses=a["losses"])
        return calls

    def _matmul_backward(self, dout, inp, weight, dinp, dweight, dbias):
        s = self.s
        return self._bind("matmul.backward", (s.B, s.T, inp.shape[-1], weight.shape[0]), dout=dout, inp=inp,
                          weight=weight, dinp=dinp, dweight=dweight, dbias=dbias)

    def _layernorm_backward(self, dout, inp, weight, mean, rstd, dinp, dweight, dbias):
        s = self.s
        return self._bind("layernorm.backward", (s.B, s.T, s.C), dout=dout, inp=inp, weight=weight, mean=mean,
                          rstd=rstd, dinp=dinp, dweight=dweight, dbias=dbias)

    def _bind_backward(self):
        s, p, g, a, d = self.s, self.params, self.grads, self.a, self.d
        B, T, C = s.B, s.T, s.C
        # dlogits overwrite the logits in place (the classifier kernel is safe for it), as llm.c does
        self.dlogits_call = self._bind("classifier.backward", (B, T, s.V, s.Vp), logits=a["logits"],
                                       targets=self.targets, dlogits=a["logits"], losses=a["losses"])
        calls = [
            self._matmul_backward(a["logits"], a["lnf"], p["wte"], d["dln"], g["wte"], d["dbias_discard"]),
            self._layernorm_backward(d["dln"], a["residual3"][s.L - 1], p["lnfw"], a["lnf_mean"], a["lnf_rstd"],
                                     d["dresidual"], g["lnfw"], g["lnfb"]),
        ]
        for l in reversed(range(s.L)):
            residual = a["encoded"] if l == 0 else a["residual3"][l - 1]
            calls += [
                # residual3 = residual2 + fcproj: dresidual flows to both
                self._matmul_backward(d["dresidual"], a["fch_gelu"][l], p["fcprojw"][l], d["dfch_gelu"],
                                      g["fcprojw"][l], g["fcprojb"][l]),
                self._bind("gelu.backward", (B * T * 4 * C,), dout=d["dfch_gelu"].view(-1),
                           inp=a["fch"][l].view(-1), dinp=d["dfch"].view(-1)),
                self._matmul_backward(d["dfch"], a["ln2"][l], p["fcw"][l], d["dln"], g["fcw"][l], g["fcb"][l]),
                self._layernorm_backward(d["dln"], a["residual2"][l], p["ln2w"][l], a["ln2_mean"][l],
                                         a["ln2_rstd"][l], d["dtmp"], g["ln2w"][l], g["ln2b"][l]),
                self._residual(d["dresidual"], d["dtmp"], d["dresidual"]),
                # residual2 = residual + attproj
                self._matmul_backward(d["dresidual"], a["atty"][l], p["attprojw"][l], d["datty"],
                                      g["attprojw"][l], g["attprojb"][l]),
                self._attention_backward(l),
                self._matmul_backward(d["dqkv"], a["ln1"][l], p["qkvw"][l], d["dln"], g["qkvw"][l], g["qkvb"][l]),
                self._layernorm_backward(d["dln"], residual, p["ln1w"][l], a["ln1_mean"][l], a["ln1_rstd"][l],
                                         d["dtmp"], g["ln1w"][l], g["ln1b"][l]),
                self._residual(d["dresidual"], d["dtmp"], d["dresidual"]),
            ]
        calls += [
            # wte gets gradients from the LM head and from the embedding lookup; rows of wpe past T stay 0
            self._bind("encoder.backward", (B, T, C, s.Vp), dout=d["dresidual"], tokens=self.tokens,
                       dwte=d["dwte_encoder"], dwpe=g["wpe"][:T]),
            self._residual(g["wte"], d["dwte_encoder"], g["wte"]),
        ]
        return calls

    # -- what the engine calls -----------------------------------------------------------------

    def load_parameters(self, flat_fp32: torch.Tensor) -> None:
        self.master.copy_(flat_fp32)
        self.params_flat.copy_(flat_fp32)

    def set_batch(self, tokens: torch.Tensor, targets: torch.Tensor | None, non_blocking: bool = False) -> None:
        self.tokens.copy_(tokens, non_blocking=non_blocking)
        if targets is not None:
            self.targets.copy_(targets, non_blocking=non_blocking)

    def forward(self, with_loss: bool = True) -> None:
        for call in self.forward_calls:
            call()
        if with_loss:
            self.loss_call()

    def forward_backward(self, dloss: float) -> None:
        """One micro-step: forward, loss gradient (dloss per token), backward, add into grad_acc."""
        for call in self.forward_calls:
            call()
        self.dlogits_call(dloss=dloss)
        for call in self.backward_calls:
            call()
        self.accumulate_call()

    def zero_grad(self) -> None:
        self.grad_acc_flat.zero_()

    def grad_norm(self) -> torch.Tensor:
        self.norm_call()
        return self.norm

    def adamw(self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, step: int,
              grad_scale: float) -> None:
        for name, call in self.adamw_calls:
            call(lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step, grad_scale=grad_scale,
                 weight_decay=weight_decay if name in DECAYED else 0.0)
