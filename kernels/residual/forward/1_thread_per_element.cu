/*
 * residual forward, variant 1: one thread per element
 *
 * Changed: the starting point: thread i writes out[i] = inp1[i] + inp2[i].
 * Teaches: the baseline to beat. It is already coalesced (neighbouring threads, neighbouring
 * addresses), so what is left to gain is instructions per byte: each thread moves 4 (fp32) or
 * 2 (bf16) bytes per load, and launches as many threads as elements.
 * Run: python bench.py residual --variant 1
 */
#include "common.cuh"

// out may alias inp1 or inp2: each thread reads its element before writing it, and only its own.
extern "C" __global__ void residual_forward_thread_per_element(
    floatX* out, const floatX* inp1, const floatX* inp2, int N) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N) return;
    out[i] = from_float<floatX>(to_float(inp1[i]) + to_float(inp2[i]));
}
