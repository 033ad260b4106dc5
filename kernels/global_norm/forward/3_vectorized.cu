/*
 * global_norm forward, variant 3: 128-bit loads, deterministic
 *
 * Changed: variant 2 with every gradient load 16 bytes wide (4 fp32 or 8 bf16 values) and
 * streaming (ld.global.cs: each value is read once); the partials and their reduction are the same.
 * Teaches: why a reduction that is bound by memory still cares about instruction count: with
 * 2-byte bf16 loads a grid that fills the GPU keeps too few bytes in flight to cover memory
 * latency, and a 16-byte load puts eight times as many in flight per instruction. Needs
 * P % x128::size == 0 (GPT-2's parameter count is a multiple of 8).
 * Run: python bench.py global_norm --variant 3
 */
#include "common.cuh"
#include "reduce_partials.cuh"  // block_sum_to_thread0, and the second kernel: partials -> norm

// partials (gridDim.x,) float: block b writes partials[b]; grads (P,) floatX, P a multiple of
// x128::size.
extern "C" __global__ void global_norm_vectorized_partials(float* partials, const floatX* grads, int P) {
    __shared__ float scratch[32];
    const size_t packs = (size_t)P / x128::size;
    // A block whose first pack lies past the end (small P, or more blocks than it needs) has
    // nothing to add: it writes its zero and leaves as a whole, so no thread skips a barrier the
    // others wait at.
    if ((size_t)blockIdx.x * blockDim.x >= packs) {
        if (threadIdx.x == 0) partials[blockIdx.x] = 0.0f;
        return;
    }
    float sum = 0.0f;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t pack = (size_t)blockIdx.x * blockDim.x + threadIdx.x; pack < packs; pack += stride) {
        const x128 g = load128cs(grads + pack * x128::size);
#pragma unroll
        for (int j = 0; j < x128::size; j++) {
            const float value = to_float(g[j]);
            sum += value * value;
        }
    }
    sum = block_sum_to_thread0(sum, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}
