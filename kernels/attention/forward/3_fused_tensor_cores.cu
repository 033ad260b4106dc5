/*
 * attention forward, variant 3: one fused kernel on the tensor cores, masked tiles skipped
 *
 * Changed: no permutes, no cuBLAS, no scores in memory. A block takes 64 query positions of one
 * (b, h) and reads q, k and v straight out of qkv in 64 x 64 tiles staged in shared memory; each
 * of its 4 warps owns 16 query rows. Pass 1 walks the key tiles up to the diagonal, computes the
 * scores with WMMA (q k^T: k's tile read column-major) and keeps each row's running maximum and
 * sum (the online softmax). Pass 2 recomputes the scores, turns them into probabilities, writes
 * them to att once, and multiplies them by v's tile on the tensor cores into the output. Key
 * tiles wholly above the diagonal are never computed, only zero-filled in att.
 * Teaches: fusion and recomputation. Computing q k^T twice is cheaper than a round trip of the
 * T x T scores through memory: att is written once and never read back, where variant 2 wrote it,
 * read and rewrote it in the softmax and read it again for att v. Skipping the masked tiles halves
 * the multiply-adds cuBLAS spent on zeros. The scores leave the accumulator fragments through a
 * per-warp tile in shared memory, because their element-to-lane layout is opaque; the softmax then
 * runs row by row with one lane per column. It still writes att (the backward reads it): dropping
 * that too, and recomputing the probabilities in the backward, is flash attention. bf16 only,
 * HS = 64 (GPT-2's head size).
 * Run: python bench.py attention --variant 3
 */
#include <mma.h>

#include "common.cuh"
#include "staged_copy.cuh"  // copy_window: 16-byte copies into shared slices, zero-filled tails

#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

using namespace nvcuda;

constexpr int HS = 64;                 // head size: the launch refuses others
constexpr int TILE = 64;               // query rows per block, keys per tile
constexpr int WARPS = 4;               // 16 query rows each
constexpr int THREADS = 32 * WARPS;
constexpr int PITCH = HS + 8;          // bf16 shared rows: 144 bytes, a multiple of 16 and not of 128
constexpr int FRAGS = TILE / 16;       // 16-wide fragments across a tile of keys (and across HS)
constexpr int SCORE_PITCH = TILE + 8;  // fp32 score rows: 288 bytes, so a fragment store's rows fall on different banks

// The raw scores of this warp's 16 query rows against the staged key tile, into its float tile S.
__device__ __forceinline__ void scores(float* S, const floatX (*q_tile)[PITCH], const floatX (*kv_tile)[PITCH],
                                       int warp) {
#pragma unroll
    for (int j = 0; j < FRAGS; j++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HS; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> q;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> kT;  // k's rows are k^T's columns
            wmma::load_matrix_sync(q, &q_tile[16 * warp][kk], PITCH);
            wmma::load_matrix_sync(kT, &kv_tile[16 * j][kk], PITCH);
            wmma::mma_sync(acc, q, kT, acc);
        }
        wmma::store_matrix_sync(S + 16 * j, acc, SCORE_PITCH, wmma::mem_row_major);
    }
    __syncwarp();  // the whole tile is in S before any lane reads another lane's part
}

// Stage key tile kt (keys kt * 64 ..) in kv_tile, once every warp is done with the previous one,
// and compute this warp's scores against it.
__device__ __forceinline__ void scores_of_key_tile(float* S, const floatX (*q_tile)[PITCH], floatX (*kv_tile)[PITCH],
                                                   const floatX* k_base, int ld, int kt, int T, int warp) {
    __syncthreads();
    copy_window<TILE, HS, PITCH, THREADS>(kv_tile, k_base, ld, kt * TILE, T, 0, HS);
    __syncthreads();
    scores(S, q_tile, kv_tile, warp);
}

