// The tiled tensor-core product of matmul backward 5 and 6: tensor_core_product.cuh's tiling (a 128 x
// 128 output tile per block of 8 warps, 32-deep slices, a 64 x 32 patch per warp), on mma.sync and
// ldmatrix (kernels/warp_mma.cuh) with swizzled, unpadded slices (staged_copy.cuh's swizzled<>),
// and the results stored straight from the accumulator registers. PIPELINED (backward 6) copies
// each next pair of slices with cp.async into a second buffer while the current pair is multiplied.
//
// Slices keep memory's orientation, as in tensor_core_product.cuh; what WMMA did with a col_major
// fragment layout, ldmatrix .trans does here. An 8 x 8 block read with .trans hands lane (g, t) the
// elements at rows 2t, 2t + 1 of column g: an A operand's (r = g, d = 2t, 2t + 1) when the slice's
// rows are d (A given transposed: dout^T read from dout), and a B operand's (d = 2t, 2t + 1, s = g)
// when the slice's rows are d (B row-major (D, S): weight for dinp, inp for dweight).
#pragma once
#include "common.cuh"
#include "staged_copy.cuh"  // copy_window (swizzled), swizzled<>
#include "warp_mma.cuh"     // ldmatrix_x4(_trans), mma_bf16_16x8x16, lane addresses, store_pair

