"""AdamW update: the contract and the launch geometry of each variant in update/.

Kernel arguments, in this order for every variant:
    params_out (P,) float, m_out (P,) float, v_out (P,) float, params_model (P,) floatX,
    params (P,) float, grads (P,) floatX, m (P,) float, v (P,) float, P,
    lr, beta1, beta2, eps, weight_decay, beta1_correction, beta2_correction, grad_scale (floats)

The launch function turns the op's scalars into the kernel's: the bias corrections
1 - beta1^step and 1 - beta2^step are computed on the host, once per call.

Scalars (Op.scalars; the trainer passes its own per call, run(lr=..., step=..., grad_scale=...)):
    lr            learning rate of this step (after any schedule)
    beta1, beta2  decay rates of the first and second moments
    eps           added to sqrt(v_hat) in the denominator
    weight_decay  decoupled weight decay (0 for parameters that should not decay)
    step          1-based step count, for the bias corrections
    grad_scale    multiplied into the gradients first: the gradient clipping factor (1.0 when off)

Outputs are overwritten. In place: params_out may be params, m_out may be m and v_out may be v
(the trainer's usual call); every variant reads all inputs of an element before writing any output
of it, from the same thread. params_model (the parameters in the model's dtype: an exact copy in
fp32, rounded to nearest in bf16) must be a buffer of its own. kernels/test_aliasing.py checks
the in-place call on the emulator (Op.aliases).
"""
from pathlib import Path

import torch

from harness.contract import DTYPES, Op, TensorSpec, Tolerance, block_sizes, ceil_div, element_size
from reference.adamw import adamw_update

DIMS = ("P",)
# (P,): GPT-2 small's 124,439,808 parameters (the bench shape), a thousand, one past a power of
# two (not a multiple of any pack or block), a prime-ish six-digit count, and a multiple of 8 that
# is not a multiple of any block size (so the vectorised variant has a partial last block).
SHAPES = [(124_439_808,), (1000,), (4097,), (123_457,), (98_312,)]
BENCH_SHAPE = (124_439_808,)

# The check's defaults: GPT-2's betas, eps and weight decay; a learning rate large enough that the
# update (lr * ~1) and the decay term (lr * weight_decay * param, 1e-4 relative) both stand far
# above the tolerance; a step past 1 so the bias corrections matter; clipping active.
SCALARS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "step": 5,
           "grad_scale": 0.75}

MASTER = TensorSpec(lambda d: (d.P,), "fp32")
MODEL = TensorSpec(lambda d: (d.P,))


