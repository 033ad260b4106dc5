"""The emulator's memory-access profile counts what Nsight Compute would for textbook access patterns
(each expected count worked out by hand in the test), and finds the line in a real variant."""
from pathlib import Path

import pytest
import torch

from harness.access_profile import by_line, profile_variant, summary
from harness.emulator import EmulatedKernels, build, recording_accesses

pytestmark = pytest.mark.emulated

HEADER = "/*\n * toy forward, variant 1: t\n *\n * Changed: x\n * Teaches: y\n * Run: z\n */\n#include \"common.cuh\"\n"


def profiled_kernels(tmp_path: Path, body: str, dtype: str = "fp32") -> EmulatedKernels:
    source = tmp_path / "1_toy.cu"
    source.write_text(HEADER + body)
    library, found = build(source, dtype, profiled=True)
    return EmulatedKernels(library, found, "toy", dtype, profiled=True)


def line_of(text: str, body: str) -> str:
    """The toy source's line holding `text` (as addr2line names it)."""
    lines = (HEADER + body).splitlines()
    return f"1_toy.cu:{next(i for i, line in enumerate(lines, 1) if text in line)}"


def only(rows, space: str, write: bool):
    chosen = [r for r in rows if r.space == space and r.write == write]
    assert len(chosen) == 1, chosen
    return chosen[0]


STRIDED = r'''
// Lane i of the grid reads inp[i * stride] and writes out[i].
extern "C" __global__ void gather(float* out, const float* inp, int stride) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = inp[(size_t)i * stride];
}
'''


@pytest.mark.parametrize("stride, sectors_per_request", [(1, 4), (2, 8), (8, 32), (100, 32)])
def test_global_sectors_follow_the_stride_between_lanes(tmp_path, stride, sectors_per_request):
    k = profiled_kernels(tmp_path, STRIDED)
    n = 256  # 8 warps of 32 lanes
    inp, out = torch.randn(n * stride), torch.full((n,), float("nan"))
    with recording_accesses() as launches:
        k.gather((2,), (128,), (out, inp, stride))
    torch.testing.assert_close(out, inp[::stride][:n])
    rows = by_line(launches, "1_toy.cu")
    load, store = only(rows, "global", False), only(rows, "global", True)
    assert load.requests == store.requests == 8
    assert load.lanes == n
    # 32 lanes x 4 bytes: 4 sectors when adjacent; each lane its own sector once 8 floats apart.
    assert load.transactions == 8 * sectors_per_request and load.ideal == 8 * 4
    assert store.transactions == store.ideal == 8 * 4
    assert load.line == store.line == line_of("out[i] = inp", STRIDED)


MASKED = r'''
// Row r of inp is read by lanes 0 .. 4r only: the causal mask's pattern.
extern "C" __global__ void masked(float* out, const float* inp) {
    float sum = 0.0f;
    for (int r = 0; r < 8; r++) {
        if ((int)threadIdx.x <= 4 * r) sum += inp[r * 32 + threadIdx.x];
    }
    out[threadIdx.x] = sum;
}
'''


