"""dlogits may alias logits (the trainer overwrites its logits with their gradient, as llm.c does):
every classifier backward variant, at every launch configuration, run in place on the CPU emulator
and checked against the reference. The harness's own checks use separate buffers."""
import pytest

from harness.check import Case, compare
from kernels.classifier.backward import BACKWARD
from kernels.test_emulated import EMULATED_MAX_ELEMENTS

SMALL = [dims for dims in BACKWARD.shapes if BACKWARD.size(dims) <= EMULATED_MAX_ELEMENTS]
CASES = [(variant, dtype, dims) for variant in BACKWARD.variants for dtype in variant.dtypes for dims in SMALL
         if any(not variant.refusal(dims, dtype, config) for config in variant.configs)]


@pytest.mark.emulated
@pytest.mark.parametrize("variant,dtype,dims", CASES,
                         ids=[f"{v.id}-{d}-" + "x".join(map(str, s)) for v, d, s in CASES])
def test_backward_in_place_on_the_emulator(variant, dtype, dims):
    case = Case(BACKWARD, dtype, dims, seed=11, device="cpu")
    tolerances = BACKWARD.tolerances[dtype]
    failures = []
    for config in variant.configs:
        if variant.refusal(dims, dtype, config):
            continue
        logits = case.inputs["logits"].clone()  # overwritten by its own gradient
        case.poison()
        tensors = {"logits": logits, "targets": case.inputs["targets"], "dlogits": logits,
                   "losses": case.outputs["losses"]}
        variant.bind(tensors, dims, dtype, config, device="cpu")()
        for name, got in (("dlogits", logits), ("losses", case.outputs["losses"])):
            result = compare(name, got, case.reference[name], tolerances[name])
            if not result.passed:
                failures.append(f"{config}: {result.describe()}")
    assert not failures, "\n".join(failures)