def rounded(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """Round float64 values to the kernel's dtype and back, so the reference sees exactly the
    numbers the kernel will read."""
    return values.to(DTYPES[dtype]).to(torch.float64)


def make_inputs(dims, dtype, generator):
    def normal(mean, std):
        return mean + std * torch.randn(dims.P, generator=generator, dtype=torch.float64)

    return {
        "params": rounded(normal(0.1, 0.5), "fp32"),
        "grads": rounded(normal(0.005, 0.02), dtype),
        "m": rounded(normal(0.002, 0.01), "fp32"),
        # the second moment is positive; the floor keeps v_hat away from eps's range
        "v": rounded(normal(0.0, 0.01) ** 2 + 1e-5, "fp32"),
    }


def reference(t):
    params_out, m_out, v_out = adamw_update(t["params"], t["grads"], t["m"], t["v"],
                                            **{name: t[name] for name in SCALARS})
    return {"params_out": params_out, "m_out": m_out, "v_out": v_out, "params_model": params_out}


def adamw_step(params, grads, m, v, s):
    """What the kernels compute, with torch ops (eager: one kernel each; compiled: fused)."""
    g = grads.float() * s["grad_scale"]
    m_out = torch.lerp(m, g, 1.0 - s["beta1"])
    v_out = torch.lerp(v, g * g, 1.0 - s["beta2"])
    m_hat = m_out / (1.0 - s["beta1"] ** s["step"])
    v_hat = v_out / (1.0 - s["beta2"] ** s["step"])
    params_out = params - s["lr"] * (m_hat / (v_hat.sqrt() + s["eps"]) + s["weight_decay"] * params)
    return params_out, m_out, v_out, params_out.to(grads.dtype)


def torch_eager(t, dims):
    params, grads, m, v = t["params"], t["grads"], t["m"], t["v"]
    return lambda: adamw_step(params, grads, m, v, SCALARS)


def torch_compiled(t, dims):
    params, grads, m, v = t["params"], t["grads"], t["m"], t["v"]
    compiled = torch.compile(lambda p, g, mm, vv: adamw_step(p, g, mm, vv, SCALARS), dynamic=False)
    return lambda: compiled(params, grads, m, v)


# fp32 master weights are stored to 6e-8 relative and the update moves them by ~1e-3: rtol 1e-6
# still sees a 0.1% error in the update, and the fp32 arithmetic (a few roundings of values of
# order one) stays well below it. The moments are one multiply-add each, but the scalars reach the
# kernel as fp32 (1 - beta2 = 0.05 is off by 2.4e-7 relative) and m_out often cancels to near zero
# from terms of ~0.05, whose rounding (~4e-9) sets its atol. bf16 gradients are read exactly (the
# reference sees the same rounded values), so the fp32 outputs keep the fp32 bounds.
PARAMS = Tolerance(atol=1e-7, rtol=1e-6)
MOMENT1 = Tolerance(atol=2e-8, rtol=1e-6)
MOMENT2 = Tolerance(atol=1e-12, rtol=1e-6)

UPDATE = Op(
    layer="adamw",
    pass_name="update",
    dims=DIMS,
    inputs={"params": MASTER, "grads": MODEL, "m": MASTER, "v": MASTER},
    outputs={"params_out": MASTER, "m_out": MASTER, "v_out": MASTER, "params_model": MODEL},
    shapes=SHAPES,
    bench_shape=BENCH_SHAPE,
    make_inputs=make_inputs,
    reference=reference,
    tolerances={
        "fp32": {"params_out": PARAMS, "m_out": MOMENT1, "v_out": MOMENT2, "params_model": PARAMS},
        # the model's copy is the fp32 result rounded once to bf16's 8 significant bits (up to
        # 2^-8 = 0.4% relative)
        "bf16": {"params_out": PARAMS, "m_out": MOMENT1, "v_out": MOMENT2,
                 "params_model": Tolerance(atol=1e-7, rtol=1e-2)},
    },
    # per element: scale the gradient (1), first moment (3), second moment (4), two bias
    # corrections (2), sqrt, + eps, divide (3), weight decay multiply-add (2), * lr and subtract (2)
    flops=lambda d: 17 * d.P,
    baselines={"torch eager": torch_eager, "torch.compile": torch_compiled},
    scalars=dict(SCALARS),
    folder=Path(__file__).parent / "update",
    aliases=[{"params_out": "params", "m_out": "m", "v_out": "v"}],  # the trainer updates in place
)


def kernel_args(a, s):
    step = int(a.step)
    return (a.params_out, a.m_out, a.v_out, a.params_model, a.params, a.grads, a.m, a.v, s.P,
            float(a.lr), float(a.beta1), float(a.beta2), float(a.eps), float(a.weight_decay),
            1.0 - float(a.beta1) ** step, 1.0 - float(a.beta2) ** step, float(a.grad_scale))


# The first config of each variant is its default (what bind() and a training loop use).
@UPDATE.variant(1, configs=block_sizes(256, 32, 128, 1024), dtypes=("fp32", "bf16"))
def per_element(k, a, s, block_size):
    k.adamw_update_per_element((ceil_div(s.P, block_size),), (block_size,), kernel_args(a, s))


def x128_size(dtype):
    return 16 // element_size("x", dtype)  # gradients in one 128-bit load: 4 fp32, 8 bf16


def refuse_unpackable(d, dtype, config):
    if d.P % x128_size(dtype):
        return f"P={d.P} is not a multiple of {x128_size(dtype)} ({dtype} gradients per 128-bit load)"
    return None


# Threads an SM can hold at once on sm_80 and sm_90: the grid-stride grid fills them and no more.
THREADS_PER_SM = 2048


@UPDATE.variant(2, configs=block_sizes(256, 64, 128, 512, 1024), dtypes=("fp32", "bf16"),
                refuse=refuse_unpackable)
def vectorized(k, a, s, block_size):
    packs = s.P // x128_size("bf16" if a.grads.dtype == torch.bfloat16 else "fp32")
    grid = min(ceil_div(packs, block_size), k.num_sms * (THREADS_PER_SM // block_size))
    k.adamw_update_vectorized((grid,), (block_size,), kernel_args(a, s))
