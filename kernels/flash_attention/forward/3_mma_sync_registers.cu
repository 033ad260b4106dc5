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
 * staged_copy.cuh): 24 KB against variant 2's 70 KB. The fragment helpers are in mma_tiles.cuh.
 * Teaches: the FlashAttention-2 forward on Ampere-style tensor cores, and how the m16n8k16
 * fragment layouts make it possible: a row's statistics live in 4 lanes, and an accumulator is an
 * operand. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py flash_attention --variant 3
 */
#include "flash_attention/mma_tiles.cuh"  // tiles, fragment helpers, warp_mma.cuh, staged_copy.cuh

using namespace mma_tiles;

// out (B, T, C) floatX, lse (B, NH, T) fp32, qkv (B, T, 3C) floatX, C = NH * HS.
// Grid (ceil(T / 64), B * NH), 128 threads, 24 KB of static shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_forward_mma_sync(
    floatX* out, float* lse, const floatX* qkv, int B, int T, int NH, float scale) {
    __shared__ __align__(128) Tile q_tile, k_tile, v_tile;

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
    __pipeline_wait_prior(0);
    __syncthreads();
    RowOperand q;  // the warp's 16 query rows, for the whole loop
    load_rows(q, q_tile, warp, lane);

    float m[2] = {LOWEST, LOWEST};  // running maximum of rows g and g + 8 (the same in the group's 4 lanes)
    float l[2] = {0.0f, 0.0f};      // this lane's share of their running sums
    Accumulators o = {};            // the output, rows g and g + 8

    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        __syncthreads();  // every warp is done with the previous k and v tiles
        stage(k_tile, k_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        stage(v_tile, v_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // this thread's k copies have landed (v's may still be in flight)
        __syncthreads();

        Accumulators s;  // raw scores q k^T: keys 8j + 2t, 8j + 2t + 1 of rows g, g + 8
        rows_times_tile_rows(s, q, k_tile, lane);

        // The online softmax, in registers: mask, scale, new maximum, rescale, exponentiate.
        online_softmax_tile(s, m, l, o, kt * TILE, rows, scale, lane);

        __pipeline_wait_prior(0);  // v's copies have landed
        __syncthreads();
        accumulate_times_tile(o, s, v_tile, lane);  // o += P v, P straight from the score registers
    }

    store_output_and_lse(out, lse, o, m, l, rows, bh, NH, T, lane);  // out[b, t, h * HS + c], lse[b, h, t]
}