def test_a_masked_load_in_a_loop_is_one_request_per_iteration(tmp_path):
    """Lane 28 first loads at r = 7. Matching each lane's k-th load would pair that with lane 0's load
    at r = 0 (another row); aligning the lanes' traces pairs it with lane 0's load at r = 7."""
    k = profiled_kernels(tmp_path, MASKED)
    inp, out = torch.randn(8 * 32), torch.full((32,), float("nan"))
    with recording_accesses() as launches:
        k.masked((1,), (32,), (out, inp))
    load = only(by_line(launches, "1_toy.cu"), "global", False)
    assert launches[0].unaligned_lanes == 0
    assert load.requests == 8
    assert load.lanes == sum(4 * r + 1 for r in range(8))
    # row r: 4r + 1 consecutive floats from a 128-byte boundary, ceil((4r + 1) * 4 / 32) sectors
    assert load.transactions == load.ideal == sum(-(-(4 * r + 1) * 4 // 32) for r in range(8))


BANKS = r'''
// Every lane writes tile[lane * stride] (4 bytes) once, then reads the 16 bytes at tile[4 * lane] or,
// with broadcast, everyone reads tile[0].
extern "C" __global__ void banks(float* out, int stride, int broadcast) {
    __shared__ __align__(16) float tile[32 * 33 + 128];
    tile[threadIdx.x * stride] = (float)threadIdx.x;
    for (int i = threadIdx.x; i < 32 * 33 + 128; i += 32) if (i % stride || i / stride >= 32) tile[i] = 0.0f;
    __syncwarp();
    if (broadcast) {
        out[threadIdx.x] = tile[0];
    } else {
        float4 v = reinterpret_cast<const float4*>(tile)[threadIdx.x];
        out[threadIdx.x] = v.x + v.y + v.z + v.w;
    }
}
'''


@pytest.mark.parametrize("stride, wavefronts", [(1, 1), (2, 2), (4, 4), (32, 32), (33, 1)])
def test_shared_wavefronts_count_the_bank_conflicts_of_a_strided_store(tmp_path, stride, wavefronts):
    k = profiled_kernels(tmp_path, BANKS)
    out = torch.full((32,), float("nan"))
    with recording_accesses() as launches:
        k.banks((1,), (32,), (out, stride, 0))
    rows = [r for r in by_line(launches, "1_toy.cu") if r.line == line_of("tile[threadIdx.x * stride] =", BANKS)]
    store = only(rows, "shared", True)
    assert (store.requests, store.transactions, store.ideal) == (1, wavefronts, 1)
    # 32 lanes x 16 contiguous bytes: four phases of eight lanes, each one wavefront.
    vector_load = only(by_line(launches, "1_toy.cu"), "shared", False)
    assert (vector_load.size, vector_load.transactions, vector_load.ideal) == (16, 4, 4)


def test_lanes_reading_one_word_share_a_wavefront(tmp_path):
    k = profiled_kernels(tmp_path, BANKS)
    out = torch.full((32,), float("nan"))
    with recording_accesses() as launches:
        k.banks((1,), (32,), (out, 1, 1))
    broadcast = only(by_line(launches, "1_toy.cu"), "shared", False)
    assert (broadcast.size, broadcast.requests, broadcast.transactions, broadcast.ideal) == (4, 1, 1, 1)
    assert (out == 0.0).all()


TILES = r'''
#include <mma.h>
using namespace nvcuda;
// One warp: a (16 x 16 bf16) staged in shared rows of `pitch` elements, then a @ a^T stored to a
// shared fp32 tile with rows of `score_pitch` floats, copied out.
extern "C" __global__ void tiles(float* out, const floatX* a, int pitch, int score_pitch) {
    __shared__ __align__(32) floatX staged[16 * 40];
    __shared__ __align__(32) float scores[16 * 72];
    for (int i = threadIdx.x; i < 256; i += 32) staged[(i / 16) * pitch + i % 16] = a[i];
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::load_matrix_sync(fa, staged, pitch);
    wmma::load_matrix_sync(fb, staged, pitch);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(scores, acc, score_pitch, wmma::mem_row_major);
    __syncwarp();
    for (int i = threadIdx.x; i < 256; i += 32) out[i] = scores[(i / 16) * score_pitch + i % 16];
}
'''


@pytest.mark.parametrize("pitch, operand_wavefronts", [(16, 8), (24, 4), (32, 16), (40, 4)])
@pytest.mark.parametrize("score_pitch, accumulator_wavefronts", [(16, 4 * 4), (64, 4 * 8), (24, 4 * 2)])
def test_tile_padding_decides_the_tensor_core_tiles_bank_conflicts(tmp_path, pitch, operand_wavefronts,
                                                                   score_pitch, accumulator_wavefronts):
    """Operand tiles as ldmatrix reads them: each phase the same 16-byte column of eight rows. Rows of
    16 bf16 (32 bytes) put rows r and r + 4 in the same banks: 2 wavefronts a phase, 8 a tile where 4
    is ideal; 32 (64 bytes) puts every other row together (16); 24 and 40 (48 and 80 bytes) spread the
    eight rows over all 32 banks.
    Accumulators (8-byte pairs, four rows of 32 bytes per half-warp phase): a pitch of 16 floats puts
    rows r and r + 2 together (2 wavefronts a phase), 64 all four rows (4), 24 none (1)."""
    k = profiled_kernels(tmp_path, TILES, "bf16")
    a = torch.randn(16, 16).to(torch.bfloat16)
    out = torch.full((16, 16), float("nan"))
    with recording_accesses() as launches:
        k.tiles((1,), (32,), (out, a, pitch, score_pitch))
    torch.testing.assert_close(out, a.float() @ a.float().t(), rtol=1e-5, atol=1e-5)
    rows = by_line(launches, "1_toy.cu")
    operands = [r for r in rows if r.space == "shared" and not r.write and r.size == 16]
    assert [(r.requests, r.transactions, r.ideal) for r in operands] == [(1, operand_wavefronts, 4)] * 2
    accumulator = [r for r in rows if r.space == "shared" and r.write and r.size == 8]
    assert [(r.requests, r.transactions, r.ideal) for r in accumulator] == [(4, accumulator_wavefronts, 4 * 2)]


def test_a_variant_s_uncoalesced_lines_are_named():
    """layernorm's variant 1 gives each thread a row: a warp's 32 loads of x land 1000 floats apart,
    one sector each (4 bytes used of 32). Variant 3 gives the row to a warp: every sector used."""
    from harness.check import Case
    from harness.registry import find_ops

    op = find_ops("layernorm", "forward")[0]
    case = Case(op, "fp32", op.make_dims((3, 37, 1000)), device="cpu")
    efficiency = {}
    for number in (1, 3):
        variant = next(v for v in op.variants if v.number == number)
        result, profile = profile_variant(variant, case, variant.configs[0])
        assert result.passed and profile.unaligned_lanes == 0
        rows = profile.rows
        assert all(r.line.startswith(variant.source.name + ":") for r in rows)
        loads = [r for r in rows if r.space == "global" and not r.write]
        efficiency[number] = sum(r.ideal for r in loads) / sum(r.transactions for r in loads)
        assert "global loads" in summary(profile)
    assert efficiency[1] < 0.2 and efficiency[3] > 0.99


def test_the_tensor_core_attention_score_tiles_are_stored_without_bank_conflicts():
    """The score tiles' rows are 72 floats apart (kernels/attention/tiles.cuh, SCORE_PITCH): a
    fragment store's four rows per phase then fall on different banks. At 64 floats they share the
    same banks, and the stores take four times the wavefronts."""
    from harness.check import Case
    from harness.registry import find_ops

    op = find_ops("attention", "forward")[0]
    variant = next(v for v in op.variants if v.number == 3)
    case = Case(op, "bf16", op.make_dims((1, 70, 2, 64)), device="cpu")
    result, profile = profile_variant(variant, case, variant.configs[0])
    assert result.passed
    stores = [r for r in profile.rows if r.space == "shared" and r.write]
    assert any(r.size == 8 for r in stores)  # the accumulator fragments' stores are among them
    assert sum(r.transactions for r in stores) == sum(r.ideal for r in stores)


@pytest.mark.parametrize("pass_name, padded, swizzled", [("forward", 5, 6), ("backward", 4, 5)])
def test_swizzled_slices_free_the_copies_stores_of_bank_conflicts(pass_name, padded, swizzled):
    """matmul forward 5 pads its 64-byte slice rows to 80 bytes: ldmatrix's eight rows per phase then
    fall on different banks, but a phase of the copies' 16-byte stores (two rows of four packs) puts
    its last pack on the banks of its first, and takes two wavefronts (backward 4's slices of inp-side
    rows likewise). The mma.sync variants swizzle unpadded rows instead (kernels/staged_copy.cuh,
    swizzled<>): every shared access at its ideal count."""
    from harness.check import Case
    from harness.registry import find_ops

    op = find_ops("matmul", pass_name)[0]
    case = Case(op, "bf16", op.make_dims((2, 40, 64, 160)), device="cpu")
    shared = {}
    for number in (padded, swizzled):
        variant = next(v for v in op.variants if v.number == number)
        result, profile = profile_variant(variant, case, variant.configs[0])
        assert result.passed and profile.unaligned_lanes == 0
        shared[number] = [r for r in profile.rows if r.space == "shared"]
    copy_stores = [r for r in shared[padded] if r.write and r.size == 16]
    operand_loads = [r for r in shared[padded] if not r.write and r.size == 16]
    assert any(r.transactions == 2 * r.ideal for r in copy_stores)
    assert all(r.transactions == r.ideal for r in operand_loads)
    assert any(r.write for r in shared[swizzled]) and any(not r.write for r in shared[swizzled])
    assert all(r.transactions == r.ideal for r in shared[swizzled])


def test_flash_attention_in_registers_moves_about_half_as_much_through_shared_memory():
    """Flash attention forward 3 keeps scores, probabilities and output in mma.sync's registers: its
    shared traffic is the swizzled q, k and v tiles alone, conflict-free, where variant 2 also
    round-trips every tile's scores and P v through shared memory."""
    from harness.check import Case
    from harness.registry import find_ops

    op = find_ops("flash_attention", "forward")[0]
    case = Case(op, "bf16", op.make_dims((1, 70, 2, 64)), device="cpu")
    wavefronts = {}
    for number in (2, 3):
        variant = next(v for v in op.variants if v.number == number)
        result, profile = profile_variant(variant, case, variant.configs[0])
        assert result.passed and profile.unaligned_lanes == 0
        shared = [r for r in profile.rows if r.space == "shared"]
        assert sum(r.transactions for r in shared) == sum(r.ideal for r in shared)
        wavefronts[number] = sum(r.transactions for r in shared)
    assert wavefronts[3] < 0.6 * wavefronts[2]
