"""Every variant run on the CPU emulator (harness/emulator), so CI exercises the kernels without a GPU:
indexing, tails, unwritten outputs (NaN poisoning), out-of-bounds writes (guard zones), barriers and
shuffles after threads returned, and the launch lines' argument counts and types, at every launch
configuration on every test shape small enough to emulate quickly. It says nothing
about speed, and a GPU can still expose races the emulator's orderly schedule hides: the GPU tests
in test_variants.py remain the authority."""
import zlib

import pytest

from harness.check import Case, check_variant
from harness.registry import all_variants

EMULATED_MAX_ELEMENTS = 500_000  # the emulator runs a thread at a time: keep to small shapes


def emulated_cases():
    cases = []
    for variant in all_variants():  # library variants (source None) run their torch calls on the CPU
        small = [dims for dims in variant.op.shapes if variant.op.size(dims) <= EMULATED_MAX_ELEMENTS]
        for dtype in variant.dtypes:
            for dims in small:
                configs = [c for c in variant.configs if not variant.refusal(dims, dtype, c)]
                if configs:
                    cases.append((variant, dtype, dims, configs))
    return cases


CASES = emulated_cases()


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,dims,configs", CASES,
                         ids=[f"{v.id}-{d}-" + "x".join(map(str, s)) for v, d, s, _ in CASES])
def test_variant_matches_reference_on_the_emulator(variant, dtype, dims, configs):
    case = Case(variant.op, dtype, dims, seed=zlib.crc32(f"{variant.op.id}{dtype}{dims}".encode()), device="cpu")
    failures = []
    for config in configs:
        result, _ = check_variant(variant, case, config)
        if not result.passed:
            failures.append(result.describe())
    assert not failures, "\n".join(failures)


def test_every_variant_is_emulated():
    covered = {v.id for v, *_ in CASES}
    assert covered == {v.id for v in all_variants()}
