"""The GPU suite within a time budget, for a lent GPU machine that allows one command of a few minutes.

    python -m harness.gpu_suite --budget 540 --pack $OUT            # every stage that fits, in order
    python -m harness.gpu_suite --budget 200 --stages tests notebooks

`make gpu` runs the same parts without a budget. Here each stage gets at most its own cap and what
is left of the budget (less a reserve for the summary and the packing), and a stage that overruns is
stopped, its process group killed, so the suite always ends with the summary and, with --pack, one
gpu-results.tgz (results/, best.yaml and the logs) to bring back. The order puts first what the
rest needs: the cubins, then every layer's checked and timed variants (the trainer's kernel choice
reads them), the training run, the full correctness tests, compute-sanitizer, the notebooks, three Nsight Compute profiles. Every stage's output goes
to LOGS/<stage>.log; LOGS/stages.json records how each stage ended.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTED = time.monotonic()  # the budget counts from here: importing torch and the registry takes seconds
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Stage:
    name: str
    cap_s: int  # the most this stage may take, whatever the budget
    commands: list = field(default_factory=list)  # (log name, argv), run in turn
    after: object = None  # called with the logs folder when every command succeeded
    chained: bool = False  # each command needs the one before: stop at the first that fails


def bench_commands(logs: Path, layers: list[str]) -> list:
    # torch.compile baselines cost tens of seconds of compilation each: layernorm keeps them (its
    # issue measures against torch.compile), the other layers are timed against eager only here.
    commands = []
    for layer in layers:
        flags = [] if layer == "layernorm" else ["--no-compile-baseline"]
        commands.append((f"bench-{layer}", [PY, "bench.py", layer, "--save", "--json", str(logs / f"bench-{layer}.json"),
                                            *flags]))
    return commands


def keep_train_log(logs: Path) -> None:
    """The GPT-2 run's log is a result: it goes to results/ with its markdown (trainer/results.py). A
    child process asks the GPU's name, so this long-lived one never holds a CUDA context."""
    done = subprocess.run([PY, "-m", "trainer.results", str(logs / "train.log")], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"python -m trainer.results: {done.stderr.strip()[-400:]}")


def parallel_workers(workers: int = 4) -> list[str]:
    """pytest-xdist's flags where it is installed (a GPU image often has it): the correctness tests
    assert no speed, so four processes may share the GPU. loadgroup keeps the tests of one (op, dtype,
    shape) on one worker (kernels/test_variants.py), which builds that case's float64 reference once."""
    import importlib.util

    return ["-n", str(workers), "--dist", "loadgroup"] if importlib.util.find_spec("xdist") else []


def sanitizer() -> str:
    """compute-sanitizer from PATH, else where a CUDA toolkit keeps it."""
    import shutil

    return shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"


def sanitized(tool: str) -> list[str]:
    """harness.sanitize under compute-sanitizer. torch's caching allocator is switched off, so every
    buffer is its own allocation and an access past its end is out of bounds, not in a neighbour's
    memory; API errors that torch and CuPy provoke and handle (probing for symbols) are not reported."""
    return ["env", "PYTORCH_NO_CUDA_MEMORY_CACHING=1", sanitizer(), "--tool", tool, "--report-api-errors", "no",
            "--error-exitcode", "9", PY, "-m", "harness.sanitize", "--first-config",
            *(["--shared-memory-only"] if tool == "racecheck" else [])]


