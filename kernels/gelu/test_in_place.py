"""The trainer may compute GELU in place (out aliasing inp) and its gradient in place (dinp aliasing
dout): every variant must give the same result then. Runs on the CPU emulator; test_variants.py's
GPU checks use separate buffers."""
import pytest

from harness.check import Case, compare
from kernels.gelu.backward import BACKWARD
from kernels.gelu.forward import FORWARD

# (op, output, the input it overwrites)
ALIASES = [(FORWARD, "out", "inp"), (BACKWARD, "dinp", "dout")]
CASES = [(v, dtype, output, aliased) for op, output, aliased in ALIASES for v in op.variants for dtype in v.dtypes]


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,output,aliased", CASES,
                         ids=[f"{v.id}-{d}-{o}_is_{i}" for v, d, o, i in CASES])
def test_output_may_alias_an_input(variant, dtype, output, aliased):
    op = variant.op
    dims = op.make_dims((1000,))
    case = Case(op, dtype, dims, seed=7, device="cpu")
    tensors = dict(case.inputs, **{output: case.inputs[aliased]})
    variant.bind(tensors, dims, dtype, device="cpu")()
    result = compare(output, case.inputs[aliased], case.reference[output], op.tolerances[dtype][output])
    assert result.passed, result.describe()
