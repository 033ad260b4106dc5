/*
 * gelu forward, variant 1: one thread per element
 *
 * Changed: the starting point: thread i writes out[i] = gelu(inp[i]), computed in fp32.
 * Teaches: the baseline to beat. Even with a tanh per element the kernel is memory bound (about
 * ten arithmetic instructions per 8 bytes moved in fp32), so the arithmetic hides behind the
 * loads; what is left to gain is instructions per byte: each thread moves 4 (fp32) or 2 (bf16)
 * bytes per load.
 * Run: python bench.py gelu --variant 1
 */
#include "common.cuh"
#include "gelu/gelu_math.cuh"  // gelu_value: the formula, shared with every gelu variant

// out may alias inp: each thread reads its element before writing it, and only its own.
extern "C" __global__ void gelu_forward_thread_per_element(floatX* out, const floatX* inp, int N) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N) return;
    out[i] = from_float<floatX>(gelu_value(to_float(inp[i])));
}
