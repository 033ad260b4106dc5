/*
 * flash_attention backward, variant 4: variant 3 with every staged tile double-buffered
 *
 * Changed: variant 3 issued each tile's copies only when the previous tile's products were done.
 * Here both kernels keep two buffers of the tiles they walk (k and v for dq; q, dout, and the
 * tile's lse and D for dk and dv): at the top of iteration i the copies of tile i + 1 go into the
 * buffers tile i - 1 used (a barrier first), and land while tile i's five products run. The first
 * tile's copies are issued with the block's own rows (q and dout, or k and v), which are staged in
 * the second buffers, so those wait for nothing but themselves. Commit groups are counted as in
 * flash forward 4: dq commits k then v per iteration, dk/dv one group per tile. Shared memory:
 * 32 KB and 33 KB, static.
 * Teaches: flash forward 4's pipeline applied to both directions of the backward, including a
 * buffer that holds ordinary loads (lse and D) beside the asynchronous copies, made visible by the
 * same barrier. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py flash_attention --pass backward --variant 4
 */
#include "flash_attention/mma_tiles.cuh"  // tiles, fragment helpers, warp_mma.cuh, staged_copy.cuh

using namespace mma_tiles;

// dq into dqkv's first C columns, and D = dout . out into row_dots (B * NH * T floats).
// Grid (ceil(T / 64), B * NH): a block owns 64 queries. 128 threads, 32 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dq_pipelined(
    floatX* dqkv, float* row_dots, const floatX* dout, const floatX* qkv, const floatX* out, const float* lse, int B,
    int T, int NH, float scale) {
    __shared__ __align__(128) Tile k_tiles[2], v_tiles[2];  // [1] holds q's and dout's tiles first

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

    stage(k_tiles[1], q_base, 3 * C, t0, T);
    stage(v_tiles[1], dy_base, C, t0, T);
    __pipeline_commit();
    stage(k_tiles[0], q_base + C, 3 * C, 0, T);  // key tile 0 on its way too
    __pipeline_commit();
    stage(v_tiles[0], q_base + 2 * C, 3 * C, 0, T);
    __pipeline_commit();

    // D_t = dout_t . out_t and lse for this lane's rows (and D for the dk/dv kernel), while the copies fly.
    float D[2], row_lse[2];
    row_dots_and_lse(D, row_lse, row_dots, lse, dy_base, y_base, C, (size_t)bh * T, first, T, lane);

    __pipeline_wait_prior(2);  // q and dout have landed (key tile 0 may not have)
    __syncthreads();
    RowOperand q, dy;  // the warp's q and dout rows, for the whole loop
    load_rows(q, k_tiles[1], warp, lane);
    load_rows(dy, v_tiles[1], warp, lane);

    Accumulators dq = {};
    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        const Tile& k_tile = k_tiles[kt % 2];
        const Tile& v_tile = v_tiles[kt % 2];
        __syncthreads();  // every warp is done with tile kt - 1 (or q and dout), whose buffers tile kt + 1 takes
        if (kt < (int)blockIdx.x) stage(k_tiles[(kt + 1) % 2], q_base + C, 3 * C, (kt + 1) * TILE, T);
        __pipeline_commit();  // two groups every iteration (empty on the last), so the counts below hold
        if (kt < (int)blockIdx.x) stage(v_tiles[(kt + 1) % 2], q_base + 2 * C, 3 * C, (kt + 1) * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(3);  // of k_kt, v_kt, k_kt+1, v_kt+1: k_kt has landed
        __syncthreads();
        Accumulators s, dp;
        rows_times_tile_rows(s, q, k_tile, lane);  // raw scores q k^T
        __pipeline_wait_prior(2);  // v_kt has landed
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
// 128 threads, 33 KB of static shared memory. Reads the D that the dq kernel wrote.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dkdv_pipelined(
    floatX* dqkv, const float* row_dots, const floatX* dout, const floatX* qkv, const float* lse, int B, int T,
    int NH, float scale) {
    __shared__ __align__(128) Tile q_tiles[2], dy_tiles[2];  // [1] holds k's and v's tiles first
    __shared__ float lse_tiles[2][TILE], D_tiles[2][TILE];

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

    const int query_tiles = (T + TILE - 1) / TILE;
    // Query tile qt's q, dout, lse and D into buffer `buffer` (q and dout as one commit group; lse and
    // D are ordinary loads, visible to all after the next barrier).
    auto stage_queries = [&](int qt, int buffer) {
        stage_query_tile(q_tiles[buffer], dy_tiles[buffer], lse_tiles[buffer], D_tiles[buffer], q_base, dy_base, C,
                         lse, row_dots, (size_t)bh * T, qt * TILE, T);
    };
    stage(q_tiles[1], q_base + C, 3 * C, k0, T);
    stage(dy_tiles[1], q_base + 2 * C, 3 * C, k0, T);
    __pipeline_commit();
    stage_queries(blockIdx.x, 0);  // the first query tile on its way too
    __pipeline_commit();
    __pipeline_wait_prior(1);  // k and v have landed
    __syncthreads();
    RowOperand k, v;  // the warp's k and v rows, for the whole loop
    load_rows(k, q_tiles[1], warp, lane);
    load_rows(v, dy_tiles[1], warp, lane);

    Accumulators dk = {}, dv = {};
    for (int qt = blockIdx.x; qt < query_tiles; qt++) {  // query tiles at or below the diagonal
        const int q0 = qt * TILE, buffer = (qt - blockIdx.x) % 2;
        const Tile& q_tile = q_tiles[buffer];
        const Tile& dy_tile = dy_tiles[buffer];
        const float* lse_tile = lse_tiles[buffer];
        const float* D_tile = D_tiles[buffer];
        __syncthreads();  // every warp is done with tile qt - 1 (or k and v), whose buffers tile qt + 1 takes
        if (qt + 1 < query_tiles) stage_queries(qt + 1, 1 - buffer);
        __pipeline_commit();  // a group every iteration (empty on the last), so the count below holds
        __pipeline_wait_prior(1);  // tile qt's q and dout have landed (qt + 1's may not have)
        __syncthreads();
        Accumulators dst;  // S^T, dP^T, P^T and dS^T on this warp's 16 keys, then dv and dk
        key_block_tile(dk, dv, dst, k, v, q_tile, dy_tile, lse_tile, D_tile, q0, keys, T, scale, lane);
    }
    store_key_gradients(dqkv, dk, dv, keys, b, h, T, C, lane);
}
