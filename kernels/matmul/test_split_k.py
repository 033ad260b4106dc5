"""Split-K's cap (kernels/matmul/backward.py): a grid already wide is split no further, and the
launch and its scratch agree on how far it is split."""
import pytest

from harness.check import Case, check_variant
from harness.registry import all_variants
from kernels.matmul import backward
from kernels.matmul.backward import SPLIT_CONFIGS, effective_splits
from kernels.matmul.shapes import BENCH_SHAPE

SPLIT_K = next(v for v in all_variants() if v.op.id == "matmul.backward" and v.number == 4)
# Every variant that splits (4 on WMMA, 5 on mma.sync) shares the cap and the scratch.
SPLIT_VARIANTS = [v for v in all_variants() if v.op.id == "matmul.backward" and v.number in (4, 5)]
GPT2_CLASSIFIER = SPLIT_K.op.make_dims((32, 1024, 768, 50304))  # B = 32, T = 1024, the padded vocabulary


def test_the_bench_sweep_runs_every_split_as_configured():
    dims = SPLIT_K.op.make_dims(BENCH_SHAPE)
    assert [effective_splits(dims, c["splits"]) for c in SPLIT_CONFIGS] == [c["splits"] for c in SPLIT_CONFIGS]


def test_the_classifier_backward_is_not_split_and_its_scratch_stays_unsplit():
    sizes = []
    for config in SPLIT_CONFIGS:
        assert effective_splits(GPT2_CLASSIFIER, config["splits"]) == 1
        specs = SPLIT_K.scratch_specs(GPT2_CLASSIFIER, "bf16", config)
        sizes.append(specs["dweight_partials"].shape(GPT2_CLASSIFIER))
    assert set(sizes) == {(1, 50304, 768)}  # 155 MB of fp32 partials, not 16 times that


@pytest.mark.emulated
@pytest.mark.parametrize("cap,expected", [(12, 2), (1, 1)])
@pytest.mark.parametrize("variant", SPLIT_VARIANTS, ids=lambda v: v.id)
def test_a_capped_split_is_still_correct(monkeypatch, variant, cap, expected):
    """At (2, 70, 136, 264) the unsplit grid has 2 x 3 blocks. A cap of 12 blocks leaves 2 splits
    of every config, a cap of 1 none: the results still match the reference, and the guard zones
    around the scratch show the launch wrote no more partials than were allocated."""
    monkeypatch.setattr(backward, "SPLIT_GRID_CAP", cap)
    case = Case(variant.op, "bf16", (2, 70, 136, 264), seed=4, device="cpu")
    for config in [{"splits": 16}, {"splits": 4}]:
        assert effective_splits(case.dims, config["splits"]) == expected
        result, _ = check_variant(variant, case, config)
        assert result.passed, result.describe()
