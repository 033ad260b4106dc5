// The building blocks of the mma.sync flash attention kernels (forward 3 and 4, backward 3 to 5),
// so that each variant's file shows only what it changes (a pipeline, the dq atomics): a block takes
// 64 rows (queries or keys) of one (b, h), each of its 4 warps 16 of them, and the other side
// arrives in 64 x HS tiles staged in swizzled shared memory. Everything a warp computes stays in
// mma.sync's registers (kernels/warp_mma.cuh for the layouts): lane (g, t) = (lane / 4, lane % 4)
// holds rows g and g + 8 of the warp's 16, at columns 2t and 2t + 1 of each 8-wide block, so
// acc[j][0..1] are row g's and acc[j][2..3] row g + 8's. A row's statistics therefore live in the 4
// lanes of its group, and a 16 x 64 block of accumulators, rounded to bf16, is already the A operand
// of a product over its 64 columns.
#pragma once
#include "common.cuh"
#include "staged_copy.cuh"  // copy_window (cp.async, swizzled), swizzled<>
#include "warp_mma.cuh"     // ldmatrix_x4(_trans), mma_bf16_16x8x16, lane addresses, pack_bf16, store_pair

#ifndef WB_BF16
#error "tensor-core mma.sync variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

namespace mma_tiles {

constexpr int HS = 64;                 // head size: the launches refuse others
constexpr int TILE = 64;               // rows per block and per staged tile
constexpr int WARPS = 4;               // 16 rows each
constexpr int THREADS = 32 * WARPS;
constexpr int BLOCKS = TILE / 8;       // 8-wide column blocks of a 16 x 64 result (HS = TILE)
constexpr int STEPS = TILE / 16;       // 16-deep steps of a product over 64 (keys, queries or channels)

typedef floatX Tile[TILE][HS];         // 128-byte rows, swizzled
typedef unsigned RowOperand[STEPS][4]; // a warp's 16 x 64 rows as A operands, one per 16-deep step
typedef float Accumulators[BLOCKS][4]; // a warp's 16 x 64 fp32 result

// Stage rows [row0, row0 + 64) of a token-major matrix (leading dimension ld, HS columns from base)
// into `tile` with cp.async, rows >= T as zeros. They land after the caller's commit and wait.
__device__ __forceinline__ void stage(Tile& tile, const floatX* base, int ld, int row0, int T) {
    copy_window<TILE, HS, HS, THREADS, true, true>(tile, base, ld, row0, T, 0, HS);
}

// Rows [16 warp, 16 warp + 16) of a staged tile as A operands.
__device__ __forceinline__ void load_rows(RowOperand& rows, const Tile& tile, int warp, int lane) {
#pragma unroll
    for (int kk = 0; kk < STEPS; kk++) {
        ldmatrix_x4(rows[kk], &tile[0][0] + swizzled<HS>(16 * warp + quarter_row(lane), 16 * kk + quarter_col(lane)));
    }
}

// acc = rows (16 x HS) @ tile^T: column j of the result is row j of the tile (no transpose stored).
__device__ __forceinline__ void rows_times_tile_rows(Accumulators& acc, const RowOperand& rows, const Tile& tile,
                                                     int lane) {
#pragma unroll
    for (int j = 0; j < BLOCKS; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < STEPS; kk++) {
#pragma unroll
        for (int j = 0; j < BLOCKS; j += 2) {  // one ldmatrix.x4: two 8-row blocks of the tile
            unsigned r[4];
            ldmatrix_x4(r, &tile[0][0] + swizzled<HS>(8 * j + n_row(lane), 16 * kk + k_col(lane)));
            const unsigned first[2] = {r[0], r[1]}, second[2] = {r[2], r[3]};
            mma_bf16_16x8x16(acc[j], rows[kk], first);
            mma_bf16_16x8x16(acc[j + 1], rows[kk], second);
        }
    }
}

// acc += a (16 x 16, an A operand) @ rows [16 kk, 16 kk + 16) of tile (16 x HS): the tile's rows
// are the product's k, so ldmatrix .trans hands them out as B operands.
__device__ __forceinline__ void step_times_tile_rows(Accumulators& acc, const unsigned (&a)[4], const Tile& tile,
                                                     int kk, int lane) {
#pragma unroll
    for (int j = 0; j < BLOCKS; j += 2) {  // one ldmatrix.x4.trans: two 8-column blocks of the tile
        unsigned r[4];
        ldmatrix_x4_trans(r, &tile[0][0] + swizzled<HS>(16 * kk + quarter_row(lane), 8 * j + quarter_col(lane)));
        const unsigned first[2] = {r[0], r[1]}, second[2] = {r[2], r[3]};
        mma_bf16_16x8x16(acc[j], a, first);
        mma_bf16_16x8x16(acc[j + 1], a, second);
    }
}

// acc += P (16 x 64, a warp's accumulators, rounded to bf16) @ tile (64 x HS): P's column blocks
// 2kk and 2kk + 1 are, element for element, the A operand of step kk.
__device__ __forceinline__ void accumulate_times_tile(Accumulators& acc, const Accumulators& P, const Tile& tile,
                                                      int lane) {
#pragma unroll
    for (int kk = 0; kk < STEPS; kk++) {
        const unsigned a[4] = {pack_bf16(P[2 * kk][0], P[2 * kk][1]), pack_bf16(P[2 * kk][2], P[2 * kk][3]),
                               pack_bf16(P[2 * kk + 1][0], P[2 * kk + 1][1]),
                               pack_bf16(P[2 * kk + 1][2], P[2 * kk + 1][3])};
        step_times_tile_rows(acc, a, tile, kk, lane);
    }
}

// The maximum and the sum over the 4 lanes that share a row (lanes 4g .. 4g + 3).
__device__ __forceinline__ float group_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float group_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// One key tile of the online softmax (forward 3 and 4), on the score accumulators s (raw q k^T of
// this lane's query rows `rows`, keys key0 + 8j + 2t + e): mask the keys past each row's query,
// scale, take the new running maximum m (the same in a row's 4 lanes), rescale this lane's share of
// the running sums l and its output accumulators o to it, and leave in s the tile's unnormalised
// probabilities exp(score - m), ready to be P in o += P v.
__device__ __forceinline__ void online_softmax_tile(Accumulators& s, float (&m)[2], float (&l)[2], Accumulators& o,
                                                    int key0, const int (&rows)[2], float scale, int lane) {
    const int t = lane % 4;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        float tile_max = LOWEST;
#pragma unroll
        for (int j = 0; j < BLOCKS; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float& x = s[j][2 * half + e];
                x = key0 + 8 * j + 2 * t + e <= rows[half] ? x * scale : LOWEST;  // the causal mask
                tile_max = fmaxf(tile_max, x);
            }
        }
        const float m_new = fmaxf(m[half], group_max(tile_max));
        const float rescale = expf(m[half] - m_new);  // 1 when the maximum stays, 0 on the first tile
        float tile_sum = 0.0f;
#pragma unroll
        for (int j = 0; j < BLOCKS; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float& x = s[j][2 * half + e];
                x = x == LOWEST ? 0.0f : expf(x - m_new);  // now the probability's numerator
                tile_sum += x;
            }
        }
        l[half] = l[half] * rescale + tile_sum;
        m[half] = m_new;
