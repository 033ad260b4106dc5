"""Check and time the variants of one op at one dtype and shape, with its baselines, in one run.

Every launch configuration that is timed is first checked (poisoned outputs, float64 reference)
and re-checked after timing; a configuration that fails is reported and never timed. Baselines
(PyTorch eager, torch.compile) are timed in the same run on the same inputs, and every row's
speed-up is a ratio against them.

On device "cpu" the variants run on the emulator and are timed by the wall clock: the same checks,
rows and ratios, so the tests exercise this module without a GPU, but no number means anything.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from harness.check import Case, check_variant, run_check, synchronize
from harness.contract import Op, Variant
from harness.errors import GPUFault, UserError
from harness.timing import L2Flusher, time_cuda, time_wall

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    kind: str  # "baseline" or "variant"
    label: str
    variant: int | None = None
    config: dict = field(default_factory=dict)
    status: str = "ok"  # ok | failed | refused | unavailable
    note: str = ""
    timing: dict | None = None
    gbps: float | None = None
    tflops: float | None = None
    pct_of_ceiling: float | None = None
    speedup: dict = field(default_factory=dict)  # baseline label -> baseline time / this time
    max_abs_err: float | None = None
    tolerance_used: float | None = None

    @property
    def median_us(self) -> float | None:
        return None if self.timing is None else self.timing["median_us"]


@dataclass
class Run:
    op: str
    dtype: str
    shape: dict
    bytes: int
    flops: int
    bound: str
    ceilings: dict
    environment: dict
    rows: list[Row]

    @property
    def key(self) -> str:
        shape = ",".join(f"{k}={v}" for k, v in self.shape.items())
        return f"{self.op} {self.dtype} {shape}"

    @property
    def passed(self) -> bool:
        return all(row.status != "failed" for row in self.rows)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Run":
        return cls(**{**data, "rows": [Row(**row) for row in data["rows"]]})


def git_commit() -> str:
    """The project's commit, "+dirty" when tracked code differs from it. results/ is left out: a GPU run
    rewrites it layer by layer, and its own output is not a change to what was measured. Where the
    tree is a copy without .git (a lent GPU machine), WORKBENCH_COMMIT says which commit it is."""
    if os.environ.get("WORKBENCH_COMMIT"):
        return os.environ["WORKBENCH_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def driver_cuda() -> str:
    """The CUDA version the driver supports ("none" without a driver)."""
    try:
        import cupy

        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception:  # no CuPy, or no driver (the emulator's runs)
        return "none"
    return f"{driver // 1000}.{driver % 1000 // 10}"


def cupy_version() -> str:
    try:
        import cupy
    except ImportError:
        return "not installed"
    return cupy.__version__


def environment(device: str = "cuda") -> dict:
    from harness.compile import nvrtc_version

    return {
        "gpu": torch.cuda.get_device_name() if device == "cuda" else "CPU emulator (times are meaningless)",
        "driver_cuda": driver_cuda(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cupy": cupy_version(),
        "nvrtc": ".".join(map(str, nvrtc_version())),
        "commit": git_commit(),
    }


def rate_row(row: Row, op: Op, dims, dtype: str, ceilings: dict) -> None:
    seconds = row.median_us * 1e-6
    row.gbps = op.bytes_moved(dims, dtype) / seconds / 1e9
    row.tflops = op.flops(dims) / seconds / 1e12
    if op.bound == "memory":
        row.pct_of_ceiling = 100 * row.gbps / ceilings["copy_gbps"]
    else:
        row.pct_of_ceiling = 100 * row.tflops / ceilings["gemm_tflops"][dtype]


def selected_configs(variant: Variant, block_sizes: list[int] | None, default_only: bool = False) -> list[dict]:
    """The variant's configurations with one of `block_sizes` (all when None); the first alone with default_only."""
    configs = variant.configs if not block_sizes else [c for c in variant.configs if c.get("block_size") in block_sizes]
    return configs[:1] if default_only else configs


def bench_op(op: Op, dtype: str, dims, variants: list[Variant], *, block_sizes: list[int] | None = None,
             baselines: list[str] | None = None, repeats: int = 100, warmup: int = 10, ceilings: dict,
             on_step=None, seed: int = 0, device: str = "cuda", default_config_only: bool = False) -> Run:
    """Check and time `variants` (each at its configurations, or at its first, default one only) and
    the named baselines."""
    dims = op.make_dims(dims)
    case = Case(op, dtype, dims, seed=seed, device=device)
    if device == "cuda":
        flusher = L2Flusher()

        def timed(fn):
            return time_cuda(fn, flusher, warmup=warmup, repeats=repeats).as_dict()
    else:
        def timed(fn):
            return time_wall(fn, warmup=min(warmup, 1), repeats=repeats).as_dict()
    rows: list[Row] = []
    step = on_step or (lambda description: None)

    for name in (op.baselines if baselines is None else baselines):
        step(f"{op.id} {dtype}: {name}")
        row = Row(kind="baseline", label=name)
        try:
            fn = op.baselines[name](case.inputs, dims)
            row.timing = timed(fn)
            rate_row(row, op, dims, dtype, ceilings)
        except Exception as exc:  # e.g. torch.compile without a working Triton: say so, keep going
            row.status, row.note = "unavailable", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)

    for variant in variants:
        configs = selected_configs(variant, block_sizes, default_config_only)
        if not configs:
            sizes = sorted({c.get('block_size') for c in variant.configs if 'block_size' in c})
            raise UserError(f"{variant.id} is not configured for block sizes {block_sizes}; it sweeps {sizes}")
        for config in configs:
            step(f"{variant.id} {dtype} {config}")
            row = Row(kind="variant", label=f"{variant.number}: {variant.name}", variant=variant.number,
                      config=dict(config))
            rows.append(row)
            reason = variant.refusal(dims, dtype, config)
            if reason:
                row.status, row.note = "refused", reason
                continue
            try:
                result, launch = check_variant(variant, case, config)
            except UserError:
                raise
            except Exception as exc:  # a launch the driver refuses, a CUDA error: report it, go on
                row.status, row.note = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                try:
                    synchronize(device)
                except Exception:  # a sticky error (an illegal address): this process's context is gone
                    sizes = f" --block-size {config['block_size']}" if "block_size" in config else ""
                    raise GPUFault(
                        f"{variant.id} {dtype} {config} at {op.format_dims(dims)} broke the CUDA context "
                        f"({row.note}); nothing more can run in this process. Reproduce it alone under the "
                        f"sanitizer: compute-sanitizer python {variant.header.run.removeprefix('python ')} "
                        f"--dtype {dtype}{sizes} --shape {','.join(map(str, dims))} --no-baselines") from None
                continue
            row.max_abs_err, row.tolerance_used = result.max_abs_err, result.tolerance_used
            if not result.passed:
                row.status, row.note = "failed", result.describe()
                continue
            row.timing = timed(launch)
            after = run_check(case, launch, result.label + " after timing", poison=False)
            if not after.passed:
                row.status, row.note = "failed", after.describe()
                continue
            rate_row(row, op, dims, dtype, ceilings)

    for row in rows:
        if row.median_us is None:
            continue
        for baseline in rows:
            if baseline.kind == "baseline" and baseline.median_us is not None:
                row.speedup[baseline.label] = baseline.median_us / row.median_us

    return Run(op=op.id, dtype=dtype, shape=dims._asdict(), bytes=op.bytes_moved(dims, dtype),
               flops=op.flops(dims), bound=op.bound, ceilings=ceilings, environment=environment(device), rows=rows)
