// The online softmax normaliser shared by the classifier's forward and backward variant 2: a running
// (max, sum of exp(x - max)) pair, merged across a warp and a block.
#pragma once
#include "common.cuh"

// A partial softmax normaliser: the largest logit seen and the sum of exp(x - max) over the
// logits seen. {LOWEST, 0} stands for "nothing seen yet".
struct MaxSum {
    float max;
    float sum;
};

// Merge two partials: rescale both sums to the larger maximum. Symmetric in a and b (fmaxf and
// a float addition are both commutative), so every lane of a butterfly gets the same result.
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.max, b.max);
    return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__device__ __forceinline__ MaxSum warp_reduce_max_sum(MaxSum v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const MaxSum other = {__shfl_xor_sync(0xffffffffu, v.max, offset),
                              __shfl_xor_sync(0xffffffffu, v.sum, offset)};
        v = combine(v, other);
    }
    return v;
}

// Over the whole block, every thread gets the result; blockDim.x a multiple of 32.
__device__ __forceinline__ MaxSum block_reduce_max_sum(MaxSum v, float* max_scratch, float* sum_scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int num_warps = blockDim.x / 32;
    v = warp_reduce_max_sum(v);
    if (lane == 0) {
        max_scratch[warp] = v.max;
        sum_scratch[warp] = v.sum;
    }
    __syncthreads();
    v = (lane < num_warps) ? MaxSum{max_scratch[lane], sum_scratch[lane]} : MaxSum{LOWEST, 0.0f};
    v = warp_reduce_max_sum(v);
    __syncthreads();
    return v;
}