#pragma unroll
        for (int j = 0; j < BLOCKS; j++) {  // the output follows the sum to the new maximum
            o[j][2 * half] *= rescale;
            o[j][2 * half + 1] *= rescale;
        }
    }
}

// The dq kernel's softmax backward (backward 3 and 4), on the accumulators of S = q k^T and dP =
// dout v^T for this lane's query rows `rows` (keys key0 + 8j + 2t + e): dS = scale P (dP - D) with
// P = exp(scale S - lse) for keys <= the query (< T), else 0, left in place of dp.
__device__ __forceinline__ void softmax_backward_rows(Accumulators& dp, const Accumulators& s, int key0,
                                                      const int (&rows)[2], const float (&row_lse)[2],
                                                      const float (&D)[2], int T, float scale, int lane) {
    const int t = lane % 4;
#pragma unroll
    for (int j = 0; j < BLOCKS; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int half = e / 2, key = key0 + 8 * j + 2 * t + e % 2;
            const float p = key <= rows[half] && rows[half] < T ? expf(scale * s[j][e] - row_lse[half]) : 0.0f;
            dp[j][e] = scale * p * (dp[j][e] - D[half]);
        }
    }
}

// The dk/dv kernel's (backward 3 and 4), on S^T = k q^T and dP^T = v dout^T for this lane's key rows
// `keys` (queries q0 + c, c = 8j + 2t + e, with their lse and D in shared memory): P^T in place of
// st, dS^T = scale P^T (dP^T - D) in place of dpt; zero unless key <= query < T.
__device__ __forceinline__ void softmax_backward_columns(Accumulators& st, Accumulators& dpt, int q0,
                                                         const int (&keys)[2], const float* lse_tile,
                                                         const float* D_tile, int T, float scale, int lane) {
    const int t = lane % 4;
#pragma unroll
    for (int j = 0; j < BLOCKS; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int c = 8 * j + 2 * t + e % 2, query = q0 + c;
            const float p = keys[e / 2] <= query && query < T ? expf(scale * st[j][e] - lse_tile[c]) : 0.0f;
            st[j][e] = p;
            dpt[j][e] = scale * p * (dpt[j][e] - D_tile[c]);
        }
    }
}