def stages(logs: Path, data: Path, bench_layers: list[str] | None = None) -> dict[str, Stage]:
    """The suite's stages by name. bench_layers: the layers the bench stage measures, in that order
    (default: every layer, in the order below)."""
    from harness.registry import layers

    # The layers that dominate a training step first: if the budget runs out, the trainer's kernel
    # choice falls back to an unmeasured layer's simplest variant, and for matmul that is a crawl.
    # Layernorm last: its torch.compile baselines take a minute to compile. bench.py saves after
    # every op and dtype, so a stage stopped at its cap keeps what it measured, and a later call with
    # --layers measures what it did not reach.
    first, last = ["matmul", "attention", "flash_attention", "classifier"], ["layernorm"]
    names = bench_layers or sorted(layers(), key=lambda name: first.index(name) if name in first else
                                   len(first) + 1 if name in last else len(first))
    train = [PY, "trainer/train.py", "--model", "d12", "--kernels", "best.yaml", "--dtype", "bf16",
             "--batch-size", "32", "--seq-len", "1024", "--max-steps", "40", "--val-every", "20",
             "--sample-every", "40", "--profile", "--vocab", str(data / "gpt2.tiktoken"),
             "--out-dir", str(logs / "run")]
    return {stage.name: stage for stage in [
        Stage("compile", 180, [("compile", [PY, "bench.py", "--compile-only", "--arch", "native"])]),
        Stage("bench", 360, bench_commands(logs, names)),
        Stage("train", 240, [
            ("prepro", [PY, "trainer/prepro.py", "tinyshakespeare", "--input", str(data / "tinyshakespeare.txt"),
                        "--vocab", str(data / "gpt2.tiktoken")]),
            ("select", [PY, "bench.py", "--select", "best.yaml"]),
            ("train", train)], after=keep_train_log, chained=True),
        Stage("tests", 420, [("pytest", [PY, "-m", "pytest", "kernels", "harness", "reference", "trainer",
                                         "-m", "not emulated and not nvrtc", "-q", "-rs", "--junitxml", str(logs / "pytest.xml"),
                                         *parallel_workers()])]),
        # compute-sanitizer over every kernel variant at the small test shapes (harness/sanitize.py):
        # out-of-bounds and misaligned accesses, then shared-memory races on the GPU's own schedule.
        Stage("sanitize", 300, [(f"sanitize-{tool}", sanitized(tool)) for tool in ("memcheck", "racecheck")]),
        Stage("notebooks", 600, [("notebooks", [PY, "-m", "pytest", "--nbmake", "--nbmake-timeout=900",
                                                "notebooks", "-q"])]),
        # bench.py --ncu on ladder steps: Nsight Compute's view of a variant, the feature's own check,
        # and ncu's shared-memory bank conflicts of the fused attention kernel and of the swizzled
        # matmul beside the ones the emulator's access profile counts (bench.py LAYER --variant N
        # --emulate --accesses).
        Stage("ncu", 160, [("ncu", [PY, "bench.py", "layernorm.forward", "--variant", "5", "--ncu"]),
                           ("ncu-attention", [PY, "bench.py", "attention.forward", "--variant", "3", "--dtype",
                                              "bf16", "--ncu"]),
                           ("ncu-matmul", [PY, "bench.py", "matmul.forward", "--variant", "6", "--dtype", "bf16",
                                           "--ncu"])]),
    ]}


def kill_tree(pid: int) -> None:
    """Kill a stage's process, its process group, and descendants that started sessions of their own
    (a notebook's Jupyter kernel does), so nothing keeps the GPU busy into the next stage."""
    try:
        import psutil

        descendants = psutil.Process(pid).children(recursive=True)
    except Exception:  # no psutil, or the process is already gone
        descendants = []
    for child in descendants:
        try:
            child.kill()
        except Exception:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group ended on its own meanwhile
        pass


