"""The layer contract and registry, on the CPU."""
import pytest
import torch

from harness.contract import Op, TensorSpec, Tolerance, validate_tensors
from harness.errors import UserError
from harness.registry import all_ops, find_ops, layers
from kernels.layernorm.forward import FORWARD


def test_layernorm_forward_bytes_model_counts_each_tensor_once():
    dims = FORWARD.make_dims((8, 1024, 768))
    rows, channels = 8 * 1024, 768
    # inp and out are (rows, C); weight and bias (C,); mean and rstd fp32 per row
    assert FORWARD.bytes_moved(dims, "fp32") == 4 * (2 * rows * channels + 2 * channels + 2 * rows)
    assert FORWARD.bytes_moved(dims, "bf16") == 2 * (2 * rows * channels + 2 * channels) + 4 * 2 * rows


def test_every_op_has_tolerances_for_every_dtype_its_variants_use():
    for op in all_ops():
        for variant in op.variants:
            for dtype in variant.dtypes:
                assert set(op.tolerances[dtype]) == set(op.outputs), f"{variant.id} {dtype}"


def test_every_op_has_awkward_shapes():
    for op in all_ops():
        assert len(op.shapes) >= 3, op.id
        assert any(any(d % 32 for d in dims) for dims in op.shapes), f"{op.id}: no shape off the 32 grid"


def test_find_ops_accepts_layer_and_layer_dot_pass():
    assert [op.id for op in find_ops("layernorm")] == [op.id for op in layers()["layernorm"]]
    assert [op.id for op in find_ops("layernorm.backward")] == ["layernorm.backward"]
    assert [op.id for op in find_ops("layernorm", "forward")] == ["layernorm.forward"]


@pytest.mark.parametrize("target,pass_name,message", [
    ("nolayer", None, "unknown layer 'nolayer'; valid layers: .*layernorm"),
    ("layernorm.sideways", None, "no pass 'sideways'; valid passes: forward, backward"),
    ("layernorm.forward", "backward", "disagree"),
])
def test_find_ops_errors_name_the_valid_choices(target, pass_name, message):
    with pytest.raises(UserError, match=message):
        find_ops(target, pass_name)


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(UserError, match="valid variants: 1, 2"):
        FORWARD.variant_by_number(99)


def make_toy_op(tmp_path, header_run="python bench.py toy --variant 1"):
    (tmp_path / "1_first.cu").write_text(
        f"/*\n * toy forward, variant 1: first\n *\n * Changed: x\n * Teaches: y\n * Run: {header_run}\n */\n")
    op = Op(layer="toy", pass_name="forward", dims=("N",), inputs={"x": TensorSpec(lambda d: (d.N,))},
            outputs={"y": TensorSpec(lambda d: (d.N,))}, shapes=[(5,), (64,), (1000,)], bench_shape=(64,),
            make_inputs=None, reference=None, tolerances={"fp32": {"y": Tolerance(0, 0)}},
            flops=lambda d: d.N, folder=tmp_path)
    return op


def test_variant_decorator_finds_file_and_reads_header(tmp_path):
    op = make_toy_op(tmp_path)
    op.variant(1)(lambda k, a, s: None)
    assert op.variants[0].name == "first" and op.variants[0].source.name == "1_first.cu"


def test_header_run_line_must_match_its_file(tmp_path):
    op = make_toy_op(tmp_path, header_run="python bench.py toy --variant 2")
    with pytest.raises(ValueError, match="should be 'python bench.py toy --variant 1'"):
        op.variant(1)(lambda k, a, s: None)


def test_missing_file_for_variant_number(tmp_path):
    op = make_toy_op(tmp_path)
    with pytest.raises(ValueError, match="2_\\*.cu"):
        op.variant(2)(lambda k, a, s: None)


