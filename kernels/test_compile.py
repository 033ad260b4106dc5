"""Every variant's .cu file compiles with NVRTC for every dtype and target it declares (no GPU needed),
and every .cu file under kernels/ is a registered variant with a well-formed header."""
import pytest

from harness.compile import KERNELS_DIR, CompileError, compile_cubin
from harness.registry import all_variants

pytestmark = pytest.mark.nvrtc

BUILDS = [(v, dtype, arch) for v in all_variants() if v.source is not None for dtype in v.dtypes for arch in v.archs]


@pytest.mark.parametrize("variant,dtype,arch", BUILDS, ids=[f"{v.id}-{d}-{a}" for v, d, a in BUILDS])
def test_variant_compiles(variant, dtype, arch):
    try:
        cubin = compile_cubin(variant.source, dtype, arch)
    except CompileError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert cubin.stat().st_size > 0


def test_every_cu_file_is_a_registered_variant():
    registered = {v.source.resolve() for v in all_variants() if v.source is not None}
    on_disk = {path.resolve() for path in KERNELS_DIR.rglob("*.cu")}
    assert on_disk - registered == set(), "add the launch lines for these files to their layer's Python contract"
    assert registered, "no variants registered: the registry found nothing"


def test_layernorm_ladders_are_present():
    numbers = {}
    for v in all_variants():
        numbers.setdefault(v.op.id, set()).add(v.number)
    assert {1, 2, 3, 4, 5, 6} <= numbers.get("layernorm.forward", set())
    assert {1, 2, 3} <= numbers.get("layernorm.backward", set())
