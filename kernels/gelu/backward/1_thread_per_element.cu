/*
 * gelu backward, variant 1: one thread per element
 *
 * Changed: the starting point: thread i writes dinp[i] = dout[i] * gelu'(inp[i]), recomputing
 * tanh(u) from the forward's input rather than reading anything the forward saved.
 * Teaches: the baseline to beat, and recomputation: storing tanh(u) in the forward would cost a
 * write there and a read here, far more time than one tanh per element in a memory-bound kernel.
 * Each thread moves 4 (fp32) or 2 (bf16) bytes per load.
 * Run: python bench.py gelu --pass backward --variant 1
 */
#include "common.cuh"
#include "gelu/gelu_math.cuh"  // gelu_derivative: the formula, shared with every gelu variant

// dinp may alias dout: each thread reads its elements before writing, and only its own.
extern "C" __global__ void gelu_backward_thread_per_element(
    floatX* dinp, const floatX* dout, const floatX* inp, int N) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N) return;
    dinp[i] = from_float<floatX>(to_float(dout[i]) * gelu_derivative(to_float(inp[i])));
}
