// The tiled tensor-core product of the matmul backward's tensor-core variants (3 and 4): one
// 128 x 128 output tile per block of 8 warps, 32-deep slices staged in shared memory, 4 x 2 WMMA
// fragments per warp, for the two operand layouts the backward needs.
#pragma once
#include <mma.h>

#include "common.cuh"
#include "staged_copy.cuh"  // copy_window: 16-byte copies into shared slices, zero-filled tails

namespace tensor_core_backward {

using namespace nvcuda;

constexpr int TILE = 128;                // outputs per block: TILE x TILE
constexpr int TILE_K = 32;               // depth of one shared slice
constexpr int WARPS_R = 2, WARPS_S = 4;  // 8 warps, each owning a 64 x 32 patch
constexpr int WARP_R = TILE / WARPS_R, WARP_S = TILE / WARPS_S;
constexpr int FRAGS_R = WARP_R / 16, FRAGS_S = WARP_S / 16;
constexpr int THREADS = 32 * WARPS_R * WARPS_S;
constexpr int PAD = 8;                   // keeps rows 16-byte aligned and shifts banks between rows

// The layout a matrix_a fragment reads its slice with: a transposed A is read column-major.
template <bool TRANSPOSED> struct FragmentLayout { using type = wmma::row_major; };
template <> struct FragmentLayout<true> { using type = wmma::col_major; };

// out (R, S) = A (R, D) @ B (D, S) summed over d in [d_begin, d_end) only, out row-major with
// leading dimension S. B is row-major (D, S). A is row-major (R, D) when !A_TRANSPOSED, or given as
// its transpose, a row-major (D, R) matrix, when A_TRANSPOSED; lda is its stored row length (D or
// R; the full one, whatever range is summed). With BIAS_SUM (A_TRANSPOSED only),
// blocks of the first output column also write bias_sum[r] = sum over the same d of A[r, d]. OutT
// is floatX for a finished result, or float for a partial sum (split-K). d_begin is a multiple of
// TILE_K; when !A_TRANSPOSED, d_end must be a multiple of 8 (whole 16-byte packs).
template <bool A_TRANSPOSED, bool BIAS_SUM, typename OutT>
__device__ __forceinline__ void tensor_core_product(OutT* out, OutT* bias_sum, const floatX* A, int lda,
                                                    const floatX* B, int R, int S, int d_begin, int d_end) {
    // A's slice keeps memory's orientation: [r][d] (row-major fragments) or [d][r] (column-major).
    constexpr int A_ROWS = A_TRANSPOSED ? TILE_K : TILE;
    constexpr int A_COLS = A_TRANSPOSED ? TILE : TILE_K;
    __shared__ __align__(32) floatX a_slice[A_ROWS][A_COLS + PAD];
    __shared__ __align__(32) floatX b_slice[TILE_K][TILE + PAD];
    __shared__ __align__(32) float staging[WARPS_R * WARPS_S][16 * 16];
    using ALayout = typename FragmentLayout<A_TRANSPOSED>::type;

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_r = (warp / WARPS_S) * WARP_R;
    const int warp_s = (warp % WARPS_S) * WARP_S;
    const int r0 = blockIdx.y * TILE;
    const int s0 = blockIdx.x * TILE;
    const bool sums_bias = BIAS_SUM && blockIdx.x == 0 && threadIdx.x < TILE;
    float bias_acc = 0.0f;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FRAGS_R][FRAGS_S];
#pragma unroll
    for (int i = 0; i < FRAGS_R; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_S; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    }

    for (int d0 = d_begin; d0 < d_end; d0 += TILE_K) {
        if (A_TRANSPOSED) {
            copy_window<A_ROWS, A_COLS, A_COLS + PAD, THREADS>(a_slice, A, lda, d0, d_end, r0, R);
        } else {
            copy_window<A_ROWS, A_COLS, A_COLS + PAD, THREADS>(a_slice, A, lda, r0, R, d0, d_end);
        }
        copy_window<TILE_K, TILE, TILE + PAD, THREADS>(b_slice, B, S, d0, d_end, s0, S);
        __syncthreads();
        if (sums_bias) {  // rows past D were zero-filled, so the whole slice can be added
#pragma unroll 8
            for (int d = 0; d < TILE_K; d++) bias_acc += to_float(a_slice[d][threadIdx.x]);
        }
#pragma unroll
        for (int dd = 0; dd < TILE_K; dd += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, ALayout> a[FRAGS_R];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::row_major> b[FRAGS_S];
#pragma unroll
            for (int i = 0; i < FRAGS_R; i++) {
                const floatX* tile = A_TRANSPOSED ? &a_slice[dd][warp_r + 16 * i] : &a_slice[warp_r + 16 * i][dd];
                wmma::load_matrix_sync(a[i], tile, A_COLS + PAD);
            }
#pragma unroll
            for (int j = 0; j < FRAGS_S; j++) wmma::load_matrix_sync(b[j], &b_slice[dd][warp_s + 16 * j], TILE + PAD);
#pragma unroll
            for (int i = 0; i < FRAGS_R; i++) {
#pragma unroll
                for (int j = 0; j < FRAGS_S; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
            }
        }
        __syncthreads();
    }
    if (sums_bias && r0 + (int)threadIdx.x < R) bias_sum[r0 + threadIdx.x] = from_float<OutT>(bias_acc);

    float* tile = staging[warp];
#pragma unroll
    for (int i = 0; i < FRAGS_R; i++) {
#pragma unroll
        for (int j = 0; j < FRAGS_S; j++) {
            wmma::store_matrix_sync(tile, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();  // the whole fragment is in the tile before any lane reads it
            for (int e = lane; e < 16 * 16; e += 32) {
                const int r = r0 + warp_r + 16 * i + e / 16;
                const int s = s0 + warp_s + 16 * j + e % 16;
                if (r < R && s < S) out[(size_t)r * S + s] = from_float<OutT>(tile[e]);
            }
            __syncwarp();  // read before the next fragment overwrites it
        }
    }
}


}  // namespace tensor_core_backward
