"""The correctness machinery on the CPU: tolerance rule, NaN poisoning, mismatch reports, clobbered inputs.

A "kernel" here is a Python function writing the case's outputs, so the whole check path runs
without a GPU on the real layernorm contract.
"""
import math

import pytest
import torch

from harness.check import Case, compare, run_check
from harness.contract import Tolerance
from kernels.layernorm.forward import FORWARD
from reference.layernorm import layernorm_forward

TOL = Tolerance(atol=1e-3, rtol=1e-2)


def test_within_tolerance_passes_and_reports_fraction_used():
    want = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    got = want + torch.tensor([0.005, -0.0, 0.0005], dtype=torch.float64)  # 0.005 of allowed 0.011
    result = compare("out", got, want, TOL)
    assert result.passed
    assert result.tolerance_used == pytest.approx(0.5, rel=1e-6)  # 0.0005 / 0.001 is the worst
    assert result.max_abs_err == pytest.approx(0.005)


def test_just_outside_tolerance_fails_with_index_and_values():
    want = torch.zeros(2, 3, dtype=torch.float64)
    got = want.clone()
    got[1, 2] = 2e-3
    result = compare("out", got, want, TOL)
    assert not result.passed
    assert result.bad_count == 1
    assert result.mismatches == [((1, 2), pytest.approx(2e-3), 0.0)]
    assert "[1, 2]: got" in result.describe()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_never_pass(bad):
    want = torch.ones(4, dtype=torch.float64)
    got = want.clone()
    got[3] = bad
    result = compare("out", got, want, Tolerance(atol=1e9, rtol=1e9))
    assert not result.passed
    assert result.mismatches[0][0] == (3,)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        compare("out", torch.zeros(3), torch.zeros(4, dtype=torch.float64), TOL)


@pytest.fixture
def case():
    return Case(FORWARD, "fp32", (3, 37, 1000), seed=1, device="cpu")


def write_reference(case, skip_last=False):
    out, mean, rstd = layernorm_forward(*(case.inputs[n].double() for n in ("inp", "weight", "bias")))
    out = out.float()
    if skip_last:
        out = out.clone()
        out[-1, -1, -1] = case.outputs["out"][-1, -1, -1]  # leave what was there: the poison
    case.outputs["out"].copy_(out)
    case.outputs["mean"].copy_(mean)
    case.outputs["rstd"].copy_(rstd)


def test_correct_kernel_passes(case):
    result = run_check(case, lambda: write_reference(case), "fake")
    assert result.passed, result.describe()
    assert result.tolerance_used < 1


def test_unwritten_element_is_caught_by_poisoning(case):
    result = run_check(case, lambda: write_reference(case, skip_last=True), "fake")
    assert not result.passed
    out = next(c for c in result.comparisons if c.name == "out")
    assert out.bad_count == 1 and out.mismatches[0][0] == (2, 36, 999)
    assert math.isnan(out.mismatches[0][1])


def test_recheck_without_poison_sees_earlier_output(case):
    run_check(case, lambda: write_reference(case), "first")
    assert run_check(case, lambda: pytest.fail("must not launch"), "again", poison=False).passed


def test_slightly_wrong_statistics_fail(case):
    def wrong_eps():
        write_reference(case)
        case.outputs["rstd"].mul_(1 + 1e-4)  # far outside fp32's 1e-5 relative tolerance

    result = run_check(case, wrong_eps, "fake")
    assert not result.passed
    assert [c.name for c in result.comparisons if not c.passed] == ["rstd"]


def test_kernel_that_writes_its_input_fails(case):
    def clobber():
        write_reference(case)
        case.inputs["weight"][0] += 1

    result = run_check(case, clobber, "fake")
    assert result.clobbered_inputs == ["weight"]
    assert not result.passed


def test_inputs_are_rounded_to_the_dtype_before_the_reference():
    case = Case(FORWARD, "bf16", (2, 3, 64), seed=3, device="cpu")
    assert case.inputs["inp"].dtype == torch.bfloat16
    out, _, _ = layernorm_forward(*(case.inputs[n].double() for n in ("inp", "weight", "bias")))
    assert torch.equal(out, case.reference["out"])


def test_inputs_have_nonzero_row_means():
    case = Case(FORWARD, "fp32", (4, 16, 256), seed=0, device="cpu")
    row_means = case.inputs["inp"].double().mean(-1)
    assert row_means.abs().mean() > 0.3
    assert row_means.std() > 0.3
