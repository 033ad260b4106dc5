/*
 * flash_attention forward, variant 3: scores, probabilities and output in registers (mma.sync)
 *
 * Changed: variant 2 computed on the tensor cores through WMMA, whose accumulators have no known
 * element-to-lane layout, so every tile's scores went out to a shared fp32 tile to be masked and
 * exponentiated, the probabilities back in through a shared bf16 tile, and the tile's P v out
 * through the fp32 tile again to be added to the running output. Here the PTX instructions are
 * called directly (kernels/warp_mma.cuh), and the layout is known: lane (g, t) = (lane / 4,
 * lane % 4) holds rows g and g + 8 of the warp's 16, at columns 2t and 2t + 1 of every 8-wide
 * block. So the causal mask, the running maximum (a max over the lane's 16 values, then over the 4
 * lanes of its group), the exponentials and the output's rescaling all happen in registers. And
 * the score accumulators of two neighbouring 8-key blocks are, element for element, the A operand
 * of the next product: P v needs only a conversion to bf16, no memory at all. v's tile is read
 * with ldmatrix .trans, which hands out 8 x 8 blocks transposed, as that product's B operand needs.
 * The running sums stay per lane (each lane's share of its two rows), summed over the group once
 * at the end. Shared memory holds only the q, k and v tiles, swizzled (swizzled<> in
 * staged_copy.cuh): 24 KB against variant 2's 70 KB.
 * Teaches: the FlashAttention-2 forward on Ampere-style tensor cores, and how the m16n8k16
 * fragment layouts make it possible: a row's statistics live in 4 lanes, and an accumulator is an
 * operand. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py flash_attention --variant 3
 */
#include "common.cuh"
#include "staged_copy.cuh"  // copy_window (cp.async, swizzled), swizzled<>
#include "warp_mma.cuh"     // ldmatrix_x4(_trans), mma_bf16_16x8x16

#ifndef WB_BF16
#error "tensor-core mma.sync variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

constexpr int HS = 64;            // head size: the launch refuses others
constexpr int TILE = 64;          // query rows per block, keys per staged tile
constexpr int WARPS = 4;          // 16 query rows each
constexpr int THREADS = 32 * WARPS;
constexpr int KEY_BLOCKS = TILE / 8;   // 8-key column blocks of a warp's scores
constexpr int HEAD_BLOCKS = HS / 8;    // 8-channel column blocks of its output
constexpr int HEAD_STEPS = HS / 16;    // 16-deep steps of q . k
constexpr int KEY_STEPS = TILE / 16;   // 16-deep steps of P v

typedef floatX Tile[TILE][HS];  // 128-byte rows, swizzled

__device__ __forceinline__ void stage(Tile& tile, const floatX* base, int ld, int row0, int T) {
    copy_window<TILE, HS, HS, THREADS, true, true>(tile, base, ld, row0, T, 0, HS);
}

