"""What this GPU can do, measured on it rather than read off a datasheet, once per GPU and cached.

- copy bandwidth: a device-to-device copy of a 1 GiB buffer, counting bytes read plus written;
- GEMM rate: cuBLAS (through torch.matmul) on 8192^3 random matrices, fp32 (TF32 off) and bf16.
"""
from __future__ import annotations

import json
import re

import torch

from harness.atomic import atomic_write
from harness.compile import CACHE_DIR
from harness.timing import time_cuda

COPY_BYTES = 1 << 30
GEMM_SIZE = 8192


def gpu_name() -> str:
    return torch.cuda.get_device_name(torch.cuda.current_device())


def gpu_slug(name: str | None = None) -> str:
    """A file-name-safe GPU name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", (name or gpu_name()).lower()).strip("-")


def measure_copy_gbps() -> float:
    source = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device="cuda").uniform_()
    target = torch.empty_like(source)
    timing = time_cuda(lambda: target.copy_(source), flusher=None, warmup=3, repeats=20)
    return 2 * COPY_BYTES / (timing.median_us * 1e-6) / 1e9


def measure_gemm_tflops(dtype: torch.dtype) -> float:
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda", dtype=dtype, generator=generator)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda", dtype=dtype, generator=generator)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 ceiling is true fp32, as fp32 kernels compute
    try:
        timing = time_cuda(lambda: torch.matmul(a, b), flusher=None, warmup=3, repeats=10)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * GEMM_SIZE**3 / (timing.median_us * 1e-6) / 1e12


def ceilings(refresh: bool = False) -> dict:
    """The measured ceilings of the current GPU, from the cache when they were measured before."""
    path = CACHE_DIR / f"ceilings-{gpu_slug()}.json"
    if path.exists() and not refresh:
        return json.loads(path.read_text())
    measured = {
        "gpu": gpu_name(),
        "copy_gbps": measure_copy_gbps(),
        "gemm_tflops": {"fp32": measure_gemm_tflops(torch.float32), "bf16": measure_gemm_tflops(torch.bfloat16)},
        "method": "copy: 1 GiB device-to-device, read+write bytes; GEMM: torch.matmul 8192^3, fp32 without TF32",
    }
    with atomic_write(path, "w") as handle:
        json.dump(measured, handle, indent=2)
    return measured
