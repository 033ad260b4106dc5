"""Every kernel variant checked once at each small test shape: a short GPU workload to run under
NVIDIA's compute-sanitizer, which sees what neither the CPU emulator nor an output check can.

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --report-api-errors no \
        --error-exitcode 9 python -m harness.sanitize --first-config
    (the same with --tool racecheck and --shared-memory-only; `make gpu-sanitize` runs both)

Without torch's caching allocator every buffer is its own allocation, so an access past its end is
out of bounds rather than inside a neighbouring tensor's memory. memcheck reports out-of-bounds and
misaligned accesses even when they happen to read harmless values; racecheck reports shared-memory
hazards on the GPU's real schedule (the emulator runs warps in two fixed legal orders only). Library
variants (cuBLAS through torch, no .cu file) are skipped: their kernels are not ours. Each check
still compares the outputs with the float64 reference, so the run also fails on a wrong answer.
`--device cpu` runs the same checks on the emulator (no sanitizer).
"""
from __future__ import annotations

import argparse
import re
import sys
import zlib

from harness.check import Case, check_variant
from harness.compile import local_includes
from harness.registry import all_variants, layers

# Shapes small enough that the sanitizer's slowdown (tens of times under racecheck) stays bearable.
SANITIZED_MAX_ELEMENTS = 500_000
SHARED = re.compile(r"\b__shared__\b")


def uses_shared_memory(variant) -> bool:
    """Whether the variant's source, or a kernels/ header it includes, declares shared memory: racecheck
    looks for shared-memory hazards only, so variants without any have nothing for it to find."""
    sources = [variant.source, *local_includes(variant.source)]
    return any(SHARED.search(path.read_text()) for path in sources)


def sanitized_checks(chosen_layers=None, first_config=False, shared_memory_only=False):
    """(variant, dtype, dims, configs) for every kernel variant at every small test shape."""
    checks = []
    for variant in all_variants():
        if variant.source is None or (chosen_layers and variant.op.layer not in chosen_layers):
            continue
        if shared_memory_only and not uses_shared_memory(variant):
            continue
        for dtype in variant.dtypes:
            for dims in variant.op.shapes:
                if variant.op.size(dims) > SANITIZED_MAX_ELEMENTS:
                    continue
                configs = [c for c in variant.configs if not variant.refusal(dims, dtype, c)]
                if configs:
                    checks.append((variant, dtype, dims, configs[:1] if first_config else configs))
    return checks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", metavar="LAYER", help="only these layers (default: all)")
    parser.add_argument("--first-config", action="store_true",
                        help="only each variant's first launch configuration (racecheck is slow)")
    parser.add_argument("--shared-memory-only", action="store_true",
                        help="only variants that declare shared memory (all racecheck can find fault with)")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for the emulator")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.layers or []) - set(layers()))
    if unknown:
        print(f"error: unknown layers {unknown}; valid: {', '.join(layers())}", file=sys.stderr)
        return 2
    failures = 0
    for variant, dtype, dims, configs in sanitized_checks(args.layers, args.first_config,
                                                             args.shared_memory_only):
        seed = zlib.crc32(repr((variant.op.id, dtype, tuple(dims))).encode())
        case = Case(variant.op, dtype, dims, seed=seed, device=args.device)
        for config in configs:
            result, _ = check_variant(variant, case, config)
            failures += not result.passed
            print(f"ok      {result.label}" if result.passed else f"FAILED  {result.describe()}", flush=True)
    print(f"{failures} failed checks" if failures else "every check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
