"""Correctness of every variant: each (op, variant, dtype, shape) is a test, checked at every launch
configuration it sweeps, with poisoned outputs against the float64 reference (GPU); a variant not
declared deterministic=False must also give the same bits on a second launch. Refusals are
checked on the CPU too: a variant asked for a shape it declares it cannot handle must raise."""
import math
import zlib

import pytest
import torch

from harness.check import Case, check_variant, same_bits
from harness.errors import ShapeRefused
from harness.registry import all_variants

# Ordered so that the tests sharing an (op, dtype, shape) run one after another and reuse its Case:
# building the float64 reference at GPT-2 sizes costs seconds.
CASES = sorted([(v, dtype, dims) for v in all_variants() for dtype in v.dtypes for dims in v.op.shapes],
               key=lambda c: (c[0].op.id, c[1], tuple(c[2]), c[0].number))


def case_id(variant, dtype, dims):
    return f"{variant.id}-{dtype}-" + "x".join(str(d) for d in dims)


@pytest.fixture(scope="module")
def cases():
    """One Case (inputs, reference, buffers) per (op, dtype, shape), shared by that op's variants."""
    made = {}

    def get(op, dtype, dims):
        key = (op.id, dtype, tuple(dims))
        if key not in made:
            made.clear()  # keep one case alive at a time: the big shapes hold float64 references
            made[key] = Case(op, dtype, dims, seed=zlib.crc32(repr(key).encode()))
        return made[key]

    return get


# With pytest-xdist's --dist loadgroup (the GPU suite's tests stage) an (op, dtype, shape)'s tests
# go to one worker, which builds its Case once.
GROUPED_CASES = [pytest.param(*c, id=case_id(*c), marks=pytest.mark.xdist_group(f"{c[0].op.id}-{c[1]}-{c[2]}"))
                 for c in CASES]


@pytest.mark.gpu
@pytest.mark.parametrize("variant,dtype,dims", GROUPED_CASES)
def test_variant_matches_reference(gpu, cases, variant, dtype, dims):
    case = cases(variant.op, dtype, dims)
    checked = 0
    failures = []
    for config in variant.configs:
        if variant.refusal(dims, dtype, config):
            with pytest.raises(ShapeRefused):
                variant.bind(case.tensors, dims, dtype, config)
            continue
        result, launch = check_variant(variant, case, config)
        checked += 1
        if not result.passed:
            failures.append(result.describe())
        elif variant.deterministic:  # a second launch on the same inputs must repeat every bit
            first = {name: tensor.clone() for name, tensor in case.outputs.items()}
            case.poison()
            launch()
            torch.cuda.synchronize()
            changed = [name for name, tensor in case.outputs.items() if not same_bits(tensor, first[name])]
            if changed:
                failures.append(f"{result.label}: declared deterministic, but a second launch changed {changed}")
    assert not failures, "\n".join(failures)
    if checked == 0:
        pytest.skip(f"{variant.id} refuses {variant.op.format_dims(dims)} {dtype} at every configuration")


REFUSALS = [(v, dtype, dims, config) for v, dtype, dims in CASES for config in v.configs
            if v.refusal(dims, dtype, config)]


@pytest.mark.parametrize("variant,dtype,dims,config", REFUSALS,
                         ids=[case_id(v, d, s) + f"-{c}" for v, d, s, c in REFUSALS])
def test_refused_shapes_raise(variant, dtype, dims, config):
    """No GPU needed: the refusal is raised before any buffer is touched."""
    with pytest.raises(ShapeRefused, match=variant.id):
        variant.bind({}, dims, dtype, config)


def test_dtype_not_supported_is_refused():
    fp32_only = [v for v in all_variants() if v.dtypes == ("fp32",)]
    if not fp32_only:
        pytest.skip("every variant supports bf16")
    variant = fp32_only[0]
    with pytest.raises(ShapeRefused, match="bf16"):
        variant.bind({}, variant.op.shapes[0], "bf16", variant.configs[0])


@pytest.mark.gpu
def test_bound_variant_runs_inside_a_cuda_graph(gpu):
    """The training-loop contract: a bound variant allocates nothing and never syncs with the host,
    so it can be captured in a CUDA graph and replayed on the same buffers."""
    for op_variant in [v for v in all_variants() if v.number == max(x.number for x in v.op.variants)]:
        op, dtype = op_variant.op, op_variant.dtypes[-1]
        # The smallest test shape the variant accepts: op.shapes[0] may be one it refuses (matmul
        # forward's WMMA variant needs C % 8 == 0), and capture works the same at any size.
        dims, config = next((dims, config) for dims in sorted(op.shapes, key=math.prod)
                            for config in op_variant.configs if not op_variant.refusal(dims, dtype, config))
        case = Case(op, dtype, dims, seed=7)
        launch = op_variant.bind(case.tensors | case.scratch_for(op_variant, config), dims, dtype, config)
        launch()  # loads the module outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            with torch.cuda.graph(graph, stream=stream):
                launch()
        case.poison()
        graph.replay()
        torch.cuda.synchronize()
        failures = [c.describe() for c in case.compare_outputs() if not c.passed]
        assert not failures, f"{op_variant.id} under graph replay: " + "\n".join(failures)
