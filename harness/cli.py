"""bench.py's command line: list, compile, check and time kernel variants."""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

from harness.errors import UserError

EXIT_USER_ERROR = 2
EXIT_CHECK_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Check every launch configuration of a layer's kernel variants against the float64 "
                    "reference, then time them against PyTorch eager and torch.compile.",
        epilog="examples: python bench.py --list | python bench.py layernorm --variant 3 | "
               "python bench.py layernorm --pass backward --dtype bf16 --save")
    parser.add_argument("layer", nargs="?", help="layer to run (e.g. layernorm, or layernorm.backward)")
    parser.add_argument("--list", action="store_true", help="list every layer and variant, from the file headers")
    parser.add_argument("--markdown", action="store_true", help="with --list: print the README's markdown table")
    parser.add_argument("--pass", dest="pass_name", metavar="PASS",
                        help="only this pass: forward, backward (or update, ...) as the layer defines "
                             "(default: every pass of the layer)")
    parser.add_argument("--variant", type=int, action="append", metavar="N",
                        help="only variant N (repeatable); default: all variants")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "all"), default="all",
                        help="element type (default: every dtype some variant supports)")
    parser.add_argument("--shape", help="shape to time, e.g. 8,1024,768 or B=8,T=1024,C=768 (default: the layer's)")
    parser.add_argument("--block-size", type=int, nargs="+", metavar="N",
                        help="only these block sizes from each variant's sweep")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per row (default 100)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the PyTorch baselines")
    parser.add_argument("--no-compile-baseline", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write this run's results to PATH")
    parser.add_argument("--save", action="store_true", help="merge the results into results/<gpu>.json and .md")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile the selected variants (every layer's when no layer is named) with NVRTC "
                             "for sm_80 and sm_90 into the cubin cache; needs no GPU")
    parser.add_argument("--arch", action="append", metavar="SM",
                        help="with --compile-only: only this architecture, e.g. sm_90 (repeatable); "
                             "'native': this machine's GPU's")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="with --compile-only: compile in N processes (default: one per CPU core)")
    parser.add_argument("--select", type=Path, metavar="YAML",
                        help="write the trainer's kernel choice (best.yaml): each layer pass's fastest checked "
                             "variant from this GPU's results/ (or --results FILE)")
    parser.add_argument("--results", type=Path, metavar="FILE", help="with --select: the results file to read")
    parser.add_argument("--simplest", action="store_true",
                        help="with --select: every layer's first variant instead (no results needed)")
    parser.add_argument("--deterministic", action="store_true",
                        help="with --select: only variants whose outputs repeat bit for bit (no float atomics), "
                             "so that training runs repeat too")
    parser.add_argument("--emulate", action="store_true",
                        help="check (not time) the selected variants on the CPU emulator; needs no GPU. "
                             "Default shape: the layer's smallest test shape")
    parser.add_argument("--accesses", action="store_true",
                        help="with --emulate: count each source line's memory transactions per warp-level "
                             "request (global sectors, shared-memory wavefronts and bank conflicts) as Nsight "
                             "Compute does, for the default launch config (or those of --block-size)")
    parser.add_argument("--ncu", action="store_true",
                        help="profile one checked call of each selected variant (its default launch config, "
                             "or those of --block-size) with Nsight Compute, instead of timing")
    parser.add_argument("--ncu-set", metavar="SET",
                        help="with --ncu: an ncu section set (e.g. full) instead of the default sections")
    return parser


def parse_shape(text: str, op) -> tuple:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            values = {k.strip(): int(v) for k, v in (p.split("=", 1) for p in parts)}
            if set(values) != set(op.dims):
                raise ValueError
            dims = op.make_dims(values)
        else:
            if len(parts) != len(op.dims):
                raise ValueError
            dims = op.make_dims([int(p) for p in parts])
    except ValueError:
        raise UserError(f"--shape {text!r} is not a shape of {op.id}: give {len(op.dims)} integers "
                        f"{','.join(op.dims)}, e.g. {','.join(map(str, op.bench_shape))}") from None
    if any(v <= 0 for v in dims):
        raise UserError(f"--shape {text!r}: every dimension must be positive")
    return dims


NOT_DETERMINISTIC = ("not deterministic: the last bits of its outputs may change from run to run (float atomics "
                     "add in the order the hardware picks); --select --deterministic leaves it out")