// D_t = dout_t . out_t for a warp's 16 query rows from `first` (backward 3 and 4), straight from
// memory (lane c: channels c and c + 32), written to row_dots for the dk/dv kernel; this lane keeps
// its own two rows' D and lse (rows g and g + 8). Rows past T get 0 for both.
__device__ __forceinline__ void row_dots_and_lse(float (&D)[2], float (&row_lse)[2], float* row_dots,
                                                 const float* lse, const floatX* dy_base, const floatX* y_base,
                                                 size_t ld, size_t bh_rows, int first, int T, int lane) {
    D[0] = D[1] = row_lse[0] = row_lse[1] = 0.0f;
#pragma unroll
    for (int r = 0; r < 16; r++) {
        const int row = first + r;
        float partial = 0.0f;
        if (row < T) {
            const floatX* dy = dy_base + (size_t)row * ld;
            const floatX* y = y_base + (size_t)row * ld;
            partial = to_float(dy[lane]) * to_float(y[lane]) + to_float(dy[lane + 32]) * to_float(y[lane + 32]);
        }
        const float dot = warp_reduce_sum(partial);
        if (lane == 0 && row < T) row_dots[bh_rows + row] = dot;
        if (r % 8 == lane / 4) D[r / 8] = dot;
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int row = first + lane / 4 + 8 * half;
        if (row < T) row_lse[half] = lse[bh_rows + row];
    }
}

// Row g + 8 half of this lane's accumulators (half 0: row g), times `factor`, to a row of HS
// values in global memory: a 4-byte store per 8-wide block.
__device__ __forceinline__ void store_row(floatX* row, const Accumulators& acc, int half, float factor, int lane) {
#pragma unroll
    for (int j = 0; j < BLOCKS; j++) {  // row starts at an even element: every pair is 4-byte aligned
        store_pair(row + 8 * j + 2 * (lane % 4), acc[j][2 * half] * factor, acc[j][2 * half + 1] * factor, true, true);
    }
}

