"""Every launch a variant makes, at every test shape (GPT-2 sizes included), at the sizes of the GPT-2
training run `make gpu-train` makes, and at every configuration, fits the GPU: threads, registers
(from ptxas's report) and shared memory per block, grid extents, and int arguments within int32, for
each architecture the variant is compiled for. No GPU needed: the launch functions run on meta
tensors (harness/launches.py)."""
import pytest

from harness.launches import launch_problems, record_launches
from harness.registry import all_variants

pytestmark = pytest.mark.nvrtc

CASES = [(v, dtype) for v in all_variants() if v.source is not None for dtype in v.dtypes]

# What the trainer binds for GPT-2 124M at B = 32, T = 1024 (trainer/kernel_model.py; make gpu-train),
# written out here because kernels/ does not import the trainer. These are the sizes where counts
# near 2^31 appear: the logits hold B * T * Vp = 1.65e9 elements (Vp: wte's padded row count).
B, T, C, NH, V, VP = 32, 1024, 768, 12, 50257, 50304
PARAMETERS = 124_475_904  # trainer.model.num_parameters of d12, padded vocabulary included
TRAINING_SHAPES = {
    "encoder": [(B, T, C, VP)],
    "layernorm": [(B, T, C)],
    # qkv, attention projection, MLP up and down, LM head
    "matmul": [(B, T, C, 3 * C), (B, T, C, C), (B, T, C, 4 * C), (B, T, 4 * C, C), (B, T, C, VP)],
    "attention": [(B, T, NH, C // NH)],
    "flash_attention": [(B, T, NH, C // NH)],
    "gelu": [(B * T * 4 * C,)],
    # activations, the two wte gradients' sum, gradient accumulation over every parameter
    "residual": [(B * T * C,), (VP * C,), (PARAMETERS,)],
    "classifier": [(B, T, V, VP)],
    "adamw": [(VP * C,), (12 * 4 * C * C,), (C,)],  # one call per parameter tensor: wte, fcw, lnfw
    "global_norm": [(PARAMETERS,)],
}


def shapes_to_check(variant):
    return list(variant.op.shapes) + [variant.op.make_dims(d) for d in TRAINING_SHAPES.get(variant.op.layer, [])]


@pytest.mark.parametrize("variant,dtype", CASES, ids=[f"{v.id}-{d}" for v, d in CASES])
def test_every_launch_fits_the_gpu(variant, dtype):
    problems, launches = [], 0
    for dims in shapes_to_check(variant):
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


def test_an_int_argument_past_int32_is_caught():
    """The check itself: a GPU launch passes ints as int32 (harness.gpu.kernel_arg), so an element
    count of 2^31 cannot be passed, and the launch would fail only on the GPU."""
    from kernels.gelu.forward import FORWARD

    problems = launch_problems(FORWARD.variant_by_number(1), (2**31,), "fp32", {"block_size": 256}, "sm_90")
    assert any("argument 2" in p and "does not fit in int32" in p for p in problems), problems


def test_every_layer_has_training_shapes():
    assert set(TRAINING_SHAPES) == {v.op.layer for v in all_variants()}
