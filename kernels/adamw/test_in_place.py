"""params_out may alias params, m_out m and v_out v (the trainer updates its buffers in place):
every AdamW variant, at every launch configuration, run in place on the CPU emulator and checked
against the reference. The harness's own checks use separate buffers."""
import pytest

from harness.check import Case, compare
from kernels.adamw.update import UPDATE
from kernels.test_emulated import EMULATED_MAX_ELEMENTS

SMALL = [dims for dims in UPDATE.shapes if UPDATE.size(dims) <= EMULATED_MAX_ELEMENTS]
CASES = [(variant, dtype, dims) for variant in UPDATE.variants for dtype in variant.dtypes for dims in SMALL
         if any(not variant.refusal(dims, dtype, config) for config in variant.configs)]
IN_PLACE = {"params_out": "params", "m_out": "m", "v_out": "v"}


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,dims", CASES,
                         ids=[f"{v.id}-{d}-" + "x".join(map(str, s)) for v, d, s in CASES])
def test_update_in_place_on_the_emulator(variant, dtype, dims):
    case = Case(UPDATE, dtype, dims, seed=11, device="cpu")
    tolerances = UPDATE.tolerances[dtype]
    failures = []
    for config in variant.configs:
        if variant.refusal(dims, dtype, config):
            continue
        state = {name: case.inputs[name].clone() for name in IN_PLACE.values()}  # updated in place
        case.poison()
        tensors = {"grads": case.inputs["grads"], "params_model": case.outputs["params_model"], **state,
                   **{out: state[inp] for out, inp in IN_PLACE.items()}}
        variant.bind(tensors, dims, dtype, config, device="cpu")()
        for name in UPDATE.outputs:
            result = compare(name, tensors[name], case.reference[name], tolerances[name])
            if not result.passed:
                failures.append(f"{config}: {result.describe()}")
    assert not failures, "\n".join(failures)