namespace mma_backward {

constexpr int TILE = 128;                // outputs per block: TILE x TILE
constexpr int TILE_K = 32;               // depth of one shared slice
constexpr int WARPS_R = 2, WARPS_S = 4;  // 8 warps, each owning a 64 x 32 patch
constexpr int WARP_R = TILE / WARPS_R, WARP_S = TILE / WARPS_S;
constexpr int FRAGS_R = WARP_R / 16;     // 16-row A operands a warp
constexpr int BLOCKS_S = WARP_S / 8;     // 8-column B operands (and accumulator tiles)
constexpr int THREADS = 32 * WARPS_R * WARPS_S;

// out (R, S) = A (R, D) @ B (D, S) summed over d in [d_begin, d_end) only; the arguments and their
// meaning are tensor_core_product's (tensor_core_product.cuh): A row-major (R, D), or given as its
// transpose (D, R) when A_TRANSPOSED; B row-major (D, S); BIAS_SUM adds up A's rows into bias_sum
// in the blocks of the first output column; OutT floatX or float (split-K partials). PIPELINED: two
// buffers of slices, filled with cp.async one slice ahead (32 KB of shared memory instead of 16).
template <bool A_TRANSPOSED, bool BIAS_SUM, typename OutT, bool PIPELINED = false>
__device__ __forceinline__ void mma_product(OutT* out, OutT* bias_sum, const floatX* A, int lda, const floatX* B,
                                            int R, int S, int d_begin, int d_end) {
    static_assert(!BIAS_SUM || A_TRANSPOSED, "the bias sums A's columns of the transposed layout");
    constexpr int A_ROWS = A_TRANSPOSED ? TILE_K : TILE;
    constexpr int A_COLS = A_TRANSPOSED ? TILE : TILE_K;
    constexpr int BUFFERS = PIPELINED ? 2 : 1;
    __shared__ __align__(128) floatX a_slices[BUFFERS][A_ROWS][A_COLS];  // swizzled, no padding
    __shared__ __align__(128) floatX b_slices[BUFFERS][TILE_K][TILE];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_r = (warp / WARPS_S) * WARP_R;
    const int warp_s = (warp % WARPS_S) * WARP_S;
    const int r0 = blockIdx.y * TILE;
    const int s0 = blockIdx.x * TILE;
    const bool sums_bias = BIAS_SUM && blockIdx.x == 0 && threadIdx.x < TILE;
    float bias_acc = 0.0f;

    // The slices of depth [d0, d0 + TILE_K) into buffer `buffer`: cp.async copies when PIPELINED (they
    // land at the caller's commit and wait), plain loads and stores otherwise.
    auto stage_slices = [&](int buffer, int d0) {
        if (A_TRANSPOSED) {
            copy_window<A_ROWS, A_COLS, A_COLS, THREADS, PIPELINED, true>(a_slices[buffer], A, lda, d0, d_end, r0, R);
        } else {
            copy_window<A_ROWS, A_COLS, A_COLS, THREADS, PIPELINED, true>(a_slices[buffer], A, lda, r0, R, d0, d_end);
        }
        copy_window<TILE_K, TILE, TILE, THREADS, PIPELINED, true>(b_slices[buffer], B, S, d0, d_end, s0, S);
    };

    float acc[FRAGS_R][BLOCKS_S][4] = {};
    if (PIPELINED && d_begin < d_end) {
        stage_slices(0, d_begin);
        __pipeline_commit();
    }
    for (int d0 = d_begin, slice = 0; d0 < d_end; d0 += TILE_K, slice++) {
        const int buffer = PIPELINED ? slice % 2 : 0;
        if (PIPELINED) {
            // The other buffer was last read in the previous iteration, which ended with a barrier.
            if (d0 + TILE_K < d_end) stage_slices(1 - buffer, d0 + TILE_K);
            __pipeline_commit();  // a group every iteration (empty on the last), so the count holds
            __pipeline_wait_prior(1);  // this slice's copies have landed (the next one's may not have)
        } else {
            stage_slices(0, d0);
        }
        __syncthreads();
        const floatX (&a_slice)[A_ROWS][A_COLS] = a_slices[buffer];
        const floatX (&b_slice)[TILE_K][TILE] = b_slices[buffer];
        if (sums_bias) {  // rows past D were zero-filled, so the whole slice can be added
#pragma unroll 8
            for (int d = 0; d < TILE_K; d++) bias_acc += to_float((&a_slice[0][0])[swizzled<A_COLS>(d, threadIdx.x)]);
        }
#pragma unroll
        for (int dd = 0; dd < TILE_K; dd += 16) {
            unsigned a[FRAGS_R][4], b[BLOCKS_S][2];
#pragma unroll
            for (int i = 0; i < FRAGS_R; i++) {
                const int r = warp_r + 16 * i;
                if (A_TRANSPOSED) {
                    ldmatrix_x4_trans(a[i], &a_slice[0][0] + swizzled<A_COLS>(dd + n_row(lane), r + k_col(lane)));
                } else {
                    ldmatrix_x4(a[i], &a_slice[0][0] + swizzled<A_COLS>(r + quarter_row(lane), dd + quarter_col(lane)));
                }
            }
#pragma unroll
            for (int j = 0; j < BLOCKS_S; j += 2) {  // one ldmatrix.x4.trans: two 8-column blocks
                unsigned q[4];
                ldmatrix_x4_trans(q, &b_slice[0][0] + swizzled<TILE>(dd + quarter_row(lane), warp_s + 8 * j + quarter_col(lane)));
                b[j][0] = q[0], b[j][1] = q[1], b[j + 1][0] = q[2], b[j + 1][1] = q[3];
            }
#pragma unroll
            for (int i = 0; i < FRAGS_R; i++) {
#pragma unroll
                for (int j = 0; j < BLOCKS_S; j++) mma_bf16_16x8x16(acc[i][j], a[i], b[j]);
            }
        }
        __syncthreads();  // every warp is done with these slices before a copy overwrites them
    }
    if (sums_bias && r0 + (int)threadIdx.x < R) bias_sum[r0 + threadIdx.x] = from_float<OutT>(bias_acc);

    // Lane (g, t) holds rows g and g + 8, columns 2t and 2t + 1 of each 16 x 8 tile.
    const int g = lane / 4, t = lane % 4;
    const bool paired = S % 2 == 0;  // then (r * S + s) is even for even s: aligned pair stores
#pragma unroll
    for (int i = 0; i < FRAGS_R; i++) {
#pragma unroll
        for (int j = 0; j < BLOCKS_S; j++) {
            const int s = s0 + warp_s + 8 * j + 2 * t;
            if (s >= S) continue;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = r0 + warp_r + 16 * i + g + 8 * half;
                if (r < R) store_pair(out + (size_t)r * S + s, acc[i][j][2 * half], acc[i][j][2 * half + 1],
                                      paired && s + 1 < S, s + 1 < S);
            }
        }
    }
}

}  // namespace mma_backward
