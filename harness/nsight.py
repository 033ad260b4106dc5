"""One call of a variant under Nsight Compute (ncu): the why behind a time.

    python bench.py layernorm --variant 5 --ncu                   # default launch config, bench shape
    python bench.py layernorm --variant 5 --ncu --block-size 256  # a config of the sweep
    python bench.py layernorm --variant 5 --ncu --ncu-set full    # every section ncu has (slower)

For each selected variant, dtype and launch configuration, bench.py starts `python -m harness.nsight`
under ncu. That child checks the variant once, as the harness always does (outputs poisoned, one call,
compared with the float64 reference), and ncu's kernel filter names the variant's own kernels only, so
the poisoning and the comparison (torch's kernels) are not profiled. ncu then prints its report; by
default the sections that answer a ladder's questions: Speed of Light (achieved % of the GPU's memory
and compute throughput), memory workload (bytes per level, L2 hit rate, bank conflicts), occupancy, and
launch statistics (registers and shared memory per thread and block). Library variants are skipped:
their kernels are cuBLAS's, not ours. A call ncu could not profile (no permission for the counters,
or a filter that matched nothing) is a failure, never a silent success.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from harness.errors import UserError

SECTIONS = ["SpeedOfLight", "MemoryWorkloadAnalysis", "MemoryWorkloadAnalysis_Tables", "Occupancy", "LaunchStats"]
NOTHING_PROFILED = "No kernels were profiled"  # ncu's warning when its filter matched no launch
TOOLKIT_NCU = "/usr/local/cuda/bin/ncu"


def kernel_names(variant, dtype: str, arch: str) -> list[str]:
    """The kernels of a variant's compiled code, as ptxas reported them (names defined in included
    headers and by macros too): what ncu's filter lets through."""
    from harness.compile import kernel_resources

    return sorted(kernel_resources(variant.source, dtype, arch))


def find_ncu() -> str:
    """ncu from $NCU, PATH or the usual CUDA toolkit folders."""
    for candidate in [os.environ.get("NCU"), shutil.which("ncu"), TOOLKIT_NCU]:
        if candidate and Path(candidate).exists():
            return candidate
    raise UserError("Nsight Compute's `ncu` was not found: it comes with the CUDA toolkit (or "
                    "https://developer.nvidia.com/nsight-compute); put it on PATH or set NCU=/path/to/ncu")


def child_command(op_id: str, number: int, dtype: str, dims, config: dict) -> list[str]:
    """The process ncu profiles: one checked call of one variant."""
    return [sys.executable, "-m", "harness.nsight", op_id, str(number), dtype, ",".join(map(str, dims)),
            json.dumps(config, sort_keys=True)]


def ncu_command(ncu: str, names: list[str], child: list[str], ncu_set: str | None = None) -> list[str]:
    """ncu profiling every launch of `names` (and nothing else) in `child`."""
    if not names:
        raise ValueError("no kernel names to profile")
    sections = ["--set", ncu_set] if ncu_set else [arg for name in SECTIONS for arg in ("--section", name)]
    return [ncu, "--kernel-name", "regex:^(" + "|".join(map(re.escape, names)) + ")$", *sections, *child]


def run_and_echo(argv: list[str]) -> tuple[int, str]:
    """Run argv, its output echoed as it comes and returned with the exit code."""
    import subprocess

    lines = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return process.returncode, "".join(lines)


def profile(ops, variants_of, dtypes, dims_of, configs_of, arch: str, ncu_set: str | None = None,
            run=None) -> int:
    """Run ncu over one call of every selected (variant, dtype, config); returns how many failed.

    variants_of(op), dims_of(op) and configs_of(variant) make the selection (bench.py's flags); arch
    is the GPU's (sm_90), for the kernel names of the code it runs; `run(argv)` runs a process and
    returns its exit code and output (tests pass a stand-in)."""
    run = run or run_and_echo
    ncu = find_ncu()
    failures = profiled = 0
    for op in ops:
        dims = dims_of(op)
        for dtype in dtypes:
            for variant in variants_of(op):
                if dtype not in variant.dtypes:
                    continue
                label = f"{variant.id} {dtype} {op.format_dims(dims)}"
                if variant.source is None:
                    print(f"skipped {label}: a library variant; its kernels are the library's (profile "
                          "torch's call with ncu directly)", flush=True)
                    continue
                for config in configs_of(variant):
                    reason = variant.refusal(dims, dtype, config)
                    if reason:
                        print(f"refused {label} {config}: {reason}", flush=True)
                        continue
                    print(f"== ncu: {label} {config}", flush=True)
                    command = ncu_command(ncu, kernel_names(variant, dtype, arch),
                                          child_command(op.id, variant.number, dtype, dims, config), ncu_set)
                    code, output = run(command)
                    profiled += 1
                    if code:
                        failures += 1
                        print(f"FAILED  {label} {config}: exit code {code} (where ncu says ERR_NVGPUCTRPERM, "
                              "profiling needs permission for the GPU's counters: run as root, or see "
                              "https://developer.nvidia.com/ERR_NVGPUCTRPERM)", flush=True)
                    elif NOTHING_PROFILED in output:
                        failures += 1
                        print(f"FAILED  {label} {config}: ncu profiled none of the variant's kernels", flush=True)
    if not profiled:
        raise UserError("nothing to profile: no selected variant has its own kernels and a launch "
                        "configuration for this shape and dtype (library variants are skipped; --block-size "
                        "must name one of the variant's configurations)")
    return failures


def check_once(op_id: str, number: int, dtype: str, dims_text: str, config_text: str, device: str = "cuda") -> int:
    """The child: check one variant once, the call ncu profiles. Exit code 1 when the check fails."""
    from harness.check import Case, check_variant
    from harness.registry import find_ops

    layer, _, pass_name = op_id.partition(".")
    [op] = find_ops(layer, pass_name)
    variant = op.variant_by_number(number)
    dims = op.make_dims([int(part) for part in dims_text.split(",")])
    case = Case(op, dtype, dims, seed=0, device=device)
    result, _ = check_variant(variant, case, json.loads(config_text))
    print(("ok      " if result.passed else "FAILED  ") + result.label, flush=True)
    if not result.passed:
        print(result.describe(), flush=True)
    return 0 if result.passed else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one checked call of a variant (what bench.py --ncu profiles)")
    parser.add_argument("op", help="e.g. layernorm.forward")
    parser.add_argument("variant", type=int)
    parser.add_argument("dtype", choices=("fp32", "bf16"))
    parser.add_argument("dims", help="comma-separated, in the op's order")
    parser.add_argument("config", help="the launch configuration, as JSON")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for the emulator")
    args = parser.parse_args(argv)
    try:
        return check_once(args.op, args.variant, args.dtype, args.dims, args.config, args.device)
    except UserError as exc:
        print(f"harness.nsight: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