def list_variants(markdown: bool) -> str:
    from harness.registry import all_ops

    lines = []
    width = max(len(v.name) for op in all_ops() for v in op.variants)
    op_width = max(len(op.id) for op in all_ops())
    if markdown:
        lines += ["| layer | pass | variant | what it does | dtypes | deterministic | what it teaches |",
                  "|---|---|---|---|---|---|---|"]
    for op in all_ops():
        for v in op.variants:
            if markdown:
                lines.append(f"| {op.layer} | {op.pass_name} | {v.number} | {v.name} | {', '.join(v.dtypes)} | "
                             f"{'yes' if v.deterministic else 'no'} | {v.header.teaches} |")
            else:
                dtypes = f"[{', '.join(v.dtypes)}]" + ("" if v.deterministic else " *")
                lines.append(f"{op.id:<{op_width}} {v.number:>2}  {v.name:<{width}} {dtypes:<14}  {v.header.run}")
    if not markdown:
        lines.append(f"* {NOT_DETERMINISTIC}")
    return "\n".join(lines)


def select(args, op):
    return op.variants if not args.variant else [v for v in op.variants if v.number in args.variant]


def _compile_one(source: Path, dtype: str, arch: str) -> str | None:
    """The compiler's message when the source fails, else None (runs in a worker process)."""
    from harness.compile import CompileError, compile_cubin

    try:
        compile_cubin(source, dtype, arch)
    except CompileError as exc:
        return str(exc)
    return None


def native_arch() -> str:
    """This machine's GPU architecture, asked of nvidia-smi: the compile workers fork from this process,
    which must not have started CUDA."""
    import subprocess

    try:
        caps = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        caps = []
    if not caps or not re.fullmatch(r"\d+\.\d+", caps[0]):
        raise UserError("--arch native: nvidia-smi names no GPU here; give an architecture, e.g. --arch sm_90")
    major, minor = caps[0].split(".")
    return f"sm_{major}{minor}"


def compile_only(ops, args) -> int:
    """Fill the cubin cache, in parallel: NVRTC takes about a second a file, and a GPU session that
    starts with a full cache spends its time on checks and timing instead."""
    from concurrent.futures import ProcessPoolExecutor

    from harness.compile import cuda_include_dirs

    cuda_include_dirs()  # a missing toolkit is one clear error, not one per file
    if args.arch and "native" in args.arch:
        args.arch = [native_arch() if arch == "native" else arch for arch in args.arch]
    jobs = []
    for op in ops:
        for variant in select(args, op):
            if variant.source is None:
                continue
            dtypes = variant.dtypes if args.dtype == "all" else [d for d in variant.dtypes if d == args.dtype]
            archs = [a for a in variant.archs if not args.arch or a in args.arch]
            jobs += [(variant, dtype, arch) for dtype in dtypes for arch in archs]
    if not jobs:
        raise UserError(f"nothing to compile for --dtype {args.dtype} --arch {' '.join(args.arch or [])}")
    workers = min(len(jobs), args.jobs if args.jobs > 0 else (os.cpu_count() or 1))
    failures = 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        messages = pool.map(_compile_one, *zip(*[(v.source, dtype, arch) for v, dtype, arch in jobs]))
        for (variant, dtype, arch), message in zip(jobs, messages):
            failures += message is not None
            print(f"ok      {variant.id} {dtype} {arch}" if message is None else
                  f"FAILED  {variant.id} {dtype} {arch}\n{message}", flush=True)
    return EXIT_CHECK_FAILED if failures else 0


