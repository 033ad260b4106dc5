"""The CPU emulator itself: it runs correct kernels correctly and reports the bugs it exists to catch."""
from pathlib import Path

import pytest
import torch

from harness.emulator import EmulationError, build, load_variant
from harness.emulator import EmulatedKernels

pytestmark = pytest.mark.emulated  # CI runs these; a GPU run (-m "not emulated") need not have g++

HEADER = "/*\n * toy forward, variant 1: t\n *\n * Changed: x\n * Teaches: y\n * Run: z\n */\n#include \"common.cuh\"\n"


def kernels(tmp_path: Path, body: str, dtype: str = "fp32") -> EmulatedKernels:
    source = tmp_path / "1_toy.cu"
    source.write_text(HEADER + body)
    library, found = build(source, dtype)
    return EmulatedKernels(library, found, "toy", dtype)


ROW_SUM = r'''
extern "C" __global__ void row_sums(float* out, const floatX* inp, int N, int C) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    if (row >= N) return;  // whole warps only
    float sum = 0.0f;
    for (int i = warp.thread_rank(); i < C; i += 32) sum += to_float(inp[(size_t)row * C + i]);
    sum = cg::reduce(warp, sum, cg::plus<float>{});
    if (warp.thread_rank() == 0) out[row] = sum;
}
extern "C" __global__ void block_sums(float* out, const float* inp, int C) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) sum += inp[(size_t)blockIdx.x * C + i];
    sum = block_reduce_sum(sum, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = sum;
}
'''


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_warp_and_block_reductions_compute_row_sums(tmp_path, dtype):
    k = kernels(tmp_path, ROW_SUM, dtype)
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    inp = torch.randn(7, 45).to(torch_dtype)
    out = torch.full((7,), float("nan"))
    k.row_sums((4,), (64,), (out, inp, 7, 45))  # 8 warps for 7 rows: one warp exits whole
    torch.testing.assert_close(out, inp.float().sum(-1), rtol=1e-5, atol=1e-5)
    if dtype == "fp32":
        out.fill_(float("nan"))
        k.block_sums((7,), (96,), (out, inp, 45))
        torch.testing.assert_close(out, inp.sum(-1), rtol=1e-5, atol=1e-5)


def test_shuffle_after_some_lanes_returned_is_reported(tmp_path):
    k = kernels(tmp_path, r'''
extern "C" __global__ void bad(float* out, int N) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;  // lanes of the last warp leave, the rest shuffle with a full mask
    out[i] = warp_reduce_sum(1.0f);
}''')
    with pytest.raises(EmulationError, match="warp.*undefined on a GPU"):
        k.bad((1,), (64,), (torch.zeros(40), 40))


def test_syncthreads_after_early_return_is_reported(tmp_path):
    k = kernels(tmp_path, r'''
extern "C" __global__ void bad(float* out, int N) {
    __shared__ float tile[64];
    int i = threadIdx.x;
    if (i >= N) return;
    tile[i] = 1.0f;
    __syncthreads();
    out[i] = tile[(i + 1) % N];
}''')
    with pytest.raises(EmulationError, match="__syncthreads"):
        k.bad((1,), (64,), (torch.zeros(64), 40))


def test_barrier_in_divergent_code_hangs_and_is_reported(tmp_path):
    k = kernels(tmp_path, r'''
extern "C" __global__ void bad(float* out) {
    if (threadIdx.x < 32) __syncthreads();
    out[threadIdx.x] = 1.0f;
    __syncthreads();
}''')
    with pytest.raises(EmulationError, match="__syncthreads|hang"):
        k.bad((1,), (64,), (torch.zeros(64),))


WMMA = r'''
#include <mma.h>
using namespace nvcuda;
// One warp: out (16, 16) = a (16, 16) @ b (16, 16) + 1, with b read column-major (b[n * 16 + k]).
extern "C" __global__ void product(float* out, const floatX* a, const floatX* b, int skip_lane) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    if (threadIdx.x == skip_lane) return;  // a lane that skips the warp-wide calls
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}
'''


