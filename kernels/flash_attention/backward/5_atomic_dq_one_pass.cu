/*
 * flash_attention backward, variant 5: one pass over the scores, dq accumulated with fp32 atomics
 *
 * Changed: variants 2 to 4 give every gradient one owner, so S = q k^T and dP = dout v^T are
 * computed twice, once by the blocks that own queries (for dq) and once by the blocks that own keys
 * (for dk and dv): seven products for five. Here, as in FlashAttention-2's backward, only the key
 * blocks remain. A block walks the query tiles at or below its diagonal as variant 3's dk/dv kernel
 * does, and after dv and dk it also computes the query tile's share of dq from the same dS: the warps
 * write dS^T (16 keys x 64 queries each, bf16) to a shared tile, and each warp then multiplies 16
 * queries' columns of it by the block's 64 keys (ldmatrix .trans on both operands, no transpose
 * stored), and adds that 16 x 64 share to an fp32 dq buffer with atomicAdd. Key blocks finish in any
 * order, so a small kernel first zeroes that buffer (and writes D = dout . out), and a last one
 * rounds it into dqkv. Shared memory: 32.5 KB, static (variant 3's 16.5 KB plus the block's k tile,
 * kept for dq, and the dS^T tile).
 * Teaches: trading recomputation for atomics, and what that costs: the sums of dq now arrive in an
 * order that varies from run to run, so its last bits do too (the other variants are deterministic);
 * the atomics move 64 x 64 x 4 bytes per tile pair through L2; and a dq buffer of B T C floats
 * (scratch) is needed. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py flash_attention --pass backward --variant 5
 */
#include "flash_attention/mma_tiles.cuh"  // tiles, fragment helpers, warp_mma.cuh, staged_copy.cuh

using namespace mma_tiles;

// D = dout . out per (b, h, t) into row_dots (B * NH * T floats), and dq_accum (B, T, C) zeroed.
// One warp per (b, t, h) in memory order, so neighbouring warps read neighbouring 128-byte rows.
// 128 threads a block, grid ceil(B * T * NH / 4).
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_prepare_atomic(
    float* row_dots, float* dq_accum, const floatX* dout, const floatX* out, int B, int T, int NH) {
    const int lane = threadIdx.x % 32;
    const size_t row = (size_t)blockIdx.x * WARPS + threadIdx.x / 32;  // (b * T + t) * NH + h
    if (row >= (size_t)B * T * NH) return;
    const int h = row % NH;
    const size_t bt = row / NH;
    const floatX* dy = dout + row * HS;  // (B, T, C) with C = NH * HS: row * HS is (b, t, h)'s start
    const floatX* y = out + row * HS;
    const float dot = warp_reduce_sum(to_float(dy[lane]) * to_float(y[lane]) +
                                      to_float(dy[lane + 32]) * to_float(y[lane + 32]));
    if (lane == 0) row_dots[((bt / T) * NH + h) * T + bt % T] = dot;
    reinterpret_cast<float2*>(dq_accum + row * HS)[lane] = make_float2(0.0f, 0.0f);
}

