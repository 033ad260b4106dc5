"""Every launch a variant makes, at every test shape (GPT-2 sizes included) and configuration, fits
the GPU: threads, registers (from ptxas's report) and shared memory per block, and grid extents, for
each architecture the variant is compiled for. No GPU needed: the launch functions run on meta
tensors (harness/launches.py)."""
import pytest

from harness.launches import launch_problems, record_launches
from harness.registry import all_variants

CASES = [(v, dtype) for v in all_variants() if v.source is not None for dtype in v.dtypes]


@pytest.mark.parametrize("variant,dtype", CASES, ids=[f"{v.id}-{d}" for v, d in CASES])
def test_every_launch_fits_the_gpu(variant, dtype):
    problems, launches = [], 0
    for dims in variant.op.shapes:
        for config in variant.configs:
            if variant.refusal(dims, dtype, config):
                continue
            launches += len(record_launches(variant, dims, dtype, config))
            for arch in variant.archs:
                problems += [f"{variant.op.format_dims(dims)} {config}: {p}"
                             for p in launch_problems(variant, dims, dtype, config, arch)]
    assert launches > 0, f"{variant.id} launched no kernel at any test shape"
    assert not problems, "\n".join(problems)


def test_an_oversized_configuration_is_caught():
    """The check itself: layernorm forward variant 5 keeps a 64-float row slice per lane in registers,
    so 1024-thread blocks cannot fit an SM's register file."""
    from kernels.layernorm.forward import FORWARD

    variant = FORWARD.variant_by_number(5)
    problems = launch_problems(variant, (8, 1024, 768), "fp32", {"block_size": 1024}, "sm_90")
    assert any("registers" in p for p in problems), problems
