// The second kernel of layernorm backward variants 3 and 4: sum the per-block partials of dweight
// and dbias column by column, in a fixed order.
#pragma once
#include "common.cuh"

// Column sums of the partials. Block b covers the 32 columns j = 32 * b + lane of the flattened
// (2 * C) partial rows (j < C: dweight[j]; j >= C: dbias[j - C]). Warp w of the block sums the
// partials of blocks w, w + warps, ... (each a coalesced 128-byte read), the warps' sums meet in
// shared memory and warp 0 adds them in warp order: a fixed order, so deterministic.
// blockDim.x is a multiple of 32, at most 1024.
extern "C" __global__ void layernorm_backward_reduce_partials(
    floatX* dweight, floatX* dbias, const float* partials, int num_blocks, int C) {
    __shared__ float warp_sums[32][32];
    const int lane = threadIdx.x % 32;
    const int w = threadIdx.x / 32;
    const int warps = blockDim.x / 32;
    const int j = blockIdx.x * 32 + lane;
    const int width = 2 * C;

    float total = 0.0f;
    if (j < width) {  // lanes past the last column add nothing but still reach the barrier
        for (int b = w; b < num_blocks; b += warps) total += partials[(size_t)b * width + j];
    }
    warp_sums[w][lane] = total;
    __syncthreads();

    if (w == 0 && j < width) {
        float sum = 0.0f;
        for (int v = 0; v < warps; v++) sum += warp_sums[v][lane];
        if (j < C) {
            dweight[j] = from_float<floatX>(sum);
        } else {
            dbias[j - C] = from_float<floatX>(sum);
        }
    }
}
