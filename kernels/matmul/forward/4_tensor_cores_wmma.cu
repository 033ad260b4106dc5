/*
 * matmul forward, variant 4: tensor cores through WMMA (bf16 in, fp32 accumulate)
 *
 * Changed: the multiply-adds of variant 2's inner loop become warp-wide matrix instructions. A
 * block of 8 warps owns a 128 x 128 block of outputs and walks K in slices of 32, staged in shared
 * memory with 128-bit copies as before; each warp owns a 64 x 32 patch, held as 4 x 2 accumulator
 * fragments of 16 x 16 fp32 values, and for every 16-wide step of K it loads 4 fragments of inp and
 * 2 of weight from shared memory and issues 8 mma_sync. The epilogue passes each accumulator
 * through a small per-warp staging tile in shared memory, so the bias add and the bf16 stores are
 * ordinary per-element code whatever the fragment's hidden layout.
 * Teaches: one mma_sync does 16 x 16 x 16 = 4096 multiply-adds for the whole warp, which is where
 * the H100's bf16 rate (some 15x its fp32 rate) lives; the fragments' element-to-lane mapping is
 * opaque, so data goes in and out through load/store_matrix_sync. The operands suit the tensor
 * cores without copies: inp (M, K) is matrix_a row-major, and weight (N, K) is exactly weight^T
 * (K, N) read column-major. The shared rows are padded from 32 to 40 values so the fragment loads
 * of neighbouring rows spread over the banks. What is still missing against cuBLAS: copies that
 * overlap the math (cp.async, several slices in flight) and Hopper's wgmma. bf16 only (fp32 has
 * no tensor-core path without TF32); needs K % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --variant 4
 */
#include <mma.h>

#include "common.cuh"
#include "staged_copy.cuh"  // copy_window: 16-byte copies into shared slices, zero-filled tails

#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

using namespace nvcuda;

constexpr int TILE_M = 128, TILE_N = 128, TILE_K = 32;
constexpr int WARPS_M = 2, WARPS_N = 4;        // 8 warps: 256 threads a block
constexpr int WARP_M = TILE_M / WARPS_M;       // 64 rows of outputs a warp
constexpr int WARP_N = TILE_N / WARPS_N;       // 32 columns
constexpr int FRAGS_M = WARP_M / 16, FRAGS_N = WARP_N / 16;
constexpr int ROW_PITCH = TILE_K + 8;          // shared row length: 80 bytes, a multiple of 16
constexpr int THREADS = 32 * WARPS_M * WARPS_N;

extern "C" __global__ void __launch_bounds__(THREADS) matmul_forward_wmma(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    __shared__ __align__(32) floatX inp_slice[TILE_M][ROW_PITCH];
    __shared__ __align__(32) floatX weight_slice[TILE_N][ROW_PITCH];
    __shared__ __align__(32) float staging[WARPS_M * WARPS_N][16 * 16];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_row = (warp / WARPS_N) * WARP_M;  // the warp's patch inside the block's tile
    const int warp_col = (warp % WARPS_N) * WARP_N;
    const int row0 = blockIdx.y * TILE_M;
    const int col0 = blockIdx.x * TILE_N;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FRAGS_M][FRAGS_N];
#pragma unroll
    for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_N; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    }

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        copy_window<TILE_M, TILE_K, ROW_PITCH, THREADS>(inp_slice, inp, K, row0, M, k0, K);
        copy_window<TILE_N, TILE_K, ROW_PITCH, THREADS>(weight_slice, weight, K, col0, N, k0, K);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> a[FRAGS_M];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> b[FRAGS_N];
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
                wmma::load_matrix_sync(a[i], &inp_slice[warp_row + 16 * i][kk], ROW_PITCH);
            }
#pragma unroll
            for (int j = 0; j < FRAGS_N; j++) {
                wmma::load_matrix_sync(b[j], &weight_slice[warp_col + 16 * j][kk], ROW_PITCH);
            }
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
                for (int j = 0; j < FRAGS_N; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
            }
        }
        __syncthreads();  // the slices are read by every warp before the next copy overwrites them
    }

    // Epilogue, one 16 x 16 fragment at a time through the warp's own staging tile: a lane handles
    // 8 outputs, and 16 neighbouring lanes store 16 consecutive columns of a row.
    float* tile = staging[warp];
#pragma unroll
    for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_N; j++) {
            wmma::store_matrix_sync(tile, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();  // every lane's part of the fragment is in the tile before any lane reads it
            for (int e = lane; e < 16 * 16; e += 32) {
                const int row = row0 + warp_row + 16 * i + e / 16;
                const int col = col0 + warp_col + 16 * j + e % 16;
                if (row < M && col < N) out[(size_t)row * N + col] = from_float<floatX>(tile[e] + to_float(bias[col]));
            }
            __syncwarp();  // the tile is read before the next fragment overwrites it
        }
    }
}
