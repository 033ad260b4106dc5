/*
 * matmul forward, variant 5: tensor cores fed by asynchronous copies, two slices in flight
 *
 * Changed: variant 4 copied a K-slice into shared memory, waited, computed, and only then started
 * the next copy, so the tensor cores idled through every copy and the memory system through every
 * computation. Here each operand has two shared slices: while the warps multiply slice k, the
 * copies of slice k + 1 are already on their way. The copies are cp.async (__pipeline_memcpy_async:
 * 16 bytes from global straight into shared memory, not through registers), committed as one batch
 * per slice; __pipeline_wait_prior(1) waits for all but the newest batch. The epilogue reuses the
 * slices' memory for the staging tiles, which keeps the block at 40 KB of shared memory.
 * Teaches: latency hiding by software pipelining. The loop's shape is: issue copy k + 1, wait for
 * copy k, barrier, compute k, barrier (so nobody overwrites a slice another warp still reads). Two
 * stages are the minimum that overlaps; deeper pipelines (3 to 4 stages) and Hopper's TMA and wgmma
 * are what cuBLAS adds on top. bf16 only; needs K % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --variant 5
 */
#include <mma.h>

#include "common.cuh"
#include "staged_copy.cuh"  // copy_window: (cp.async) copies into shared slices, zero-filled tails

#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

using namespace nvcuda;

constexpr int TILE_M = 128, TILE_N = 128, TILE_K = 32;
constexpr int WARPS_M = 2, WARPS_N = 4;   // 8 warps: 256 threads a block
constexpr int WARP_M = TILE_M / WARPS_M;  // 64 rows of outputs a warp
constexpr int WARP_N = TILE_N / WARPS_N;  // 32 columns
constexpr int FRAGS_M = WARP_M / 16, FRAGS_N = WARP_N / 16;
constexpr int ROW_PITCH = TILE_K + 8;     // shared row length: 80 bytes, a multiple of 16
constexpr int THREADS = 32 * WARPS_M * WARPS_N;
constexpr int STAGES = 2;

struct Slices {
    floatX inp[STAGES][TILE_M][ROW_PITCH];
    floatX weight[STAGES][TILE_N][ROW_PITCH];
};
static_assert(sizeof(float) * WARPS_M * WARPS_N * 16 * 16 <= sizeof(Slices), "the staging tiles fit in the slices");

// Queue the cp.async copies of both operands' K-slice starting at k0 into stage `stage`.
__device__ __forceinline__ void copy_slices(Slices& slices, int stage, const floatX* inp, const floatX* weight,
                                            int row0, int col0, int M, int N, int K, int k0) {
    copy_window<TILE_M, TILE_K, ROW_PITCH, THREADS, true>(slices.inp[stage], inp, K, row0, M, k0, K);
    copy_window<TILE_N, TILE_K, ROW_PITCH, THREADS, true>(slices.weight[stage], weight, K, col0, N, k0, K);
}

extern "C" __global__ void __launch_bounds__(THREADS) matmul_forward_cp_async(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    __shared__ __align__(128) Slices slices;

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_row = (warp / WARPS_N) * WARP_M;
    const int warp_col = (warp % WARPS_N) * WARP_N;
    const int row0 = blockIdx.y * TILE_M;
    const int col0 = blockIdx.x * TILE_N;
    const int num_slices = (K + TILE_K - 1) / TILE_K;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FRAGS_M][FRAGS_N];
#pragma unroll
    for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_N; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    }

    // Prologue: slice 0 on its way.
    copy_slices(slices, 0, inp, weight, row0, col0, M, N, K, 0);
    __pipeline_commit();

    for (int s = 0; s < num_slices; s++) {
        const int stage = s % STAGES;
        if (s + 1 < num_slices) {  // slice s + 1 into the other stage, freed by the barrier ending s - 1
            copy_slices(slices, (s + 1) % STAGES, inp, weight, row0, col0, M, N, K, (s + 1) * TILE_K);
        }
        __pipeline_commit();      // a batch every iteration (empty at the end), so the count below holds
        __pipeline_wait_prior(1); // this thread's copies of slice s have landed
        __syncthreads();          // and every other thread's too
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> a[FRAGS_M];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> b[FRAGS_N];
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
                wmma::load_matrix_sync(a[i], &slices.inp[stage][warp_row + 16 * i][kk], ROW_PITCH);
            }
#pragma unroll
            for (int j = 0; j < FRAGS_N; j++) {
                wmma::load_matrix_sync(b[j], &slices.weight[stage][warp_col + 16 * j][kk], ROW_PITCH);
            }
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
                for (int j = 0; j < FRAGS_N; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
            }
        }
        __syncthreads();  // every warp is done with this stage before iteration s + 1 refills it
    }
    __pipeline_wait_prior(0);  // nothing may still be landing in the memory the staging tiles reuse

    // Epilogue as in variant 4, the staging tiles now living in the slices' memory.
    float* tile = reinterpret_cast<float*>(&slices) + warp * 16 * 16;
#pragma unroll
    for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_N; j++) {
            wmma::store_matrix_sync(tile, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 16 * 16; e += 32) {
                const int row = row0 + warp_row + 16 * i + e / 16;
                const int col = col0 + warp_col + 16 * j + e % 16;
                if (row < M && col < N) out[(size_t)row * N + col] = from_float<floatX>(tile[e] + to_float(bias[col]));
            }
            __syncwarp();
        }
    }
}
