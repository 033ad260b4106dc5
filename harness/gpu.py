"""The GPU side: is there a usable GPU, load a variant's cubin, and launch its kernels on torch's stream.

Buffers are torch tensors (CuPy has no bfloat16 dtype); kernels are CuPy RawKernels loaded from
the cubins harness/compile.py builds. Launches go on torch's current stream, so kernels, torch ops
and CUDA graphs captured by torch are ordered together.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from harness.compile import compile_cubin
from harness.errors import NoGPU

DEFAULT_SHARED_LIMIT = 48 * 1024


@lru_cache(maxsize=1)
def gpu_unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable by both torch and CuPy, else why not (shown in skips)."""
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False)"
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or a CUDA driver/runtime error
        return f"CuPy cannot use the GPU: {exc}"
    return None


def require_gpu() -> None:
    reason = gpu_unavailable_reason()
    if reason:
        raise NoGPU(f"this command needs a CUDA GPU: {reason}. Without one, `python bench.py --list`, "
                    "`python bench.py LAYER --compile-only`, `python bench.py LAYER --emulate` (checks on the "
                    "CPU emulator, no timing) and `make test` still work.")


@lru_cache(maxsize=None)
def device_arch() -> str:
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


@lru_cache(maxsize=None)
def num_sms() -> int:
    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def _stream():
    """CuPy's view of torch's current stream (cached per stream handle)."""
    return _external_stream(torch.cuda.current_stream().cuda_stream)


@lru_cache(maxsize=64)
def _external_stream(handle: int):
    import warnings

    import cupy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # CuPy 14 prefers from_external(protocol object)
        return cupy.cuda.ExternalStream(handle)


def kernel_arg(value):
    """What a launch hands CuPy for one argument. The C type comes from the Python value, not from the
    kernel's signature (a cubin does not say it): tensors and None as 64-bit pointers, ints as int32,
    floats as float32, numpy scalars as they are. CuPy itself would pass a Python int as int64, which
    an `int` parameter misreads. The CPU emulator checks each value against the signature with this
    same function, and harness/launches.py checks the ints of every launch at GPT-2's sizes."""
    if isinstance(value, torch.Tensor):
        return np.uint64(value.data_ptr())
    if value is None:
        return np.uint64(0)
    if isinstance(value, bool):
        return np.int32(int(value))
    if isinstance(value, int):
        if not -2**31 <= value < 2**31:
            raise OverflowError(f"kernel int argument {value} does not fit in int32")
        return np.int32(value)
    if isinstance(value, float):
        return np.float32(value)
    if isinstance(value, np.generic):
        return value
    raise TypeError(f"cannot pass {type(value).__name__} to a kernel")


class Kernel:
    """One __global__ function: call it as kernel(grid, block, args, shared_mem=0)."""

    def __init__(self, raw, name: str):
        self._raw = raw
        self.name = name
        self._shared_limit: int | None = None  # the dynamic bytes a launch may ask for now

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        grid = grid if isinstance(grid, tuple) else (grid,)
        block = block if isinstance(block, tuple) else (block,)
        if shared_mem:
            if self._shared_limit is None:
                # Without an opt-in a block has 48 KB of shared memory, static and dynamic together.
                self._shared_limit = DEFAULT_SHARED_LIMIT - int(self._raw.shared_size_bytes)
            if shared_mem > self._shared_limit:
                self._raw.max_dynamic_shared_size_bytes = shared_mem  # the opt-in, up to 227 KB on sm_90
                self._shared_limit = shared_mem
        with _stream():  # CuPy launches on its current stream: make that torch's
            self._raw(grid, block, tuple(kernel_arg(a) for a in args), shared_mem=shared_mem)


class Kernels:
    """The kernels of one compiled variant, as attributes (k.layernorm_forward_...), plus num_sms."""

    def __init__(self, module, label: str):
        self._module = module
        self._label = label
        self._cache: dict[str, Kernel] = {}
        self.num_sms = num_sms()

    def __getattr__(self, name: str) -> Kernel:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            try:
                raw = self._module.get_function(name)
            except Exception as exc:
                raise AttributeError(f"{self._label} has no kernel named {name!r} ({exc})") from None
            self._cache[name] = Kernel(raw, name)
        return self._cache[name]


@lru_cache(maxsize=None)
def load_variant(variant, dtype: str) -> Kernels:
    """Compile (or take from the cache) and load a variant for this GPU's architecture."""
    require_gpu()
    import cupy

    if variant.source is None:  # a library variant: its launch function calls the library itself
        return Kernels(None, variant.id)
    cubin = compile_cubin(variant.source, dtype, device_arch())
    module = cupy.RawModule(path=str(cubin))
    return Kernels(module, f"{variant.id} ({dtype})")
