"""Host-side cost of one bound launch (pytest-benchmark): what a training loop pays in Python per
kernel call. Measured, never asserted as a speed; the test asserts that the outputs are still right
after the thousands of launches the benchmark makes."""
import pytest

from harness.check import Case
from kernels.layernorm.forward import FORWARD


@pytest.mark.gpu
def test_bound_launch_host_overhead(gpu, benchmark):
    import torch

    variant = FORWARD.variants[-1]
    case = Case(FORWARD, "bf16", FORWARD.bench_shape, seed=3)
    launch = variant.bind(case.tensors, case.dims, "bf16", variant.configs[0])
    launch()
    torch.cuda.synchronize()
    case.poison()
    benchmark(launch)
    torch.cuda.synchronize()
    failures = [c.describe() for c in case.compare_outputs() if not c.passed]
    assert not failures, failures