def select_kernels(args) -> int:
    """bench.py --select best.yaml: the trainer's choice of variant and configuration per layer pass."""
    from trainer.kernels import fastest_trainer_selection, simplest_trainer_selection, write_selection

    flag = " --deterministic" if args.deterministic else ""
    kind = "deterministic variant" if args.deterministic else "variant"
    if args.simplest:
        sections = {dtype: simplest_trainer_selection(dtype, args.deterministic) for dtype in ("fp32", "bf16")}
        write_selection(args.select, sections, f"every layer's simplest {kind}: python bench.py --select "
                                               f"{args.select} --simplest{flag}")
        print(f"wrote {args.select} (simplest {kind}s)")
        return 0
    from harness.report import RESULTS_DIR, load_results

    results = args.results
    if results is None:
        from harness import gpu
        from harness.ceilings import gpu_slug

        if gpu.gpu_unavailable_reason():
            raise UserError("no GPU here to name the results file: pass --results results/<gpu>.json, "
                            "or --simplest")
        results = RESULTS_DIR / f"{gpu_slug()}.json"
    if not results.exists():
        raise UserError(f"{results} not found: run `python bench.py LAYER --save` for every layer first (make gpu)")
    try:
        runs = list(load_results(results).values())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    sections, fallbacks, reasons = {}, [], []
    for dtype in ("fp32", "bf16"):
        sections[dtype], unmeasured, reason = fastest_trainer_selection(runs, dtype, args.deterministic)
        fallbacks += [f"{op_id} {dtype}" for op_id in unmeasured]
        reasons.append(f"{dtype} {reason}")
    note = "\n".join([f"fastest checked {kind}s from {results}: python bench.py --select {args.select}{flag}",
                      *reasons])
    if fallbacks:
        note += f"\nnot measured there, so the simplest {kind}: " + ", ".join(fallbacks)
    write_selection(args.select, sections, note)
    print(Path(args.select).read_text(), end="")  # what the trainer will run, and why
    print(f"wrote {args.select} from {results}" + (f" ({len(fallbacks)} unmeasured: simplest)" if fallbacks else ""))
    return 0


def emulate(ops, args) -> int:
    """Check every selected variant at every launch configuration on the CPU emulator."""
    from harness.check import Case, check_variant
    from harness.emulator import EmulationError
    from harness.runner import selected_configs

    if args.accesses:
        from harness.access_profile import format_table, profile_variant, summary
    failures = 0
    for op in ops:
        shapes = [parse_shape(args.shape, op)] if args.shape else sorted(op.shapes, key=math.prod)
        for dtype in ("fp32", "bf16") if args.dtype == "all" else (args.dtype,):
            variants = [v for v in select(args, op) if dtype in v.dtypes]
            cases = {}  # one Case per shape, shared by the variants checked at it
            for variant in variants:
                if args.accesses and variant.source is None:
                    print(f"skipped {variant.id} {dtype}: a library call has no kernel source to profile")
                    continue
                configs = selected_configs(variant, args.block_size,
                                           default_only=args.accesses and not args.block_size)
                # Without --shape, the smallest test shape the variant accepts (the fused attention
                # kernels, say, refuse the tiny head sizes that come first).
                dims = next((d for d in shapes if any(not variant.refusal(d, dtype, c) for c in configs)), shapes[0])
                if tuple(dims) not in cases:
                    cases[tuple(dims)] = Case(op, dtype, dims, device="cpu")
                case = cases[tuple(dims)]
                for config in configs:
                    label = f"{variant.id} {dtype} {op.format_dims(dims)} {config}"
                    reason = variant.refusal(dims, dtype, config)
                    if reason:
                        print(f"refused {label}: {reason}")
                        continue
                    try:
                        if args.accesses:
                            result, accesses = profile_variant(variant, case, config)
                        else:
                            result, _ = check_variant(variant, case, config)
                    except EmulationError as exc:  # a hang, a fault, a bad launch: report it and go on
                        failures += 1
                        print(f"FAILED  {label}: {exc}")
                        continue
                    failures += not result.passed
                    where = "emulated" if variant.source is not None else "library call on the CPU"
                    print(f"{'ok     ' if result.passed else 'FAILED '} {label}: "
                          f"{100 * result.tolerance_used:.0f}% of tolerance used ({where})")
                    if not result.passed:
                        print(result.describe())
                    if args.accesses:
                        print(format_table(accesses))
                        print(f"  {summary(accesses)}\n")
    return EXIT_CHECK_FAILED if failures else 0


def profile_with_ncu(ops, args) -> int:
    """One checked call per selected variant, dtype and config under Nsight Compute (harness/nsight.py)."""
    from harness import gpu
    from harness.nsight import profile
    from harness.runner import selected_configs

    gpu.require_gpu()
    failures = profile(
        ops, variants_of=lambda op: select(args, op),
        dtypes=("fp32", "bf16") if args.dtype == "all" else (args.dtype,),
        dims_of=lambda op: parse_shape(args.shape, op) if args.shape else op.make_dims(op.bench_shape),
        configs_of=lambda variant: selected_configs(variant, args.block_size, default_only=not args.block_size),
        arch=gpu.device_arch(), ncu_set=args.ncu_set)
    return EXIT_CHECK_FAILED if failures else 0