def test_wmma_computes_the_product_and_is_warp_collective(tmp_path):
    k = kernels(tmp_path, WMMA, "bf16")
    a, b = torch.randn(16, 16).to(torch.bfloat16), torch.randn(16, 16).to(torch.bfloat16)
    out = torch.full((16, 16), float("nan"))
    k.product((1,), (32,), (out, a, b, -1))
    torch.testing.assert_close(out, a.float() @ b.float().t() + 1.0, rtol=1e-5, atol=1e-5)
    with pytest.raises(EmulationError, match="warp.*undefined on a GPU|hang"):
        k.product((1,), (32,), (out, a, b, 5))


def test_a_missing_syncthreads_reads_what_later_warps_have_not_written(tmp_path):
    """Warps run one after another up to each barrier, so a read of another warp's shared slot with no
    __syncthreads between (a race on a GPU) sees the poison, and with the barrier sees the value."""
    source = r'''
extern "C" __global__ void swap_halves(float* out, int synchronise) {
    __shared__ float slots[64];
    slots[threadIdx.x] = (float)threadIdx.x;
    if (synchronise) __syncthreads();
    out[threadIdx.x] = slots[(threadIdx.x + 32) % 64];
}'''
    k = kernels(tmp_path, source)
    out = torch.zeros(64)
    k.swap_halves((1,), (64,), (out, 0))
    assert torch.isnan(out[:32]).all(), "warp 0 read warp 1's slots before warp 1 ran"
    k.swap_halves((1,), (64,), (out, 1))
    torch.testing.assert_close(out, ((torch.arange(64) + 32) % 64).float())


def test_odd_blocks_run_in_reverse_so_a_value_shared_by_thread_0_without_a_barrier_is_caught(tmp_path):
    """The mirror image of the race above: thread 0 writes, every thread reads. Run in order, thread 0
    writes first and the race hides; odd blocks run warps and lanes from the last, so there the
    readers of every warp, lanes 1 to 31 of warp 0 included, see the poison."""
    source = r'''
extern "C" __global__ void broadcast(float* out, const float* inp, int synchronise) {
    __shared__ float shared_value;
    if (threadIdx.x == 0) shared_value = inp[blockIdx.x];
    if (synchronise) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = shared_value;
}'''
    k = kernels(tmp_path, source)
    inp, out = torch.tensor([3.0, 5.0]), torch.zeros(2, 64)
    k.broadcast((2,), (64,), (out, inp, 0))
    assert out[0].eq(3.0).all(), "block 0 runs in order: thread 0 wrote before the others read"
    assert torch.isnan(out[1, 1:]).all() and out[1, 0] == 5.0
    k.broadcast((2,), (64,), (out, inp, 1))
    torch.testing.assert_close(out, torch.tensor([[3.0] * 64, [5.0] * 64]))


def test_an_uninitialised_accumulator_gives_a_wrong_sum(tmp_path):
    """On a GPU an uninitialised register holds garbage; a fiber's fresh stack would hold zeros, and
    `float sum;` would add up correctly by luck. The emulator fills such locals with a pattern."""
    from harness.emulator import uninitialised_pattern_flags

    if not uninitialised_pattern_flags():
        pytest.skip("this C++ compiler has no -ftrivial-auto-var-init=pattern (g++ 12+ or clang)")
    source = r'''
extern "C" __global__ void row_sum(float* out, const float* inp, int C) {
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += inp[threadIdx.x * C + c];
    out[threadIdx.x] = sum;
}
extern "C" __global__ void row_sum_uninitialised(float* out, const float* inp, int C) {
    float sum;
    for (int c = 0; c < C; c++) sum += inp[threadIdx.x * C + c];
    out[threadIdx.x] = sum;
}'''
    k = kernels(tmp_path, source)
    inp, out = torch.ones(32, 5), torch.zeros(32)
    k.row_sum((1,), (32,), (out, inp, 5))
    assert out.eq(5.0).all()
    k.row_sum_uninitialised((1,), (32,), (out, inp, 5))
    assert not out.eq(5.0).any()


def test_wmma_loads_of_a_tile_other_warps_still_write_are_reported(tmp_path):
    """Lanes of a warp that read a tile while other threads write it disagree; that is an error."""
    source = r'''
#include <mma.h>
using namespace nvcuda;
extern "C" __global__ void racy(float* out, const floatX* a) {
    __shared__ __align__(32) floatX tile[256];
    wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> fa;
    for (int i = 0; i < 8; i++) tile[8 * threadIdx.x + i] = a[8 * threadIdx.x + i];
    wmma::load_matrix_sync(fa, tile, 16);  // no __syncwarp: lane 0 loads before lane 1 has written
    out[threadIdx.x] = float(fa.x[0]);
}'''
    k = kernels(tmp_path, source, "bf16")
    with pytest.raises(EmulationError, match="read different values"):
        k.racy((1,), (32,), (torch.zeros(32), torch.randn(256).to(torch.bfloat16)))


