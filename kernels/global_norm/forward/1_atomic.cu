/*
 * global_norm forward, variant 1: block sums added atomically
 *
 * Changed: the starting point. A grid sized to fill the GPU once walks the gradients with a
 * grid-stride loop, each thread summing the squares of its elements in fp32; a block reduction
 * combines the block's threads and thread 0 adds the block's sum into the (zeroed) output with
 * atomicAdd. A second, one-thread kernel replaces the sum of squares by its square root.
 * Teaches: the standard shape of a full reduction (per-thread serial sums, a block tree, one
 * atomic per block, so a few hundred atomics rather than one per element) and its flaw: blocks
 * finish in an order that changes from run to run, and float addition is not associative, so the
 * norm, and with it the clipping factor and the whole training run, is not bit-reproducible.
 * Run: python bench.py global_norm --variant 1
 */
#include "common.cuh"

// norm (1,) float, zeroed by the launch function; grads (P,) floatX.
extern "C" __global__ void global_norm_sum_squares_atomic(float* norm, const floatX* grads, int P) {
    __shared__ float scratch[32];
    float sum = 0.0f;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)P; i += stride) {
        const float g = to_float(grads[i]);
        sum += g * g;
    }
    // Every thread reaches the reduction's barriers: the loop above has none, and no thread left.
    sum = block_reduce_sum(sum, scratch);
    if (threadIdx.x == 0) atomicAdd(norm, sum);
}

// Runs after every block of the first kernel has added its sum (kernels on one stream are ordered).
extern "C" __global__ void global_norm_sqrt(float* norm) {
    if (blockIdx.x == 0 && threadIdx.x == 0) norm[0] = sqrtf(norm[0]);
}
