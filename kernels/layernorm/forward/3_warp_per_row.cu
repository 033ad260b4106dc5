/*
 * layernorm forward, variant 3: one warp per row
 *
 * Changed: a warp, not a block, owns a row, and the reductions are register shuffles
 * (cooperative groups' cg::reduce over a 32-thread tile) with no shared memory and no
 * __syncthreads. A block now holds blockDim.x / 32 independent rows.
 * Teaches: warps are the natural unit for rows of a few thousand elements: a shuffle reduction
 * costs a handful of instructions, and warps of one block never wait for each other, so a slow
 * row does not stall its neighbours.
 * Run: python bench.py layernorm --variant 3
 */
#include "common.cuh"

extern "C" __global__ void layernorm_forward_warp_per_row(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    // All 32 lanes share `row`, so the whole warp leaves together: no shuffle loses a lane, and
    // this kernel has no block-wide barrier that the departed warp could miss.
    if (row >= N) return;
    const int lane = warp.thread_rank();
    const floatX* x = inp + (size_t)row * C;

    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += to_float(x[c]);
    const float m = cg::reduce(warp, sum, cg::plus<float>()) / C;

    float sum_sq = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = to_float(x[c]) - m;
        sum_sq += d * d;
    }
    const float s = rsqrtf(cg::reduce(warp, sum_sq, cg::plus<float>()) / C + 1e-5f);

    floatX* y = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        const float norm = (to_float(x[c]) - m) * s;
        y[c] = from_float<floatX>(norm * to_float(weight[c]) + to_float(bias[c]));
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}