def test_misaligned_vector_and_tile_accesses_are_reported(tmp_path):
    """What faults on a GPU (a 128-bit access off a 16-byte boundary, a WMMA tile off a 32-byte one or
    with a stride that is not a multiple of 16 bytes) and silently works on x86 is an error here."""
    source = r'''
#include <mma.h>
using namespace nvcuda;
extern "C" __global__ void copy_packs(floatX* out, const floatX* inp, int offset) {
    store128(out + 8 * threadIdx.x, load128(inp + offset + 8 * threadIdx.x));
}
extern "C" __global__ void load_tile(float* out, const floatX* a, int offset, int ldm) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, a + offset, ldm);
    out[threadIdx.x] = float(fa.x[0]);
}'''
    k = kernels(tmp_path, source, "bf16")
    inp, out = torch.randn(512).to(torch.bfloat16), torch.zeros(256, dtype=torch.bfloat16)
    k.copy_packs((1,), (32,), (out, inp, 8))  # 16 bytes in: aligned
    torch.testing.assert_close(out, inp[8:264])
    with pytest.raises(EmulationError, match="load128: address .* not aligned to 16 bytes"):
        k.copy_packs((1,), (32,), (out, inp, 4))  # 8 bytes in
    k.load_tile((1,), (32,), (torch.zeros(32), inp, 16, 16))  # 32 bytes in, 32-byte rows: fine
    with pytest.raises(EmulationError, match="load_matrix_sync: address .* not aligned to 32 bytes"):
        k.load_tile((1,), (32,), (torch.zeros(32), inp, 8, 16))
    with pytest.raises(EmulationError, match="ldm = 12 elements is not a multiple of 16 bytes"):
        k.load_tile((1,), (32,), (torch.zeros(32), inp, 0, 12))


def test_async_copies_land_only_when_waited_for(tmp_path):
    """cp.async through cuda_pipeline.h: a copy is carried out when a __pipeline_wait_prior covers its
    batch, so reading shared memory before the wait sees the poison."""
    source = r'''
#include <cuda_pipeline.h>
extern "C" __global__ void staged(float* out, const float* inp, int wait) {
    __shared__ __align__(16) float tile[128];
    __pipeline_memcpy_async(&tile[4 * threadIdx.x], &inp[4 * threadIdx.x], 16);
    __pipeline_commit();
    __pipeline_memcpy_async(&tile[64 + 4 * threadIdx.x], &inp[64 + 4 * threadIdx.x], 16);
    __pipeline_commit();
    if (wait) __pipeline_wait_prior(1);  // the first batch only
    __syncthreads();
    for (int i = 0; i < 4; i++) out[4 * threadIdx.x + i] = tile[4 * threadIdx.x + i];
    for (int i = 0; i < 4; i++) out[64 + 4 * threadIdx.x + i] = tile[64 + 4 * threadIdx.x + i];
}'''
    k = kernels(tmp_path, source)
    inp, out = torch.randn(128), torch.zeros(128)
    k.staged((1,), (16,), (out, inp, 0))
    assert torch.isnan(out).all(), "nothing waited for, nothing landed"
    k.staged((1,), (16,), (out, inp, 1))
    torch.testing.assert_close(out[:64], inp[:64])
    assert torch.isnan(out[64:]).all(), "the newest batch was not waited for"


