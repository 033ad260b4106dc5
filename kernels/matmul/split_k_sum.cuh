// The second pass of the split-K matmul backward variants (4 and 5): the fp32 partials of dweight
// and dbias added up in order of z (so the result is deterministic) and rounded to floatX.
#pragma once
#include "common.cuh"

// One thread per element of dweight, then N more for dbias: grid ceil((N * K + N) / blockDim.x).
__device__ __forceinline__ void sum_partials(floatX* dweight, floatX* dbias, const float* dweight_partials,
                                             const float* dbias_partials, int N, int K, int splits) {
    const size_t index = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t weights = (size_t)N * K;
    if (index < weights) {
        float sum = 0.0f;
        for (int z = 0; z < splits; z++) sum += dweight_partials[(size_t)z * weights + index];
        dweight[index] = from_float<floatX>(sum);
    } else if (index < weights + N) {
        const size_t n = index - weights;
        float sum = 0.0f;
        for (int z = 0; z < splits; z++) sum += dbias_partials[(size_t)z * N + n];
        dbias[n] = from_float<floatX>(sum);
    }
}
