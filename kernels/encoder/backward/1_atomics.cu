/*
 * encoder backward, variant 1: one thread per element, fp32 atomics
 *
 * Changed: the starting point, a direct port of the CPU loop: thread i takes dout[i] at its
 * (b, t, c) and adds it with atomicAdd into dwte[tokens[b, t], c] and into dwpe[t, c], which the
 * launch function zeroed first.
 * Teaches: the baseline, and where the time goes: the B * T * C additions are cheap, but zeroing
 * dwte touches the whole (V, C) table, over six times the bytes of dout at GPT-2's sizes. Threads
 * of a warp add to neighbouring addresses, so the atomics do not serialise within a warp; only
 * positions that share a token or a position row collide. Float atomics make it fp32 only, and
 * their order, so the rounding of the sums, changes from run to run.
 * Run: python bench.py encoder --pass backward --variant 1
 */
#include "common.cuh"

// dwte and dwpe are float, not floatX: this variant is declared fp32 only (float atomicAdd), and
// the launch function zeroes them before the kernel adds into them.
extern "C" __global__ void encoder_backward_atomics(
    float* dwte, float* dwpe, const floatX* dout, const int* tokens, int B, int T, int C) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * C) return;
    const size_t bt = i / C;
    const int c = (int)(i % C);
    const int t = (int)(bt % T);
    const float d = to_float(dout[i]);
    atomicAdd(dwte + (size_t)tokens[bt] * C + c, d);
    atomicAdd(dwpe + (size_t)t * C + c, d);
}
