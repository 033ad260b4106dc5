// The second kernel of global_norm forward variants 2 and 3: add the per-block partial sums of
// squares in a fixed order and write the norm.
#pragma once
#include "common.cuh"

// One block: thread t adds partials t, t + blockDim.x, ... in order, then the block tree (whose
// shape depends only on blockDim.x) combines the threads: the same order every run, so the same
// bits. blockDim.x a multiple of 32, at most 1024. norm (1,) float; partials (num_blocks,) float.
extern "C" __global__ void global_norm_reduce_partials(float* norm, const float* partials, int num_blocks) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    for (int b = threadIdx.x; b < num_blocks; b += blockDim.x) sum += partials[b];
    sum = block_reduce_sum(sum, scratch);
    if (threadIdx.x == 0) norm[0] = sqrtf(sum);
}
