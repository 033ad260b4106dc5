/*
 * layernorm backward, variant 2: one warp per row, block sums in shared memory
 *
 * Changed: a warp of 32 threads shares each row, so its loads are coalesced (lane i reads column
 * i, i + 32, ...) and the two row sums are warp reductions. Each block first sums its rows'
 * dweight and dbias terms in shared memory (2 * C floats, with shared atomics between its warps),
 * then adds those sums into global memory: one atomicAdd per column per block instead of one per
 * column per row.
 * Teaches: cooperative groups (tiled_partition into warps, cg::reduce), dynamic shared memory as a
 * per-block accumulator, and the barriers that go with it: zero it, __syncthreads, accumulate,
 * __syncthreads, write out. Still fp32 only and not deterministic (atomics in any order).
 * Run: python bench.py layernorm --pass backward --variant 2
 */
#include "common.cuh"

// dweight and dbias are float: fp32 only (float atomicAdd), zeroed by the launch function.
// Dynamic shared memory: 2 * C floats, [0, C) sums dweight and [C, 2C) sums dbias.
extern "C" __global__ void layernorm_backward_warp_per_row(
    floatX* dinp, float* dweight, float* dbias,
    const floatX* dout, const floatX* inp, const floatX* weight,
    const float* mean, const float* rstd, int N, int C) {
    extern __shared__ float shared[];
    float* dweight_block = shared;
    float* dbias_block = shared + C;

    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);

    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) shared[i] = 0.0f;
    block.sync();  // every warp may add to any column: all of it must be zero first

    // The same for all 32 lanes of a warp, so a warp past the last row skips the work as a whole
    // (its shuffles never miss a lane) and still reaches the barrier below.
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    if (row < N) {
        const size_t offset = (size_t)row * C;
        const floatX* g = dout + offset;
        const floatX* x = inp + offset;
        const float m = mean[row];
        const float s = rstd[row];

        float sum_dnorm = 0.0f;
        float sum_dnorm_norm = 0.0f;
        for (int i = warp.thread_rank(); i < C; i += 32) {
            const float norm = (to_float(x[i]) - m) * s;
            const float dnorm = to_float(g[i]) * to_float(weight[i]);
            sum_dnorm += dnorm;
            sum_dnorm_norm += dnorm * norm;
        }
        const float dnorm_mean = cg::reduce(warp, sum_dnorm, cg::plus<float>()) / C;
        const float dnorm_norm_mean = cg::reduce(warp, sum_dnorm_norm, cg::plus<float>()) / C;

        floatX* dx = dinp + offset;
        for (int i = warp.thread_rank(); i < C; i += 32) {
            const float d = to_float(g[i]);
            const float norm = (to_float(x[i]) - m) * s;
            const float dnorm = d * to_float(weight[i]);
            dx[i] = from_float<floatX>((dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
            atomicAdd(dbias_block + i, d);  // the block's other warps add to the same columns
            atomicAdd(dweight_block + i, d * norm);
        }
    }
    block.sync();  // all warps' additions are in shared memory before it is read

    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        atomicAdd(dweight + i, dweight_block[i]);
        atomicAdd(dbias + i, dbias_block[i]);
    }
}
