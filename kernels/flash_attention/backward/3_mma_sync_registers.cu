/*
 * flash_attention backward, variant 3: mma.sync, P and dS recomputed and used in registers
 *
 * Changed: variant 2's two kernels and their split of the work, but on mma.sync (kernels/warp_mma.cuh)
 * instead of WMMA. There, every tile's S and dP left the accumulators through per-warp fp32 tiles in
 * shared memory, and P and dS came back through bf16 tiles to be the next products' operands. Here
 * the fragment layout is known, so P = exp(scale S - lse) and dS = scale P (dP - D) are computed on
 * the accumulator registers themselves (each lane knows which query and key every value belongs to),
 * and rounded to bf16 they are already the A operands of dq += dS k, dv += P^T dout and dk += dS^T q
 * (the dk/dv kernel computes S^T = k q^T directly, so its accumulators are P^T's rows). The B
 * operands of those products are staged tiles whose rows are the product's k: ldmatrix .trans reads
 * them. Shared memory holds only the two staged tiles (swizzled) and, for dk and dv, the query tile's
 * lse and D: 16.5 KB per block against variant 2's 81 KB and 89 KB. Helpers in mma_tiles.cuh.
 * Teaches: the FlashAttention-2 backward's inner loop, where five products chain through registers,
 * and that choosing which side a block owns also chooses the layout its results come out in (S or
 * S^T). What it keeps from variant 2: S and dP are computed in both kernels (seven products for
 * five), the price of giving every gradient one owner and no atomics. bf16 only, HS = 64 (GPT-2's
 * head size).
 * Run: python bench.py flash_attention --pass backward --variant 3
 */
#include "flash_attention/mma_tiles.cuh"  // tiles, fragment helpers, warp_mma.cuh, staged_copy.cuh

using namespace mma_tiles;

// dq into dqkv's first C columns, and D = dout . out into row_dots (B * NH * T floats).
// Grid (ceil(T / 64), B * NH): a block owns 64 queries. 128 threads, 16 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dq_mma_sync(
    floatX* dqkv, float* row_dots, const floatX* dout, const floatX* qkv, const floatX* out, const float* lse, int B,
    int T, int NH, float scale) {
    __shared__ __align__(128) Tile k_tile, v_tile;  // q's and dout's tiles first, for the fragments

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;
    const int first = t0 + 16 * warp;                   // this warp's first query row
    const int rows[2] = {first + g, first + g + 8};     // this lane's two query rows
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;
    const floatX* y_base = out + (size_t)b * T * C + h * HS;

    stage(k_tile, q_base, 3 * C, t0, T);
    stage(v_tile, dy_base, C, t0, T);
    __pipeline_commit();

    // D_t = dout_t . out_t and lse for this lane's rows (and D for the dk/dv kernel), while the copies fly.
    float D[2], row_lse[2];
    row_dots_and_lse(D, row_lse, row_dots, lse, dy_base, y_base, C, (size_t)bh * T, first, T, lane);

    __pipeline_wait_prior(0);
    __syncthreads();
    RowOperand q, dy;  // the warp's q and dout rows, for the whole loop
    load_rows(q, k_tile, warp, lane);
    load_rows(dy, v_tile, warp, lane);

    Accumulators dq = {};
    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        __syncthreads();  // every warp is done with the previous tiles (and loaded its fragments)
        stage(k_tile, q_base + C, 3 * C, kt * TILE, T);
        __pipeline_commit();
        stage(v_tile, q_base + 2 * C, 3 * C, kt * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // this thread's k copies have landed (v's may be in flight)
        __syncthreads();
        Accumulators s, dp;
        rows_times_tile_rows(s, q, k_tile, lane);  // raw scores q k^T
        __pipeline_wait_prior(0);
        __syncthreads();
        rows_times_tile_rows(dp, dy, v_tile, lane);  // dP = dout v^T

        // dS = scale P (dP - D), P recomputed from lse: in place of dp.
        softmax_backward_rows(dp, s, kt * TILE, rows, row_lse, D, T, scale, lane);
        accumulate_times_tile(dq, dp, k_tile, lane);  // dq += dS k
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        if (rows[half] < T) store_row(dqkv + ((size_t)b * T + rows[half]) * 3 * C + h * HS, dq, half, 1.0f, lane);
    }
}

// dk and dv into dqkv's columns C.. and 2C... Grid (ceil(T / 64), B * NH): a block owns 64 keys.
// 128 threads, 16.5 KB of static shared memory. Reads the D that the dq kernel wrote.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dkdv_mma_sync(
    floatX* dqkv, const float* row_dots, const floatX* dout, const floatX* qkv, const float* lse, int B, int T,
    int NH, float scale) {
    __shared__ __align__(128) Tile q_tile, dy_tile;  // k's and v's tiles first, for the fragments
    __shared__ float lse_tile[TILE], D_tile[TILE];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int k0 = blockIdx.x * TILE;
    const int keys[2] = {k0 + 16 * warp + g, k0 + 16 * warp + g + 8};  // this lane's two key rows
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;

    stage(q_tile, q_base + C, 3 * C, k0, T);
    stage(dy_tile, q_base + 2 * C, 3 * C, k0, T);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    RowOperand k, v;  // the warp's k and v rows, for the whole loop
    load_rows(k, q_tile, warp, lane);
    load_rows(v, dy_tile, warp, lane);

    Accumulators dk = {}, dv = {};
    const int query_tiles = (T + TILE - 1) / TILE;
    for (int qt = blockIdx.x; qt < query_tiles; qt++) {  // query tiles at or below the diagonal
        const int q0 = qt * TILE;
        __syncthreads();  // every warp is done with the previous tiles (and loaded its fragments)
        stage_query_tile(q_tile, dy_tile, lse_tile, D_tile, q_base, dy_base, C, lse, row_dots, (size_t)bh * T, q0, T);
        __pipeline_commit();
        __pipeline_wait_prior(0);
        __syncthreads();
        Accumulators dst;  // S^T, dP^T, P^T and dS^T on this warp's 16 keys, then dv and dk
        key_block_tile(dk, dv, dst, k, v, q_tile, dy_tile, lse_tile, D_tile, q0, keys, T, scale, lane);
    }
    store_key_gradients(dqkv, dk, dv, keys, b, h, T, C, lane);
}
