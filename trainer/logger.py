"""What a run prints: a line per step (and per validation and sample) on the console and in train.log.

On a terminal the lines scroll above a rich progress bar; piped or redirected, they are plain text.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets; MFU is measured against these.
GPU_PEAK_FLOPS = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
                  ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
                  ("RTX 4090", 165e12), ("RTX 3090", 71e12)]


def peak_flops(device: torch.device, override_tflops: float = 0.0) -> float | None:
    """The peak MFU is measured against: --peak-tflops, else the table; None on a CPU or an unknown GPU."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in GPU_PEAK_FLOPS if key in name), None)


def peak_memory(device: torch.device) -> str:
    """The most memory the run has held: on a GPU torch's allocator's peak (every buffer of both
    engines is a torch allocation; CuPy only launches), on a CPU the process's peak resident size."""
    if device.type == "cuda":
        allocated, reserved = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
        return f"peak GPU memory {allocated / 2**30:.2f} GiB allocated ({reserved / 2**30:.2f} GiB reserved)"
    import resource

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return f"peak process memory {rss_kib / 2**20:.2f} GiB resident"


def run_summary(step_ms: list[tuple[int, float]], tokens_per_step: int, flops_per_step: float,
                peak: float | None, device: torch.device) -> str:
    """One line for the steps this run timed: the mean step time, tokens/s and MFU over all of them but
    the first (it loads modules and fills the allocator's cache), and the peak memory."""
    timed = step_ms[1:] if len(step_ms) > 1 else step_ms
    if not timed:
        return f"summary: no step run | {peak_memory(device)}"
    mean_s = sum(ms for _, ms in timed) / len(timed) / 1000.0
    mfu = "n/a" if not peak else f"{100 * flops_per_step / mean_s / peak:.1f}%"
    which = f"steps {timed[0][0]}-{timed[-1][0]}" + (" (the first left out: warm-up)" if len(step_ms) > 1 else "")
    return (f"summary: {which} | {1000 * mean_s:.1f} ms/step | {tokens_per_step / mean_s:,.0f} tok/s | "
            f"MFU {mfu} | {peak_memory(device)}")


class Logger:
    """Prints to the console (rich progress on a terminal) and appends the same lines to a log file."""

    def __init__(self, log_path: Path | None = None, total_steps: int = 0, start_step: int = 0,
                 interactive: bool | None = None, quiet: bool = False):
        self.file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.quiet = quiet
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.progress = None
        if self.interactive and not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="-")
            self.progress.start()

    def info(self, message: str) -> None:
        if self.file:
            self.file.write(message + "\n")
            self.file.flush()
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(message, markup=False, highlight=False)
        else:
            print(message, flush=True)

    def step(self, step: int, total: int, loss: float, norm: float, lr: float, ms: float, tokens_per_s: float,
             mfu: float | None) -> None:
        mfu_text = "n/a" if mfu is None else f"{100 * mfu:.1f}%"
        width = len(str(total))
        self.info(f"step {step:{width}d}/{total} | loss {loss:.6f} | norm {norm:.4f} | lr {lr:.2e} | "
                  f"{ms:.1f} ms | {tokens_per_s:,.0f} tok/s | MFU {mfu_text}")
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.file:
            self.file.close()
            self.file = None
