// Shared by global_norm forward variants 2 and 3: the block sum that produces each block's
// partial, and the second kernel, which adds the partials in a fixed order and writes the norm.
#pragma once
#include "common.cuh"

// The sum over the block, valid in thread 0 only (the one thread that writes it). Like
// block_reduce_sum in common.cuh, but only warp 0 runs the second stage: the other warps have no
// use for the total. blockDim.x a multiple of 32; `scratch` 32 floats of shared memory, not reused
// after (there is no trailing barrier). A fixed tree: the same inputs give the same bits.
__device__ __forceinline__ float block_sum_to_thread0(float v, float* scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    v = warp_reduce_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {  // a whole warp: its full-mask shuffles have every lane present
        v = (lane < blockDim.x / 32) ? scratch[lane] : 0.0f;
        v = warp_reduce_sum(v);
    }
    return v;
}

// One block: thread t adds partials t, t + blockDim.x, ... in order, then the block tree (whose
// shape depends only on blockDim.x) combines the threads: the same order every run, so the same
// bits. blockDim.x a multiple of 32, at most 1024. norm (1,) float; partials (num_blocks,) float.
extern "C" __global__ void global_norm_reduce_partials(float* norm, const float* partials, int num_blocks) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    for (int b = threadIdx.x; b < num_blocks; b += blockDim.x) sum += partials[b];
    sum = block_sum_to_thread0(sum, scratch);
    if (threadIdx.x == 0) norm[0] = sqrtf(sum);
}