// Two floats as a register of two bf16, the first in the lower half (an A operand's element order).
__device__ __forceinline__ unsigned pack_bf16(float first, float second) {
    union {
        floatX halves[2];
        unsigned word;
    } pair;
    pair.halves[0] = from_float<floatX>(first), pair.halves[1] = from_float<floatX>(second);
    return pair.word;
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

// out (B, T, C) floatX, lse (B, NH, T) fp32, qkv (B, T, 3C) floatX, C = NH * HS.
// Grid (ceil(T / 64), B * NH), 128 threads, 24 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_forward_mma_sync(
    floatX* out, float* lse, const floatX* qkv, int B, int T, int NH, float scale) {
    __shared__ __align__(128) Tile q_tile, k_tile, v_tile;

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;
    const int rows[2] = {t0 + 16 * warp + g, t0 + 16 * warp + g + 8};  // this lane's two query rows
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* k_base = q_base + C;
    const floatX* v_base = q_base + 2 * C;

    // Row and column (within a 16 x 16 block) whose address this lane gives ldmatrix, for an A
    // operand (quarters down, then right) and for a B operand read from rows of n (the k halves,
    // then the next 8 n); v's rows are keys, so its .trans reads take quarters down, then right.
    const int a_row = lane % 8 + 8 * (lane / 8 % 2), a_col = 8 * (lane / 16);
    const int b_row = lane % 8 + 8 * (lane / 16), b_col = 8 * (lane / 8 % 2);

    stage(q_tile, q_base, 3 * C, t0, T);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    unsigned q[HEAD_STEPS][4];  // the warp's 16 query rows as A operands, for the whole loop
#pragma unroll
    for (int kk = 0; kk < HEAD_STEPS; kk++) {
        ldmatrix_x4(q[kk], &q_tile[0][0] + swizzled<HS>(16 * warp + a_row, 16 * kk + a_col));
    }

    float m[2] = {LOWEST, LOWEST};  // running maximum of rows g and g + 8 (the same in the group's 4 lanes)
    float l[2] = {0.0f, 0.0f};      // this lane's share of their running sums
    float o[HEAD_BLOCKS][4] = {};   // output accumulators: rows g, g + 8 x columns 2t, 2t + 1 per block

    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        __syncthreads();  // every warp is done with the previous k and v tiles
        stage(k_tile, k_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        stage(v_tile, v_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // this thread's k copies have landed (v's may still be in flight)
        __syncthreads();

        float s[KEY_BLOCKS][4] = {};  // raw scores q k^T, rows g, g + 8 x keys 8j + 2t, 8j + 2t + 1
#pragma unroll
        for (int kk = 0; kk < HEAD_STEPS; kk++) {
#pragma unroll
            for (int j = 0; j < KEY_BLOCKS; j += 2) {  // one ldmatrix.x4: two 8-key blocks of k
                unsigned r[4];
                ldmatrix_x4(r, &k_tile[0][0] + swizzled<HS>(8 * j + b_row, 16 * kk + b_col));
                const unsigned k0[2] = {r[0], r[1]}, k1[2] = {r[2], r[3]};
                mma_bf16_16x8x16(s[j], q[kk], k0);
                mma_bf16_16x8x16(s[j + 1], q[kk], k1);
            }
        }

        // The online softmax, in registers: mask, scale, new maximum, rescale, exponentiate.
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float tile_max = LOWEST;
#pragma unroll
            for (int j = 0; j < KEY_BLOCKS; j++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int key = kt * TILE + 8 * j + 2 * t + e;
                    float& x = s[j][2 * half + e];
                    x = key <= rows[half] ? x * scale : LOWEST;  // the causal mask
                    tile_max = fmaxf(tile_max, x);
                }
            }
            const float m_new = fmaxf(m[half], group_max(tile_max));
            const float rescale = expf(m[half] - m_new);  // 1 when the maximum stays, 0 on the first tile
            float tile_sum = 0.0f;
#pragma unroll
            for (int j = 0; j < KEY_BLOCKS; j++) {
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
            for (int j = 0; j < HEAD_BLOCKS; j++) {  // the output follows the sum to the new maximum
                o[j][2 * half] *= rescale;
                o[j][2 * half + 1] *= rescale;
            }
        }

        __pipeline_wait_prior(0);  // v's copies have landed
        __syncthreads();
        // o += P v. Key blocks 2kk and 2kk + 1 of P, as registers, are the A operand of step kk.
#pragma unroll
        for (int kk = 0; kk < KEY_STEPS; kk++) {
            const unsigned p[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int j = 0; j < HEAD_BLOCKS; j += 2) {  // one ldmatrix.x4.trans: two 8-channel blocks of v
                unsigned r[4];
                ldmatrix_x4_trans(r, &v_tile[0][0] + swizzled<HS>(16 * kk + a_row, 8 * j + a_col));
                const unsigned v0[2] = {r[0], r[1]}, v1[2] = {r[2], r[3]};
                mma_bf16_16x8x16(o[j], p, v0);
                mma_bf16_16x8x16(o[j + 1], p, v1);
            }
        }
    }

    // out[b, t, h * HS + c] and lse[b, h, t], each written once: pairs of channels per lane.
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const float sum = group_sum(l[half]);  // >= 1: the row maximum's own term is exp(0)
        if (rows[half] >= T) continue;
        const float inverse = 1.0f / sum;
        floatX* row_out = out + ((size_t)b * T + rows[half]) * C + h * HS;
#pragma unroll
        for (int j = 0; j < HEAD_BLOCKS; j++) {
            *reinterpret_cast<unsigned*>(row_out + 8 * j + 2 * t) =
                pack_bf16(o[j][2 * half] * inverse, o[j][2 * half + 1] * inverse);
        }
        if (t == 0) lse[(size_t)bh * T + rows[half]] = m[half] + logf(sum);
    }
}