def run_command(argv: list[str], log: Path, timeout_s: float) -> tuple[str, int | None]:
    """Run argv with its output in `log`; ("ok" | "failed" | "timed out", exit code)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        try:
            process = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)  # its own group: a timeout kills its children too
        except OSError as exc:  # e.g. no compute-sanitizer on this machine
            out.write(f"[gpu_suite] could not start {argv[0]}: {exc}\n")
            return "failed", 127
        try:
            rc = process.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait()
            out.write(f"\n[gpu_suite] stopped after {timeout_s:.0f} s: the stage's share of the budget\n")
            return "timed out", None
    return ("ok" if rc == 0 else "failed"), rc


def run_stages(chosen: list[Stage], logs: Path, budget_s: float, reserve_s: float, min_stage_s: float = 20,
               clock=time.monotonic, start: float | None = None) -> list[dict]:
    """Each stage in turn, within its cap and what is left of the budget; how each one ended."""
    start = clock() if start is None else start
    outcomes = []
    for stage in chosen:
        stage_start = clock()
        left = budget_s - reserve_s - (stage_start - start)
        if left < min_stage_s:
            outcomes.append({"stage": stage.name, "status": "skipped: no time left", "seconds": 0})
            continue
        deadline = stage_start + min(stage.cap_s, left)
        status, failures = "ok", []
        for log_name, argv in stage.commands:
            remaining = deadline - clock()
            if remaining <= 0:
                status = "timed out"
                break
            result, rc = run_command(argv, logs / f"{log_name}.log", remaining)
            if result == "timed out":
                status = "timed out"
                break
            if result == "failed":
                failures.append(f"{log_name} exit {rc}")
                if stage.chained:
                    break
        if failures and status == "ok":
            status = "failed: " + ", ".join(failures)
        if status == "ok" and stage.after:
            try:
                stage.after(logs)
            except Exception as exc:  # the stage's own output is safe in its log; say what went wrong
                status = f"failed: after the stage: {type(exc).__name__}: {exc}"
        outcomes.append({"stage": stage.name, "status": status, "seconds": round(clock() - stage_start, 1)})
        print(f"[gpu_suite] {stage.name}: {status} ({outcomes[-1]['seconds']} s)", flush=True)
    return outcomes


def pack(destination: Path, logs: Path) -> Path:
    """results/, best.yaml and the logs (no checkpoints) in one gzipped tar."""
    archive = destination / "gpu-results.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in [ROOT / "results", ROOT / "best.yaml"]:
            if path.exists():
                tar.add(path, arcname=path.name)
        for path in sorted(logs.glob("*")):
            if path.is_file() and path.suffix in (".log", ".json", ".xml"):
                tar.add(path, arcname=f"{logs.name}/{path.name}")
    return archive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=540, help="seconds for the whole suite (default 540)")
    parser.add_argument("--reserve", type=float, default=25, help="seconds kept for the summary and the packing")
    parser.add_argument("--stages", nargs="+", metavar="STAGE", help="which stages, in this order (default: all)")
    parser.add_argument("--logs", type=Path, default=ROOT / "gpu-out", help="where the logs go (default gpu-out)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder with tinyshakespeare.txt and gpt2.tiktoken, for the training stage")
    parser.add_argument("--pack", type=Path, metavar="FOLDER", help="write FOLDER/gpu-results.tgz at the end")
    parser.add_argument("--layers", nargs="+", metavar="LAYER",
                        help="the layers the bench stage measures, in this order (default: every layer), e.g. the "
                             "ones an earlier call's stopped bench stage did not reach")
    args = parser.parse_args(argv)
    if args.layers:
        from harness.registry import layers

        unknown = [name for name in args.layers if name not in layers()]
        if unknown:
            print(f"error: unknown layers {unknown}; valid: {', '.join(layers())}", file=sys.stderr)
            return 2
    args.logs.mkdir(parents=True, exist_ok=True)
    available = stages(args.logs.resolve(), args.data.resolve(), args.layers)
    names = args.stages or list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        print(f"error: unknown stages {unknown}; valid: {', '.join(available)}", file=sys.stderr)
        return 2
    outcomes = []
    try:
        outcomes = run_stages([available[name] for name in names], args.logs, args.budget, args.reserve,
                              start=STARTED)
    finally:  # whatever happened, what was measured comes back
        (args.logs / "stages.json").write_text(json.dumps(outcomes, indent=1))
        from harness.summary import main as summary

        summary(str(args.logs))
        print("stages: " + "; ".join(f"{o['stage']} {o['status']} ({o['seconds']} s)" for o in outcomes))
        if args.pack:
            print(f"packed {pack(args.pack, args.logs)}")
    return 0 if outcomes and all(o["status"] == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
