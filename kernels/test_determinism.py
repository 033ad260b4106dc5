"""Which variants repeat their outputs bit for bit, and the variant that makes the encoder's backward
do so. On a GPU, kernels/test_variants.py launches every variant not declared deterministic=False a
second time and compares the bits; here, without one, the declarations are held to the sources, and
encoder backward 3's sums to the order it promises."""
import re

import pytest
import torch

from harness.check import Case, check_variant, same_bits
from harness.compile import local_includes
from harness.registry import all_variants
from kernels.encoder import BACKWARD as ENCODER_BACKWARD
from trainer.kernels import ATTENTION_FAMILIES, COMMON_OPS, family_ops, simplest_selection

COMPILED = [v for v in all_variants() if v.source is not None]


def code_without_comments(path) -> str:
    text = path.read_text()
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


@pytest.mark.parametrize("variant", COMPILED, ids=lambda v: v.id)
def test_a_variant_is_declared_not_deterministic_exactly_when_it_uses_atomics(variant):
    """The only source of run-to-run differences in these kernels is atomicAdd, whose additions
    land in the order the hardware picks (every variant's atomics add floats). A variant that
    calls it, in its file or a header it includes, must say deterministic=False (bench.py --list
    marks it and --select --deterministic leaves it out); one that does not must not say so."""
    files = [variant.source, *local_includes(variant.source)]
    uses_atomics = [path.name for path in files if "atomicAdd(" in code_without_comments(path)]
    if uses_atomics:
        assert not variant.deterministic, f"{variant.id} calls atomicAdd ({uses_atomics}): declare deterministic=False"
    else:
        assert variant.deterministic, f"{variant.id} is declared deterministic=False but calls no atomicAdd"


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_every_op_the_trainer_runs_has_a_deterministic_variant(dtype):
    section = simplest_selection(dtype, deterministic=True)
    wanted = set(COMMON_OPS) | {op for family in ATTENTION_FAMILIES for op in family_ops(family)}
    assert wanted <= set(section), f"no deterministic {dtype} variant for {sorted(wanted - set(section))}"


def ordered_sums(case):
    """dwte and dwpe as encoder backward 3 promises them: fp32 sums that start at zero and add, one
    row at a time, each token's dout rows in increasing position order (and each position's rows in
    increasing b). Added here row by row in fp32 (torch's own sum and cumsum accumulate in a wider
    type on the CPU, so they do not show the order)."""
    dims = case.dims
    dout = case.inputs["dout"].to(torch.float32).reshape(dims.B * dims.T, dims.C)
    dwte = torch.zeros(dims.V, dims.C, dtype=torch.float32)
    for position, token in enumerate(case.inputs["tokens"].reshape(-1).tolist()):
        dwte[token] = dwte[token] + dout[position]
    dwpe = torch.zeros(dims.T, dims.C, dtype=torch.float32)
    for rows in dout.reshape(dims.B, dims.T, dims.C):
        dwpe = dwpe + rows
    return dwte, dwpe


@pytest.mark.emulated
def test_encoder_backward_3_adds_each_token_s_rows_in_position_order():
    """Bit for bit against the order the variant promises, at the shape with three ranking chunks:
    an unstable sort, or a chunk offset off by one, changes the order (or the set) of the additions,
    and with it the last bits of some sums, even where the result stays within tolerance."""
    variant = ENCODER_BACKWARD.variant_by_number(3)
    case = Case(ENCODER_BACKWARD, "fp32", (3, 700, 8, 300), seed=11, device="cpu")
    result, _ = check_variant(variant, case, variant.configs[0])
    assert result.passed, result.describe()
    dwte, dwpe = ordered_sums(case)
    assert same_bits(case.outputs["dwte"], dwte)
    assert same_bits(case.outputs["dwpe"], dwpe)
