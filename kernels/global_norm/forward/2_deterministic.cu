/*
 * global_norm forward, variant 2: per-block partials, deterministic
 *
 * Changed: no atomics. A fixed grid (its size is part of the launch configuration) writes one
 * partial sum of squares per block to a scratch buffer; a second kernel of one block adds the
 * partials in a fixed order and writes the square root.
 * Teaches: how a fixed grid and a fixed order of additions make a reduction bit-for-bit
 * reproducible, at the cost of a second kernel that is too small to matter (a few hundred floats).
 * The grid size is a config value, not derived from the device, because the scratch is sized
 * before any device is known and because a different grid would sum in a different order.
 * Run: python bench.py global_norm --variant 2
 */
#include "common.cuh"
#include "reduce_partials.cuh"  // block_sum_to_thread0, and the second kernel: partials -> norm

// partials (gridDim.x,) float: block b writes partials[b]; grads (P,) floatX.
extern "C" __global__ void global_norm_block_partials(float* partials, const floatX* grads, int P) {
    __shared__ float scratch[32];
    // A block whose first element lies past the end (small P, or more blocks than it needs) has
    // nothing to add: it writes its zero and leaves as a whole, so no thread skips a barrier the
    // others wait at.
    if ((size_t)blockIdx.x * blockDim.x >= (size_t)P) {
        if (threadIdx.x == 0) partials[blockIdx.x] = 0.0f;
        return;
    }
    float sum = 0.0f;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)P; i += stride) {
        const float g = to_float(grads[i]);
        sum += g * g;
    }
    sum = block_sum_to_thread0(sum, scratch);
    // Every block writes its partial, so the second kernel never reads an unwritten value.
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}