def run(args) -> int:
    from harness.registry import find_ops

    if args.list:
        print(list_variants(args.markdown))
        return 0
    if args.select:
        return select_kernels(args)
    for flag, given in (("--simplest", args.simplest), ("--deterministic", args.deterministic),
                        ("--results", args.results)):
        if given:
            raise UserError(f"{flag} only applies to --select YAML (the trainer's kernel choice)")
    if args.ncu_set and not args.ncu:
        raise UserError("--ncu-set only applies to --ncu")
    if args.accesses and not args.emulate:
        raise UserError("--accesses counts memory transactions on the CPU emulator: add --emulate")
    if args.ncu and (args.emulate or args.compile_only):
        raise UserError("--ncu profiles on the GPU: leave out --emulate and --compile-only")
    if args.arch and not args.compile_only:
        raise UserError("--arch only applies to --compile-only (timing and checks use this GPU's architecture)")
    if args.compile_only and not args.layer:
        from harness.registry import all_ops

        return compile_only(all_ops(), args)
    if not args.layer:
        from harness.registry import layers

        raise UserError(f"name a layer (one of: {', '.join(layers())}) or use --list; see --help")
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    ops = find_ops(args.layer, args.pass_name)
    if args.variant:
        have = {v.number for op in ops for v in op.variants}
        missing = sorted(set(args.variant) - have)
        if missing:
            valid = "; ".join(f"{op.id}: {', '.join(str(v.number) for v in op.variants)}" for op in ops)
            raise UserError(f"no variant {', '.join(map(str, missing))} in {args.layer}; valid variants: {valid}")
    if args.compile_only:
        return compile_only(ops, args)
    if args.emulate:
        return emulate(ops, args)
    if args.ncu:
        return profile_with_ncu(ops, args)

    from harness import gpu

    gpu.require_gpu()
    from rich.console import Console
    from rich.progress import Progress

    from harness.ceilings import ceilings
    from harness.errors import GPUFault
    from harness.report import print_run, save_results, write_json
    from harness.runner import bench_op, selected_configs

    console = Console()
    limits = ceilings()
    runs = []
    jobs = []
    for op in ops:
        variants = select(args, op)
        dims = parse_shape(args.shape, op) if args.shape else op.bench_shape
        dtypes = ("fp32", "bf16") if args.dtype == "all" else (args.dtype,)
        for dtype in dtypes:
            chosen = [v for v in variants if dtype in v.dtypes]
            if chosen:
                jobs.append((op, dtype, dims, chosen))
    if not jobs:
        raise UserError(f"no selected variant supports dtype {args.dtype}")

    def baseline_names(op):
        if args.no_baselines:
            return []
        return [name for name in op.baselines if not (args.no_compile_baseline and name == "torch.compile")]

    steps = sum(len(baseline_names(op)) + sum(len(selected_configs(v, args.block_size)) for v in variants)
                for op, _, _, variants in jobs)
    fault = None
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("benchmarking", total=steps)
        for op, dtype, dims, variants in jobs:
            try:
                run_result = bench_op(op, dtype, dims, variants, block_sizes=args.block_size,
                                      baselines=baseline_names(op), repeats=args.repeats, ceilings=limits,
                                      on_step=lambda text: progress.update(task, description=text, advance=1))
            except GPUFault as exc:  # the runs finished before it are still saved below
                fault = exc
                break
            print_run(run_result, console)
            runs.append(run_result)
            # Written after every run, not once at the end: a sweep stopped by a time limit (or
            # Ctrl-C) keeps what it measured.
            if args.json:
                write_json(runs, args.json)
            if args.save:
                paths = save_results([run_result])
    if args.json and runs:
        console.print(f"wrote {args.json}")
    if args.save and runs:
        console.print(f"saved {' and '.join(map(str, paths))}")
    if fault is not None:
        console.print(f"[bold red]GPU fault:[/] {fault}")
        return EXIT_CHECK_FAILED
    failed = [run.key for run in runs if not run.passed]
    if failed:
        console.print(f"[bold red]correctness failures in: {', '.join(failed)}[/]")
        return EXIT_CHECK_FAILED
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"bench.py: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
