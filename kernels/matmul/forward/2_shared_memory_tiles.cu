/*
 * matmul forward, variant 2: shared-memory tiles, a block of outputs per thread
 *
 * Changed: a block of 16 x 16 threads owns a TILE x TILE block of outputs (TILE = 32, 64 or 128,
 * a launch configuration). It walks K in steps of 32: the block copies a TILE x 32 slice of inp and
 * of weight into shared memory, and each thread then accumulates its TM x TM outputs (TM = TILE / 16)
 * in registers from those slices.
 * Teaches: tiling is reuse. A value copied into shared memory is read by 16 threads, and a value
 * loaded into a register is used TM times, so global loads fall from two per multiply-add to
 * 2 / TILE and shared loads to 2 / TM. A thread owns rows ty, ty + 16, ... and columns tx, tx + 16,
 * ... (strided, not a contiguous TM x TM patch): a warp then reads 16 consecutive shared words (no
 * bank conflicts) and stores 16 consecutive outputs of a row (coalesced). Tails cost nothing extra:
 * slices are zero-filled past M, N and K, and only the stores are guarded.
 * Run: python bench.py matmul --variant 2
 */
#include "common.cuh"

#define THREADS_PER_SIDE 16  // 16 x 16 = 256 threads a block, whatever the tile
#define TILE_K 32            // the K extent of one shared-memory slice

// out (M, N) = inp (M, K) @ weight (N, K)^T + bias (N,), with M = B * T, N = OC, K = C.
// Both operands are K-contiguous, so both slices are copied the same way.
template <int TM>
__device__ __forceinline__ void matmul_tiled(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    constexpr int TILE = THREADS_PER_SIDE * TM;
    constexpr int THREADS = THREADS_PER_SIDE * THREADS_PER_SIDE;
    // Stored k-major ([k][row]) so the inner loop reads a row of the slice; the extra column makes the
    // row length 1 mod 32 words, so the transposing stores of one warp (32 k values of one row) hit
    // 32 different banks.
    __shared__ float inp_slice[TILE_K][TILE + 1];
    __shared__ float weight_slice[TILE_K][TILE + 1];

    const int tx = threadIdx.x % THREADS_PER_SIDE;  // output columns tx + 16 * j
    const int ty = threadIdx.x / THREADS_PER_SIDE;  // output rows ty + 16 * i
    const int row0 = blockIdx.y * TILE;
    const int col0 = blockIdx.x * TILE;

    float acc[TM][TM];
#pragma unroll
    for (int i = 0; i < TM; i++) {
#pragma unroll
        for (int j = 0; j < TM; j++) acc[i][j] = 0.0f;
    }

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        // Copy both slices: TILE * TILE_K values each, TM * 2 per thread. A warp reads 32 consecutive
        // k of one row (one 128-byte line in fp32). Out-of-range values are stored as zero, so the
        // products below need no guards.
#pragma unroll
        for (int l = 0; l < TILE * TILE_K / THREADS; l++) {
            const int e = threadIdx.x + l * THREADS;
            const int k = e % TILE_K;
            const int r = e / TILE_K;
            const bool k_ok = k0 + k < K;
            const int row = row0 + r;
            const int col = col0 + r;
            inp_slice[k][r] = (k_ok && row < M) ? to_float(inp[(size_t)row * K + k0 + k]) : 0.0f;
            weight_slice[k][r] = (k_ok && col < N) ? to_float(weight[(size_t)col * K + k0 + k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE_K; k++) {
            float a[TM], b[TM];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = inp_slice[k][ty + THREADS_PER_SIDE * i];
#pragma unroll
            for (int j = 0; j < TM; j++) b[j] = weight_slice[k][tx + THREADS_PER_SIDE * j];
#pragma unroll
            for (int i = 0; i < TM; i++) {
#pragma unroll
                for (int j = 0; j < TM; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
        }
        __syncthreads();  // every thread is done reading the slices before the next copy overwrites them
    }

#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int row = row0 + ty + THREADS_PER_SIDE * i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < TM; j++) {
            const int col = col0 + tx + THREADS_PER_SIDE * j;
            if (col < N) out[(size_t)row * N + col] = from_float<floatX>(acc[i][j] + to_float(bias[col]));
        }
    }
}

// One kernel per tile size (the grid is (ceil(N / TILE), ceil(M / TILE)), 256 threads a block).
extern "C" __global__ void __launch_bounds__(256) matmul_forward_tiled_32(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    matmul_tiled<2>(out, inp, weight, bias, M, N, K);
}

extern "C" __global__ void __launch_bounds__(256) matmul_forward_tiled_64(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    matmul_tiled<4>(out, inp, weight, bias, M, N, K);
}

// 64 accumulators a thread: the second bound asks ptxas to fit two blocks an SM (at most 128
// registers a thread), which the bf16 build for sm_80 would otherwise just miss.
extern "C" __global__ void __launch_bounds__(256, 2) matmul_forward_tiled_128(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    matmul_tiled<8>(out, inp, weight, bias, M, N, K);
}