// dk, dv into dqkv's columns C.. and 2C.., and dq's shares added into dq_accum (B, T, C) fp32.
// Grid (ceil(T / 64), B * NH): a block owns 64 keys. 128 threads, 32.5 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_atomic_dq(
    float* dq_accum, floatX* dqkv, const float* row_dots, const floatX* dout, const floatX* qkv, const float* lse,
    int B, int T, int NH, float scale) {
    __shared__ __align__(128) Tile q_tile, dy_tile, k_tile, ds_tile;  // q_tile holds v's rows first
    __shared__ float lse_tile[TILE], D_tile[TILE];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int k0 = blockIdx.x * TILE;
    const int keys[2] = {k0 + 16 * warp + g, k0 + 16 * warp + g + 8};  // this lane's two key rows
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;

    stage(k_tile, q_base + C, 3 * C, k0, T);  // stays: dq's B operand on every query tile
    stage(q_tile, q_base + 2 * C, 3 * C, k0, T);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    RowOperand k, v;  // the warp's k and v rows, for the whole loop
    load_rows(k, k_tile, warp, lane);
    load_rows(v, q_tile, warp, lane);

    Accumulators dk = {}, dv = {};
    const int query_tiles = (T + TILE - 1) / TILE;
    for (int qt = blockIdx.x; qt < query_tiles; qt++) {  // query tiles at or below the diagonal
        const int q0 = qt * TILE;
        __syncthreads();  // every warp is done with the previous tiles (q, dout, dS^T; v's rows at first)
        stage_query_tile(q_tile, dy_tile, lse_tile, D_tile, q_base, dy_base, C, lse, row_dots, (size_t)bh * T, q0, T);
        __pipeline_commit();
        __pipeline_wait_prior(0);
        __syncthreads();
        Accumulators dpt;  // S^T, dP^T, P^T and dS^T on this warp's 16 keys, then dv and dk: variant 3's step
        key_block_tile(dk, dv, dpt, k, v, q_tile, dy_tile, lse_tile, D_tile, q0, keys, T, scale, lane);

        // dS^T to shared memory, rounded to bf16 as the products above used it: rows are keys.
#pragma unroll
        for (int j = 0; j < BLOCKS; j++) {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int key_row = 16 * warp + g + 8 * half;
                store_pair(&ds_tile[0][0] + swizzled<HS>(key_row, 8 * j + 2 * t), dpt[j][2 * half],
                           dpt[j][2 * half + 1], true, true);
            }
        }
        __syncthreads();

        // dq for this warp's 16 queries of the tile, over the block's 64 keys: dS (queries x keys)
        // is dS^T read with ldmatrix .trans (its rows are the product's k, the keys), and k's tile
        // rows are the product's k too, so it is read with .trans (step_times_tile_rows).
        Accumulators dq = {};
#pragma unroll
        for (int kk = 0; kk < STEPS; kk++) {
            unsigned a[4];
            ldmatrix_x4_trans(a, &ds_tile[0][0] + swizzled<HS>(16 * kk + n_row(lane), 16 * warp + k_col(lane)));
            step_times_tile_rows(dq, a, k_tile, kk, lane);
        }
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int query = q0 + 16 * warp + g + 8 * half;
            if (query >= T) continue;
            float* dq_row = dq_accum + ((size_t)b * T + query) * C + h * HS;
#pragma unroll
            for (int j = 0; j < BLOCKS; j++) {
                atomicAdd(dq_row + 8 * j + 2 * t, dq[j][2 * half]);
                atomicAdd(dq_row + 8 * j + 2 * t + 1, dq[j][2 * half + 1]);
            }
        }
    }
    store_key_gradients(dqkv, dk, dv, keys, b, h, T, C, lane);
}

// dq_accum (B, T, C) fp32 rounded into dqkv's first C columns, 4 values a thread: a warp's 16-byte
// loads cover 512 contiguous bytes and its 8-byte stores 256 (C = NH * 64 keeps every group of 4
// inside one row). 128 threads a block, grid ceil(B T C / 512).
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_store_dq(
    floatX* dqkv, const float* dq_accum, int B, int T, int NH) {
    const int C = NH * HS;
    const size_t first = ((size_t)blockIdx.x * THREADS + threadIdx.x) * 4;
    if (first >= (size_t)B * T * C) return;
    const size_t bt = first / C, c = first % C;
    const f128 dq = load128(dq_accum + first);
    floatX* target = dqkv + bt * 3 * C + c;
    WB_CHECK_ALIGNED(target, 8, "flash_attention_backward_store_dq");
    *reinterpret_cast<uint2*>(target) = make_uint2(pack_bf16(dq[0], dq[1]), pack_bf16(dq[2], dq[3]));
}