// The forward's end (forward 3 and 4): each of this lane's rows divided by its sum (the group's
// four shares added) and written to out, and its log-sum-exp m + log(sum) to lse by lane t = 0 of
// the group. Rows past T are skipped.
__device__ __forceinline__ void store_output_and_lse(floatX* out, float* lse, const Accumulators& o,
                                                     const float (&m)[2], const float (&l)[2], const int (&rows)[2],
                                                     int bh, int NH, int T, int lane) {
    const int b = bh / NH, h = bh % NH, C = NH * HS;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const float sum = group_sum(l[half]);  // >= 1: the row maximum's own term is exp(0)
        if (rows[half] >= T) continue;
        store_row(out + ((size_t)b * T + rows[half]) * C + h * HS, o, half, 1.0f / sum, lane);
        if (lane % 4 == 0) lse[(size_t)bh * T + rows[half]] = m[half] + logf(sum);
    }
}

// Query tile q0 for a key block (backward 3, 4 and 5): its q and dout rows into q_tile and dy_tile
// with cp.async (the caller commits and waits), and its lse and D into lse_tile and D_tile with
// ordinary loads by the first 64 threads (visible to all after the caller's next barrier); rows
// past T as zeros. bh_rows: the (b, h) pair's first row in lse and row_dots.
__device__ __forceinline__ void stage_query_tile(Tile& q_tile, Tile& dy_tile, float* lse_tile, float* D_tile,
                                                 const floatX* q_base, const floatX* dy_base, int C,
                                                 const float* lse, const float* row_dots, size_t bh_rows, int q0,
                                                 int T) {
    stage(q_tile, q_base, 3 * C, q0, T);
    stage(dy_tile, dy_base, C, q0, T);
    if (threadIdx.x < TILE) {
        const int row = q0 + threadIdx.x;
        lse_tile[threadIdx.x] = row < T ? lse[bh_rows + row] : 0.0f;
        D_tile[threadIdx.x] = row < T ? row_dots[bh_rows + row] : 0.0f;
    }
}

// One staged query tile for a key block (backward 3, 4 and 5), on this warp's 16 keys (rows k and
// v): S^T = k q^T and dP^T = v dout^T, then P^T and dS^T = scale P^T (dP^T - D), then dv += P^T dout
// and dk += dS^T q. dS^T is left in dst for a caller that needs it again (backward 5's dq).
__device__ __forceinline__ void key_block_tile(Accumulators& dk, Accumulators& dv, Accumulators& dst,
                                               const RowOperand& k, const RowOperand& v, const Tile& q_tile,
                                               const Tile& dy_tile, const float* lse_tile, const float* D_tile,
                                               int q0, const int (&keys)[2], int T, float scale, int lane) {
    Accumulators st;
    rows_times_tile_rows(st, k, q_tile, lane);    // S^T = k q^T: this warp's 16 keys x 64 queries
    rows_times_tile_rows(dst, v, dy_tile, lane);  // dP^T = v dout^T
    softmax_backward_columns(st, dst, q0, keys, lse_tile, D_tile, T, scale, lane);  // P^T, dS^T in place
    accumulate_times_tile(dv, st, dy_tile, lane);  // dv += P^T dout
    accumulate_times_tile(dk, dst, q_tile, lane);  // dk += dS^T q
}

// A key block's end (backward 3, 4 and 5): this lane's rows of dk and dv into dqkv's columns C..
// and 2C.. of their key's row; keys past T are skipped.
__device__ __forceinline__ void store_key_gradients(floatX* dqkv, const Accumulators& dk, const Accumulators& dv,
                                                    const int (&keys)[2], int b, int h, int T, int C, int lane) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
        if (keys[half] >= T) continue;
        floatX* row = dqkv + ((size_t)b * T + keys[half]) * 3 * C + h * HS;
        store_row(row + C, dk, half, 1.0f, lane);
        store_row(row + 2 * C, dv, half, 1.0f, lane);
    }
}

}  // namespace mma_tiles
