"""The trainer accumulates gradients with the residual forward in place (grads += micro-step grads,
out aliasing inp1): every variant must give the same result when out is inp1 or inp2. Runs on the
CPU emulator; test_variants.py's GPU checks use separate buffers."""
import pytest

from harness.check import Case, compare
from kernels.residual.forward import FORWARD

CASES = [(v, dtype, alias) for v in FORWARD.variants for dtype in v.dtypes for alias in ("inp1", "inp2")]


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,alias", CASES, ids=[f"{v.id}-{d}-out_is_{a}" for v, d, a in CASES])
def test_out_may_alias_an_input(variant, dtype, alias):
    dims = FORWARD.make_dims((1000,))
    case = Case(FORWARD, dtype, dims, seed=7, device="cpu")
    tensors = dict(case.inputs, out=case.inputs[alias])
    variant.bind(tensors, dims, dtype, device="cpu")()
    result = compare("out", case.inputs[alias], case.reference["out"], FORWARD.tolerances[dtype]["out"])
    assert result.passed, result.describe()