def test_bind_rejects_wrong_shape_and_dtype_with_clear_messages():
    dims = FORWARD.make_dims((2, 3, 64))
    specs = FORWARD.tensor_specs(dims)
    good = {name: torch.empty(spec.shape(dims), dtype=torch.float32) for name, spec in specs.items()}
    with pytest.raises(UserError, match=r"'inp' has shape \(2, 3, 65\), expected \(2, 3, 64\)"):
        validate_tensors("v", good | {"inp": torch.empty(2, 3, 65)}, specs, dims, "fp32")
    with pytest.raises(UserError, match="'weight' has dtype torch.float64, expected torch.float32"):
        validate_tensors("v", good | {"weight": torch.empty(64, dtype=torch.float64)}, specs, dims, "fp32")
    with pytest.raises(UserError, match="missing tensors mean"):
        validate_tensors("v", {k: v for k, v in good.items() if k != "mean"}, specs, dims, "fp32")
    with pytest.raises(UserError, match="must be contiguous"):
        validate_tensors("v", good | {"inp": torch.empty(2, 64, 3).transpose(1, 2)}, specs, dims, "fp32")
    with pytest.raises(UserError, match="kernels need CUDA tensors"):
        validate_tensors("v", good, specs, dims, "fp32")


def make_gather_op():
    """A toy op with an integer input, a scalar and one library variant (torch calls, no .cu file)."""
    op = Op(layer="gather", pass_name="forward", dims=("N", "V"),
            inputs={"table": TensorSpec(lambda d: (d.V,)), "index": TensorSpec(lambda d: (d.N,), "i32")},
            outputs={"out": TensorSpec(lambda d: (d.N,))}, shapes=[(5, 7), (33, 100), (64, 3)],
            bench_shape=(64, 3),
            make_inputs=lambda d, dtype, g: {"table": torch.randn(d.V, generator=g, dtype=torch.float64),
                                             "index": torch.randint(0, d.V, (d.N,), generator=g)},
            reference=lambda t: {"out": t["table"][t["index"]] * t["alpha"]},
            tolerances={"fp32": {"out": Tolerance(1e-6, 1e-6)}}, flops=lambda d: d.N, scalars={"alpha": 2.0})

    @op.variant(1, library_header="/*\n * gather forward, variant 1: torch indexing\n *\n * Changed: -\n"
                                  " * Teaches: library variants\n * Run: python bench.py gather --variant 1\n */")
    def torch_indexing(k, a, s):
        torch.mul(a.table[a.index.long()], a.alpha, out=a.out)

    return op


def test_library_variant_with_int_input_and_scalar_checks_on_cpu():
    from harness.check import Case, check_variant

    op = make_gather_op()
    variant = op.variants[0]
    assert variant.source is None and variant.name == "torch indexing"
    case = Case(op, "fp32", (33, 100), seed=0, device="cpu")
    assert case.inputs["index"].dtype == torch.int32
    result, launch = check_variant(variant, case, {})
    assert result.passed, result.describe()
    launch(alpha=-1.0)  # scalars are per call
    torch.testing.assert_close(case.outputs["out"], -case.reference["out"].float() / 2.0)
    with pytest.raises(UserError, match="no scalars \\['beta'\\]"):
        launch(beta=1.0)


def test_a_dimension_of_zero_is_refused_by_every_variant():
    """An empty dimension would launch an empty grid (a CUDA error) or skip a kernel's main loop and
    with it the barrier its epilogue relies on: every variant refuses it before touching a buffer."""
    from harness.errors import ShapeRefused
    from harness.registry import all_variants

    for variant in all_variants():
        dims = variant.op.make_dims([0] + list(variant.op.shapes[0])[1:])
        reason = variant.refusal(dims, variant.dtypes[0], variant.configs[0])
        assert reason and "every dimension must be positive" in reason, variant.id
        with pytest.raises(ShapeRefused, match="every dimension must be positive"):
            variant.bind({}, dims, variant.dtypes[0], variant.configs[0])
