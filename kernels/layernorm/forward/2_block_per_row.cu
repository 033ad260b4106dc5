/*
 * layernorm forward, variant 2: one block per row
 *
 * Changed: a whole block shares each row: thread t reads elements t, t + blockDim.x, ... and a
 * shared-memory reduction (block_reduce_sum) combines the partial sums, once for the mean and
 * once for the variance.
 * Teaches: neighbouring threads now read neighbouring addresses, so every warp load is coalesced
 * and N * blockDim.x threads are in flight instead of N. The price is two __syncthreads-bound
 * reductions per row, which dominate when C is small compared with the block.
 * Run: python bench.py layernorm --variant 2
 */
#include "common.cuh"

extern "C" __global__ void layernorm_forward_block_per_row(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    __shared__ float scratch[32];
    // The grid has exactly N blocks, so every block owns a valid row and every thread reaches
    // both block-wide barriers inside block_reduce_sum.
    const int row = blockIdx.x;
    const floatX* x = inp + (size_t)row * C;

    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sum += to_float(x[c]);
    const float m = block_reduce_sum(sum, scratch) / C;

    // The second pass re-reads the row (from cache) to subtract the exact mean before squaring;
    // E[x^2] - E[x]^2 in one pass would cancel catastrophically when |mean| >> std.
    float sum_sq = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float d = to_float(x[c]) - m;
        sum_sq += d * d;
    }
    const float s = rsqrtf(block_reduce_sum(sum_sq, scratch) / C + 1e-5f);

    floatX* y = out + (size_t)row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float norm = (to_float(x[c]) - m) * s;
        y[c] = from_float<floatX>(norm * to_float(weight[c]) + to_float(bias[c]));
    }
    if (threadIdx.x == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}
