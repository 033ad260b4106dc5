"""Check a variant's launches against the GPU's limits without a GPU.

The launch function runs on meta tensors (no data) with a recording stand-in for the kernels, so we
learn exactly which kernels it launches with which grid, block and dynamic shared memory; ptxas's
report (harness.compile.kernel_resources) gives each kernel's registers and static shared memory.
A configuration that asks for more than an SM has ("too many resources requested for launch") is
then caught in CI, where the emulator, which has no register file, would run it happily. So is an int
argument past int32 (the emulator only sees small shapes): the tests record launches at GPT-2's
training sizes too, where element counts come within a factor of two of 2^31.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from harness.compile import kernel_resources
from harness.contract import Variant, torch_dtype
from harness.gpu import kernel_arg

RECORDING_SMS = 132  # an H100's SM count: launch geometry that scales with the SMs sees a real value


@dataclass(frozen=True)
class Limits:
    """Per-block limits of one architecture (CUDA programming guide, compute capability table)."""

    registers_per_sm: int = 64 * 1024
    registers_per_thread: int = 255
    shared_bytes_per_block: int = 227 * 1024  # with the opt-in above 48 KB (sm_90)
    threads_per_block: int = 1024


LIMITS = {"sm_80": Limits(shared_bytes_per_block=163 * 1024), "sm_90": Limits(), "sm_90a": Limits()}


@dataclass(frozen=True)
class Launch:
    kernel: str
    grid: tuple[int, ...]
    block: tuple[int, ...]
    shared_bytes: int
    args: tuple = field(default=(), compare=False)


class _Recorder:
    num_sms = RECORDING_SMS

    def __init__(self):
        self.launches: list[Launch] = []

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def record(grid, block, args, shared_mem: int = 0):
            grid = tuple(grid) if isinstance(grid, tuple) else (grid,)
            block = tuple(block) if isinstance(block, tuple) else (block,)
            self.launches.append(Launch(name, grid, block, int(shared_mem), tuple(args)))

        return record


def record_launches(variant: Variant, dims, dtype: str, config: dict) -> list[Launch]:
    """The kernel launches `variant` makes for this case, found by running its launch on meta tensors."""
    dims = variant.op.make_dims(dims)
    specs = variant.op.tensor_specs(dims) | variant.scratch_specs(dims, dtype, config)
    tensors = {name: torch.empty(spec.shape(dims), dtype=torch_dtype(spec.element_type, dtype), device="meta")
               for name, spec in specs.items()}
    recorder = _Recorder()
    variant.launch(recorder, SimpleNamespace(**tensors, **variant.op.scalars), dims, **config)
    return recorder.launches


def launch_problems(variant: Variant, dims, dtype: str, config: dict, arch: str) -> list[str]:
    """Why the GPU would refuse (or mis-run) any of this case's launches on `arch`; empty when none."""
    limits = LIMITS[arch]
    resources = kernel_resources(variant.source, dtype, arch)
    problems = []
    for launch in record_launches(variant, dims, dtype, config):
        where = f"{launch.kernel} grid={launch.grid} block={launch.block} ({arch})"
        if launch.kernel not in resources:
            problems.append(f"{where}: no such kernel in {variant.source.name} (it has {', '.join(resources)})")
            continue
        threads = 1
        for extent in launch.block:
            threads *= extent
        used = resources[launch.kernel]
        # registers are allocated per warp in units of 256, i.e. per thread in multiples of 8
        registers = -(-used["registers"] // 8) * 8 * 32 * -(-threads // 32)
        shared = used["shared_bytes"] + launch.shared_bytes
        if not 0 < threads <= limits.threads_per_block:
            problems.append(f"{where}: {threads} threads per block (limit {limits.threads_per_block})")
        if registers > limits.registers_per_sm:
            problems.append(f"{where}: {used['registers']} registers x {threads} threads need {registers} "
                            f"registers, an SM has {limits.registers_per_sm}")
        if shared > limits.shared_bytes_per_block:
            problems.append(f"{where}: {shared} bytes of shared memory (limit {limits.shared_bytes_per_block})")
        if any(extent <= 0 for extent in launch.grid) or len(launch.grid) > 3 or launch.grid[0] >= 2**31 \
                or any(extent > 65535 for extent in launch.grid[1:]):
            problems.append(f"{where}: grid outside the limits (x < 2^31, y and z <= 65535, all >= 1)")
        for index, value in enumerate(launch.args):
            if isinstance(value, torch.Tensor):
                continue  # a pointer; meta tensors have no address to convert
            try:
                kernel_arg(value)  # what the GPU launch does with it: an int past int32 raises there
            except (OverflowError, TypeError) as exc:
                problems.append(f"{where}: argument {index}: {exc}")
    return problems
