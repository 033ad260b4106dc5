/*
 * flash_attention forward, variant 4: variant 3 with k and v double-buffered (cp.async two stages)
 *
 * Changed: variant 3 issued each tile's k and v copies only once the previous tile's P v was done,
 * so every tile began with the warps waiting on memory. Here k and v have two shared buffers each:
 * at the top of iteration kt the copies of tile kt + 1 go into the buffers tile kt - 1 used (a
 * barrier first: every warp is done with them), and they land while tile kt's scores, softmax and
 * P v run. The commit groups are counted: every iteration commits two (k, then v; empty on the last),
 * so __pipeline_wait_prior(3) means "tile kt's k has landed" and (2) "its v has". Shared memory: q
 * and two k and v buffers, 40 KB, still static.
 * Teaches: software pipelining across the key loop, matmul forward 5's lesson in the flash loop, and
 * how to keep asynchronous copies' group counts straight. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py flash_attention --variant 4
 */
#include "flash_attention/mma_tiles.cuh"  // tiles, fragment helpers, warp_mma.cuh, staged_copy.cuh

using namespace mma_tiles;

// out (B, T, C) floatX, lse (B, NH, T) fp32, qkv (B, T, 3C) floatX, C = NH * HS.
// Grid (ceil(T / 64), B * NH), 128 threads, 40 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_forward_pipelined(
    floatX* out, float* lse, const floatX* qkv, int B, int T, int NH, float scale) {
    __shared__ __align__(128) Tile q_tile, k_tiles[2], v_tiles[2];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int g = lane / 4;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;
    const int rows[2] = {t0 + 16 * warp + g, t0 + 16 * warp + g + 8};  // this lane's two query rows
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* k_base = q_base + C;
    const floatX* v_base = q_base + 2 * C;

    stage(q_tile, q_base, 3 * C, t0, T);
    __pipeline_commit();
    stage(k_tiles[0], k_base, 3 * C, 0, T);  // key tile 0 on its way too
    __pipeline_commit();
    stage(v_tiles[0], v_base, 3 * C, 0, T);
    __pipeline_commit();
    __pipeline_wait_prior(2);  // q has landed (tile 0's k and v may not have)
    __syncthreads();
    RowOperand q;  // the warp's 16 query rows, for the whole loop
    load_rows(q, q_tile, warp, lane);

    float m[2] = {LOWEST, LOWEST};  // running maximum of rows g and g + 8 (the same in the group's 4 lanes)
    float l[2] = {0.0f, 0.0f};      // this lane's share of their running sums
    Accumulators o = {};            // the output, rows g and g + 8

    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        const Tile& k_tile = k_tiles[kt % 2];
        const Tile& v_tile = v_tiles[kt % 2];
        __syncthreads();  // every warp is done with tile kt - 1, whose buffers tile kt + 1 takes
        if (kt < (int)blockIdx.x) stage(k_tiles[(kt + 1) % 2], k_base, 3 * C, (kt + 1) * TILE, T);
        __pipeline_commit();  // a group every iteration (empty on the last), so the counts below hold
        if (kt < (int)blockIdx.x) stage(v_tiles[(kt + 1) % 2], v_base, 3 * C, (kt + 1) * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(3);  // of k_kt, v_kt, k_kt+1, v_kt+1: this thread's k_kt has landed
        __syncthreads();           // and everyone's

        Accumulators s;  // raw scores q k^T: keys 8j + 2t, 8j + 2t + 1 of rows g, g + 8
        rows_times_tile_rows(s, q, k_tile, lane);

        // The online softmax, in registers: mask, scale, new maximum, rescale, exponentiate.
        online_softmax_tile(s, m, l, o, kt * TILE, rows, scale, lane);

        __pipeline_wait_prior(2);  // v_kt has landed (tile kt + 1's copies may still be in flight)
        __syncthreads();
        accumulate_times_tile(o, s, v_tile, lane);  // o += P v, P straight from the score registers
    }

    store_output_and_lse(out, lse, o, m, l, rows, bh, NH, T, lane);  // out[b, t, h * HS + c], lse[b, h, t]
}