def test_a_copy_into_a_buffer_another_warp_still_reads_is_caught(tmp_path):
    """Double buffering's hazard: warp 0 refills the tile warp 1 reads, with a copy that stays in
    flight past the barrier (wait_prior(1)), and no barrier between warp 1's read and the refill. A
    GPU may land the copy at once. Blocks 2 and 3 of every 4 land copies at issue; block 3 runs its
    warps in reverse, so warp 0 is the last to reach the first barrier and the first to go on past
    it, and refills the tile before warp 1 reads it. With the barrier, every block is right."""
    source = r'''
#include <cuda_pipeline.h>
extern "C" __global__ void refill(float* out, const float* first, const float* second, int barrier) {
    __shared__ __align__(16) float tile[64];
    const int t = threadIdx.x;  // 64 threads: warp 0 copies, warp 1 reads what warp 0 copied
    if (t < 16) __pipeline_memcpy_async(&tile[4 * t], &first[4 * t], 16);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    const float seen = t >= 32 ? tile[t - 32] : 0.0f;
    if (barrier) __syncthreads();  // the barrier that ends the tile's use before it is refilled
    if (t < 16) __pipeline_memcpy_async(&tile[4 * t], &second[4 * t], 16);
    __pipeline_commit();
    __pipeline_wait_prior(1);
    __syncthreads();
    __pipeline_wait_prior(0);
    out[blockIdx.x * 64 + t] = seen;
}'''
    k = kernels(tmp_path, source)
    first, second = torch.randn(64), torch.randn(64)
    for barrier, wrong_blocks in ((1, []), (0, [3])):
        out = torch.zeros(4 * 64)
        k.refill((4,), (64,), (out, first, second, barrier))
        for block in range(4):
            seen = out[64 * block + 32:64 * block + 64]
            assert torch.equal(seen, second[:32] if block in wrong_blocks else first[:32]), (barrier, block)


def test_shared_memory_is_poisoned_not_zeroed(tmp_path):
    k = kernels(tmp_path, r'''
extern "C" __global__ void reads_unwritten_shared(float* out) {
    extern __shared__ float scratch[];
    out[blockIdx.x * blockDim.x + threadIdx.x] = scratch[threadIdx.x];
}''')
    out = torch.zeros(2 * 32)
    k.reads_unwritten_shared((2,), (32,), (out,), shared_mem=32 * 4)
    assert torch.isnan(out).all()


def test_every_static_shared_array_of_one_declaration_is_shared_and_poisoned(tmp_path):
    """`__shared__ T a, b[4];` declares two shared arrays: both must be registered as the block's
    shared memory (poisoned per block; what ldmatrix and the access profile recognise as shared)."""
    k = kernels(tmp_path, r'''
extern "C" __global__ void reads_unwritten_static_shared(float* out) {
    __shared__ float first[32], second[32];
    if (threadIdx.x == 0) first[0] = 1.0f;
    __syncthreads();
    out[blockIdx.x * 64 + threadIdx.x] = first[threadIdx.x];
    out[blockIdx.x * 64 + 32 + threadIdx.x] = second[threadIdx.x];
}''')
    out = torch.zeros(2 * 64)
    k.reads_unwritten_static_shared((2,), (32,), (out,))
    for block in range(2):
        assert out[64 * block] == 1.0 and torch.isnan(out[64 * block + 1:64 * block + 64]).all()


def test_shared_arrays_declared_in_an_included_header_are_registered_too(tmp_path):
    """A header under kernels/ (a tiled product's slices) is put through the same transformation as
    the variant, in a mirror of kernels/ that the emulator's -I options name first; #line keeps its
    accesses named after the original file."""
    from harness.compile import KERNELS_DIR
    from harness.emulator import transformed_headers

    source = tmp_path / "1_toy.cu"
    source.write_text(HEADER + '#include "matmul/mma_product.cuh"\n')
    options = transformed_headers(source, tmp_path / "mirror")
    assert options == [f"-I{tmp_path}", f"-I{tmp_path / 'mirror'}"]
    copy = (tmp_path / "mirror" / "matmul" / "mma_product.cuh").read_text()
    assert copy.startswith(f'#line 1 "{KERNELS_DIR / "matmul" / "mma_product.cuh"}"')
    assert "emu::register_shared(&a_slices, sizeof(a_slices));" in copy
    assert "emu::register_shared(&b_slices, sizeof(b_slices));" in copy
    assert (tmp_path / "mirror" / "staged_copy.cuh").exists()  # included by the header, in turn


