// The online softmax normaliser shared by the classifier's forward and backward variant 2: a running
// (max, sum of exp(x - max)) pair, grown a pack at a time and merged across a warp and a block.
#pragma once
#include "common.cuh"

// A partial softmax normaliser: the largest logit seen and the sum of exp(x - max) over the
// logits seen. {LOWEST, 0} stands for "nothing seen yet".
struct MaxSum {
    float max;
    float sum;
};

// Merge two partials: rescale both sums to the larger maximum. Symmetric in a and b, so both lanes
// of a butterfly step get the same bits: fmaxf and a float addition are commutative, and the two
// products are rounded separately (__fmul_rn), because the compiler would otherwise fuse one of them
// into the addition (an fma) and each lane would round its partner's term but not its own.
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.max, b.max);
    return {m, __fadd_rn(__fmul_rn(a.sum, expf(a.max - m)), __fmul_rn(b.sum, expf(b.max - m)))};
}

// Fold one 128-bit pack of logits, whose first column is `first`, into a running pair. The pack's
// own maximum comes first, so the running sum is rescaled once per pack, not once per logit.
// Columns >= V are padding: masked out of both the maximum and the sum.
__device__ __forceinline__ MaxSum add_pack(MaxSum acc, const x128& in, int first, int V) {
    float pack_max = LOWEST;
#pragma unroll
    for (int j = 0; j < x128::size; j++) {
        if (first + j < V) pack_max = fmaxf(pack_max, to_float(in[j]));
    }
    const float m = fmaxf(acc.max, pack_max);
    float sum = acc.sum * expf(acc.max - m);
#pragma unroll
    for (int j = 0; j < x128::size; j++) {
        if (first + j < V) sum += expf(to_float(in[j]) - m);
    }
    return {m, sum};
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