// out (B, T, C) floatX, att (B, NH, T, T) floatX, qkv (B, T, 3C) floatX, C = NH * HS.
// Grid (ceil(T / 64), B * NH), 128 threads.
extern "C" __global__ void __launch_bounds__(THREADS) attention_forward_fused(
    floatX* out, floatX* att, const floatX* qkv, int B, int T, int NH, float scale) {
    __shared__ __align__(32) floatX q_tile[TILE][PITCH];
    __shared__ __align__(32) floatX kv_tile[TILE][PITCH];    // k's tile, then v's
    __shared__ __align__(32) float score_tiles[WARPS][16 * SCORE_PITCH];
    __shared__ __align__(32) floatX prob_tiles[WARPS][16][PITCH];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;                  // first query row of the block
    const int last_tile = blockIdx.x;                  // key tiles 0..last_tile reach the diagonal
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* k_base = q_base + C;
    const floatX* v_base = q_base + 2 * C;
    floatX* att_rows = att + (size_t)bh * T * T;
    float* S = score_tiles[warp];

    copy_window<TILE, HS, PITCH, THREADS>(q_tile, q_base, 3 * C, t0, T, 0, HS);

    // Pass 1: each row's maximum and sum of exp(score - maximum), merged tile by tile. Every lane
    // keeps all 16 rows' pairs (warp reductions give every lane the same values); lane c reads
    // columns c and c + 32 of the score tile, so a row is read by the warp in two conflict-free loads.
    float row_max[16], row_sum[16];
#pragma unroll
    for (int r = 0; r < 16; r++) {
        row_max[r] = LOWEST;
        row_sum[r] = 0.0f;
    }
    for (int kt = 0; kt <= last_tile; kt++) {
        scores_of_key_tile(S, q_tile, kv_tile, k_base, 3 * C, kt, T, warp);
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int t = t0 + 16 * warp + r;
            float s[2];
            float tile_max = LOWEST;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int key = kt * TILE + lane + 32 * half;
                s[half] = key <= t ? S[r * SCORE_PITCH + lane + 32 * half] * scale : LOWEST;
                tile_max = fmaxf(tile_max, s[half]);
            }
            const float new_max = fmaxf(row_max[r], warp_reduce_max(tile_max));
            float tile_sum = 0.0f;
#pragma unroll
            for (int half = 0; half < 2; half++) tile_sum += s[half] == LOWEST ? 0.0f : expf(s[half] - new_max);
            row_sum[r] = row_sum[r] * expf(row_max[r] - new_max) + warp_reduce_sum(tile_sum);
            row_max[r] = new_max;
        }
        __syncwarp();  // S is read before the next tile's scores overwrite it
    }

    // Pass 2: probabilities written to att, and out += probabilities @ v on the tensor cores.
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> y[FRAGS];
#pragma unroll
    for (int j = 0; j < FRAGS; j++) wmma::fill_fragment(y[j], 0.0f);
    for (int kt = 0; kt <= last_tile; kt++) {
        scores_of_key_tile(S, q_tile, kv_tile, k_base, 3 * C, kt, T, warp);
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int t = t0 + 16 * warp + r;
            const float inverse_sum = 1.0f / row_sum[r];
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int c = lane + 32 * half;
                const int key = kt * TILE + c;
                const float p = key <= t ? expf(S[r * SCORE_PITCH + c] * scale - row_max[r]) * inverse_sum : 0.0f;
                const floatX stored = from_float<floatX>(p);
                prob_tiles[warp][r][c] = stored;  // the product uses the rounded value att holds
                if (t < T && key < T) att_rows[(size_t)t * T + key] = stored;
            }
        }
        __syncthreads();  // every warp is done with k's tile
        copy_window<TILE, HS, PITCH, THREADS>(kv_tile, v_base, 3 * C, kt * TILE, T, 0, HS);
        __syncthreads();  // v's tile and every lane's probabilities are in place
#pragma unroll
        for (int kk = 0; kk < TILE; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> p;
            wmma::load_matrix_sync(p, &prob_tiles[warp][0][kk], PITCH);
#pragma unroll
            for (int j = 0; j < FRAGS; j++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::row_major> v;
                wmma::load_matrix_sync(v, &kv_tile[kk][16 * j], PITCH);
                wmma::mma_sync(y[j], p, v, y[j]);
            }
        }
    }

    // The keys past the diagonal tile are masked for every row of the block: exact zeros in att.
    const int masked_from = (last_tile + 1) * TILE;
    for (int r = 0; r < 16; r++) {
        const int t = t0 + 16 * warp + r;
        if (t >= T) break;
        for (int key = masked_from + lane; key < T; key += 32) att_rows[(size_t)t * T + key] = from_float<floatX>(0.0f);
    }

    // The output rows through S (free again): out[b, t, h * HS + d].
    __syncwarp();
#pragma unroll
    for (int j = 0; j < FRAGS; j++) wmma::store_matrix_sync(S + 16 * j, y[j], SCORE_PITCH, wmma::mem_row_major);
    __syncwarp();
    for (int r = 0; r < 16; r++) {
        const int t = t0 + 16 * warp + r;
        if (t >= T) break;
        floatX* o = out + ((size_t)b * T + t) * C + h * HS;
        o[lane] = from_float<floatX>(S[r * SCORE_PITCH + lane]);
        o[lane + 32] = from_float<floatX>(S[r * SCORE_PITCH + lane + 32]);
    }
}
