/*
 * layernorm backward, variant 1: one thread per row
 *
 * Changed: the starting point, a direct port of the CPU backward: each thread owns one row, walks
 * it once for the two row means (of dnorm and of dnorm * norm), then again to write dinp, and adds
 * its row's contributions to dweight and dbias with global atomicAdd.
 * Teaches: the baseline to beat, and why the parameter gradients are the hard part: dinp is a
 * per-row job, but dweight and dbias are sums over every row, so all N threads hammer the same C
 * addresses (a warp's 32 atomics to one address serialise). The float atomics make it fp32 only,
 * and their order, so the rounding of the sums, changes from run to run.
 * Run: python bench.py layernorm --pass backward --variant 1
 */
#include "common.cuh"

// dweight and dbias are float, not floatX: this variant is declared fp32 only (float atomicAdd),
// and the launch function zeroes them before the kernel adds into them.
extern "C" __global__ void layernorm_backward_thread_per_row(
    floatX* dinp, float* dweight, float* dbias,
    const floatX* dout, const floatX* inp, const floatX* weight,
    const float* mean, const float* rstd, int N, int C) {
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= N) return;  // no barriers or shuffles below, so the tail threads may leave
    const size_t offset = (size_t)row * C;
    const floatX* g = dout + offset;
    const floatX* x = inp + offset;
    const float m = mean[row];
    const float s = rstd[row];

    // Pass 1: the row means of dnorm = dout * weight and of dnorm * norm.
    float sum_dnorm = 0.0f;
    float sum_dnorm_norm = 0.0f;
    for (int i = 0; i < C; i++) {
        const float norm = (to_float(x[i]) - m) * s;
        const float dnorm = to_float(g[i]) * to_float(weight[i]);
        sum_dnorm += dnorm;
        sum_dnorm_norm += dnorm * norm;
    }
    const float dnorm_mean = sum_dnorm / C;
    const float dnorm_norm_mean = sum_dnorm_norm / C;

    // Pass 2: dinp, and this row's terms of the parameter gradients.
    floatX* dx = dinp + offset;
    for (int i = 0; i < C; i++) {
        const float d = to_float(g[i]);
        const float norm = (to_float(x[i]) - m) * s;
        const float dnorm = d * to_float(weight[i]);
        dx[i] = from_float<floatX>((dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
        atomicAdd(dbias + i, d);
        atomicAdd(dweight + i, d * norm);
    }
}
