/*
 * layernorm forward, variant 1: one thread per row
 *
 * Changed: the starting point, a direct port of the CPU loop: each thread owns one row and walks
 * it three times (mean, variance, normalise).
 * Teaches: the baseline to beat. Neighbouring threads read addresses C floats apart, so a warp's
 * loads are never coalesced and few threads (N of them) are in flight.
 * Run: python bench.py layernorm --variant 1
 */
#include "common.cuh"

extern "C" __global__ void layernorm_forward_thread_per_row(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;
    const floatX* x = inp + (size_t)row * C;

    float sum = 0.0f;
    for (int i = 0; i < C; i++) sum += to_float(x[i]);
    const float m = sum / C;

    float sum_sq = 0.0f;
    for (int i = 0; i < C; i++) {
        const float d = to_float(x[i]) - m;
        sum_sq += d * d;
    }
    const float s = rsqrtf(sum_sq / C + 1e-5f);

    floatX* y = out + (size_t)row * C;
    for (int i = 0; i < C; i++) {
        const float norm = (to_float(x[i]) - m) * s;
        y[i] = from_float<floatX>(norm * to_float(weight[i]) + to_float(bias[i]));
    }
    mean[row] = m;
    rstd[row] = s;
}
