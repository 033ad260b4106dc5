"""The in-place calls the trainer makes: every variant of an op, at every launch configuration and every
small test shape, run on the CPU emulator with each of the op's declared aliases (Op.aliases: an output
sharing an input's buffer) and checked against the reference. The harness's other checks use separate
buffers."""
import zlib

import pytest

from harness.check import Case, run_check_aliased
from harness.registry import all_variants
from kernels.test_emulated import EMULATED_MAX_ELEMENTS

CASES = [(variant, dtype, dims, aliases) for variant in all_variants() for aliases in variant.op.aliases
         for dtype in variant.dtypes for dims in variant.op.shapes
         if variant.op.size(dims) <= EMULATED_MAX_ELEMENTS
         and any(not variant.refusal(dims, dtype, config) for config in variant.configs)]


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,dims,aliases", CASES,
                         ids=[f"{v.id}-{d}-" + "x".join(map(str, s)) + "-" + "-".join(f"{o}_is_{i}" for o, i in a.items())
                              for v, d, s, a in CASES])
def test_output_may_alias_its_declared_input(variant, dtype, dims, aliases):
    case = Case(variant.op, dtype, dims, seed=zlib.crc32(f"{variant.op.id}{dtype}{dims}".encode()), device="cpu")
    failures = []
    for config in variant.configs:
        if variant.refusal(dims, dtype, config):
            continue
        result = run_check_aliased(case, variant, config, aliases)
        if not result.passed:
            failures.append(result.describe())
    assert not failures, "\n".join(failures)


def test_declared_aliases_name_real_tensors():
    ops = {variant.op for variant in all_variants()}
    declared = [(op, aliases) for op in ops for aliases in op.aliases]
    assert {op.id for op, _ in declared} >= {"residual.forward", "gelu.forward", "gelu.backward",
                                              "classifier.backward", "adamw.update"}
    for op, aliases in declared:
        assert set(aliases) <= set(op.outputs) and set(aliases.values()) <= set(op.inputs), (op.id, aliases)
