"""The in-place calls the trainer makes: every variant of an op, at every launch configuration and every
small test shape, run on the CPU emulator with each of the op's declared aliases (Op.aliases: an output
sharing an input's buffer) and checked against the reference. The harness's other checks use separate
buffers."""
import re
import zlib

import pytest

from harness.check import Case, run_check_aliased
from harness.compile import local_includes
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


# What lets a GPU compiler assume no aliasing: load through the non-coherent read-only cache, or move
# a load past a store. With an output sharing an input's buffer that is undefined behaviour, and the
# emulator (g++) would not show it, so the variants of an op the trainer calls in place must not.
ASSUMES_NO_ALIASING = re.compile(r"__restrict__|__restrict\b|__ldg\s*\(|ld\.global\.nc")
COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def aliasing_assumptions(text: str) -> list[str]:
    return ASSUMES_NO_ALIASING.findall(COMMENTS.sub("", text))


def test_the_search_finds_what_it_looks_for():
    assert aliasing_assumptions("const float* __restrict__ inp; float x = __ldg(&inp[i]);") == ["__restrict__", "__ldg("]
    assert aliasing_assumptions("// no pointer is __restrict__\n/* nor __ldg(x) */ float y;") == []


def test_variants_called_in_place_make_no_aliasing_promise():
    offenders = []
    for variant in all_variants():
        if variant.op.aliases and variant.source is not None:
            for path in [variant.source, *local_includes(variant.source)]:
                found = aliasing_assumptions(path.read_text())
                if found:
                    offenders.append(f"{variant.id}: {path.name} uses {sorted(set(found))}")
    assert not offenders, ("these ops are called in place (Op.aliases), where __restrict__ and __ldg are "
                           "undefined behaviour:\n" + "\n".join(offenders))