def test_launch_lines_are_checked_against_the_signature(tmp_path):
    k = kernels(tmp_path, ROW_SUM)
    inp = torch.randn(3, 32)
    with pytest.raises(TypeError, match="takes 4 arguments .* passed 3"):
        k.row_sums((1,), (96,), (torch.zeros(3), inp, 3))
    with pytest.raises(TypeError, match="dtype torch.float64, the kernel reads torch.float32"):
        k.row_sums((1,), (96,), (torch.zeros(3, dtype=torch.float64), inp, 3, 32))
    with pytest.raises(TypeError, match="passes 3.0 as float32, which a int parameter misreads"):
        k.row_sums((1,), (96,), (torch.zeros(3), inp, 3.0, 32))
    with pytest.raises(TypeError, match="expected a tensor"):
        k.row_sums((1,), (96,), (3, inp, 3, 32))
    with pytest.raises(AttributeError, match="has no kernel named 'row_sum'"):
        k.row_sum


def test_scalars_are_converted_as_a_gpu_launch_converts_them(tmp_path):
    """harness.gpu picks a scalar's C type from the Python value: an int for a float parameter would
    reach the GPU as int32 bits (2 read as 2.8e-45), and an int past int32 cannot be passed at all."""
    k = kernels(tmp_path, r'''
extern "C" __global__ void scale(float* out, float factor, int N) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = factor * i;
}''')
    out = torch.zeros(4)
    k.scale((1,), (32,), (out, 2.0, 4))
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]
    with pytest.raises(TypeError, match="passes 2 as int32, which a float parameter misreads"):
        k.scale((1,), (32,), (out, 2, 4))
    with pytest.raises(OverflowError, match="argument 2 .* does not fit in int32"):
        k.scale((1,), (32,), (out, 2.0, 2**31))


def test_out_of_bounds_write_is_caught_by_the_guard_zones():
    from harness.check import Case, run_check
    from kernels.layernorm.forward import FORWARD

    variant = FORWARD.variant_by_number(1)
    case = Case(FORWARD, "fp32", (1, 3, 64), seed=0, device="cpu")
    launch = variant.bind(case.tensors, case.dims, "fp32", {"block_size": 32}, device="cpu")

    def launch_then_overrun():
        launch()
        base = case._guards["rstd"][0]
        base[1024 + 3] = 0.0  # one element past rstd's end, as an unguarded tail would write

    result = run_check(case, launch_then_overrun, "overrun")
    assert result.out_of_bounds == ["rstd"]
    assert not result.passed


FAR_OFF = r'''
// `mebi` counts 2^20 floats: an index gone wrong by that much, as a wrong stride or sign would.
extern "C" __global__ void far_write(float* out, int mebi) {
    long long i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i + (blockIdx.x == 1 && threadIdx.x == 5 ? (long long)mebi << 20 : 0)] = 2.0f;
}
extern "C" __global__ void far_read(float* out, const float* inp, int mebi) {
    out[threadIdx.x] = inp[threadIdx.x == 3 ? (long long)mebi << 20 : threadIdx.x];
}
'''


def test_an_access_far_out_of_bounds_is_reported_and_the_process_goes_on(tmp_path):
    """Past the guard zones an access faults. That must be the launch's error, naming the thread, and
    not the end of the Python process (and of every test after it); later launches still work."""
    k = kernels(tmp_path, FAR_OFF)
    out, inp = torch.zeros(64), torch.ones(32)
    far = -(1 << 20)  # 4 TiB below the buffer: nothing is mapped there
    with pytest.raises(EmulationError, match=r"block \(1,0,0\) thread 5: memory fault .*out-of-bounds"):
        k.far_write((2,), (32,), (out, far))
    with pytest.raises(EmulationError, match=r"thread 3: memory fault"):
        k.far_read((1,), (32,), (out, inp, far))
    out.zero_()
    k.far_write((2,), (32,), (out, 0))
    assert out.eq(2.0).all()


