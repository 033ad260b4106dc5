"""Timing: CUDA events around every call, warm-up, a cold L2 before each call, median and IQR.

Each timed call is preceded (outside its events) by a write over a buffer twice the size of the
L2 cache, so the call reads its inputs from device memory as it would inside a real model, not
from the cache left warm by the previous repetition.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_us: float
    q1_us: float
    q3_us: float
    min_us: float
    repeats: int

    @property
    def iqr_us(self) -> float:
        return self.q3_us - self.q1_us

    def as_dict(self) -> dict:
        return {"median_us": self.median_us, "q1_us": self.q1_us, "q3_us": self.q3_us,
                "min_us": self.min_us, "repeats": self.repeats}


def summarize(samples_us: list[float]) -> Timing:
    """Median, quartiles (inclusive method, so a handful of samples still gives sane quartiles) and min."""
    if not samples_us:
        raise ValueError("no timing samples")
    if len(samples_us) == 1:
        only = samples_us[0]
        return Timing(only, only, only, only, 1)
    q1, _, q3 = statistics.quantiles(samples_us, n=4, method="inclusive")
    return Timing(statistics.median(samples_us), q1, q3, min(samples_us), len(samples_us))


class L2Flusher:
    """Evicts the L2 cache by writing a buffer twice its size."""

    def __init__(self, device: int | None = None):
        props = torch.cuda.get_device_properties(torch.cuda.current_device() if device is None else device)
        l2_bytes = max(int(getattr(props, "L2_cache_size", 0)), 64 * 1024 * 1024)
        self.buffer = torch.empty(2 * l2_bytes // 4, dtype=torch.float32, device="cuda")

    def flush(self) -> None:
        self.buffer.fill_(1.0)


# A naive variant can take a tenth of a second a call at a bench shape. Its repeats are capped so
# that timing one row takes about a second, but never below MIN_REPEATS: slow kernels vary little
# from call to call, so their median settles within far less than the steps of a ladder.
ROW_BUDGET_US = 1_000_000
MIN_REPEATS = 10


def repeats_within(call_us: float, repeats: int, budget_us: float = ROW_BUDGET_US,
                   min_repeats: int = MIN_REPEATS) -> int:
    """How many of `repeats` calls of about `call_us` each fit in `budget_us` (at least min_repeats)."""
    if call_us <= 0:
        return repeats
    return max(min(repeats, min_repeats), min(repeats, int(budget_us // call_us)))


def time_cuda(fn, flusher: L2Flusher | None, warmup: int = 5, repeats: int = 100) -> Timing:
    """Time `fn()` (which only enqueues GPU work) with a pair of CUDA events per call; fewer than
    `repeats` calls when each takes long (repeats_within; Timing.repeats says how many)."""
    if warmup:
        fn()  # the first call may compile (a torch.compile baseline) or load: not part of the estimate
        torch.cuda.synchronize()
    warm_start, warm_end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    warm_start.record()
    for _ in range(warmup - 1):
        fn()
    warm_end.record()
    torch.cuda.synchronize()
    if warmup > 1:
        repeats = repeats_within(warm_start.elapsed_time(warm_end) * 1000.0 / (warmup - 1), repeats)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for start, end in zip(starts, ends):
        if flusher is not None:
            flusher.flush()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return summarize([start.elapsed_time(end) * 1000.0 for start, end in zip(starts, ends)])


def time_wall(fn, warmup: int = 1, repeats: int = 3) -> Timing:
    """Wall-clock time of `fn()` (which runs to completion), for the CPU emulator: the runner's logic
    is exercised end to end without a GPU, and the times say nothing about a kernel's speed."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1e6)
    return summarize(samples)