def test_a_stack_overflow_a_wild_pointer_and_a_second_error_are_reported_as_they_are(tmp_path):
    """A fiber's stack ends at an inaccessible page, so runaway recursion faults there (it used to
    write over the heap and abort the process later); an uninitialised pointer is named as such;
    and when a thread faults after another thread's error, the first error is the one reported."""
    k = kernels(tmp_path, r'''
__device__ float deep(int n) {
    volatile float frame[1024];  // 4 KB a call
    frame[n % 1024] = (float)n;
    return n == 0 ? frame[0] : deep(n - 1) + frame[n % 1024];
}
extern "C" __global__ void recurse(float* out, int depth) { out[threadIdx.x] = deep(depth); }
extern "C" __global__ void wild(float* out) {
    float* pointer;  // never set: the emulator fills it with 0xFE bytes, as a GPU leaves garbage
    out[threadIdx.x] = *pointer;
}
extern "C" __global__ void misaligned_then_fault(float* out, int mebi) {
    if (threadIdx.x == 0) out[0] = load128(out + 1)[0];  // a 16-byte load from a 4-byte aligned address
    if (threadIdx.x == 3) out[(long long)mebi << 20] = 1.0f;
}''')
    out = torch.zeros(64)
    k.recurse((1,), (32,), (out, 8))  # 32 KB of stack: fine
    with pytest.raises(EmulationError, match="memory fault .*stack overflow"):
        k.recurse((1,), (32,), (out, 200))  # 800 KB
    from harness.emulator import uninitialised_pattern_flags

    if uninitialised_pattern_flags():
        with pytest.raises(EmulationError, match="non-canonical address"):
            k.wild((1,), (32,), (out,))
    with pytest.raises(EmulationError, match="thread 0: .*not aligned") as caught:
        k.misaligned_then_fault((1,), (32,), (out, -(1 << 20)))
    assert "memory fault" not in str(caught.value)
    k.recurse((1,), (32,), (out, 8))  # and the emulator still works
    assert out[:32].ne(0).all()


def test_an_access_just_past_the_guard_zones_faults(tmp_path):
    """The harness's CPU buffers end within 256 bytes of inaccessible memory (harness/emulator/fenced.py):
    an overrun past the NaN guard zone is a reported fault, not a write into someone else's memory."""
    from harness.check import GUARD_ELEMENTS
    from harness.emulator.fenced import fenced_empty

    k = kernels(tmp_path, r'''
extern "C" __global__ void write_at(float* out, int index) { out[index] = 1.0f; }''')
    base = fenced_empty(64 + 2 * GUARD_ELEMENTS, torch.float32).fill_(float("nan"))
    out = base[GUARD_ELEMENTS:GUARD_ELEMENTS + 64]
    assert base.data_ptr() % 256 == 0  # aligned as a cudaMalloc'd buffer is
    k.write_at((1,), (1,), (out, 63 + GUARD_ELEMENTS))  # the guard zone's last element: mapped
    assert base[-1] == 1.0
    with pytest.raises(EmulationError, match="memory fault"):
        k.write_at((1,), (1,), (out, 64 + GUARD_ELEMENTS + 64))  # 256 bytes past the zone
    with pytest.raises(EmulationError, match="memory fault"):
        k.write_at((1,), (1,), (out, -GUARD_ELEMENTS - 2048))  # 8 KB before it: past the slack of its first page


def test_fenced_buffers_are_unmapped_when_their_tensors_are_gone():
    import gc

    from harness.emulator.fenced import fenced_empty

    tensor = fenced_empty(1000, torch.bfloat16)
    view = tensor[10:20].view(2, 5)
    address = tensor.data_ptr()

    def mapped() -> bool:
        for line in Path("/proc/self/maps").read_text().splitlines():
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            if low <= address < high:
                return True
        return False

    if not Path("/proc/self/maps").exists():
        pytest.skip("no /proc/self/maps on this platform")
    assert mapped()
    del tensor
    gc.collect()
    assert mapped()  # the view still holds it
    del view
    gc.collect()
    assert not mapped()


def test_library_variants_run_their_torch_calls_on_the_cpu():
    class Library:
        source = None
        id = "x/1"

    assert load_variant(Library(), "fp32").num_sms > 0


def test_a_write_past_the_dynamic_shared_memory_the_launch_gave_is_reported(tmp_path):
    k = kernels(tmp_path, r'''
extern "C" __global__ void spill(float* out, int n) {
    extern __shared__ float scratch[];
    scratch[threadIdx.x] = (float)threadIdx.x;  // n floats are needed; the launch decides what there is
    __syncthreads();
    out[threadIdx.x] = scratch[n - 1 - threadIdx.x];
}
''')
    out = torch.full((64,), float("nan"))
    k.spill((1,), (64,), (out, 64), shared_mem=64 * 4)
    assert out.tolist() == [float(63 - i) for i in range(64)]
    with pytest.raises(EmulationError, match="past the 240 bytes of dynamic shared memory the launch gave it"):
        k.spill((1,), (64,), (out, 64), shared_mem=60 * 4)
