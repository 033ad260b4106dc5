/*
 * gelu backward, variant 2: 128-bit vectorized loads and stores
 *
 * Changed: each thread handles one 16-byte pack (x128: 4 floats or 8 bf16) of dout and of inp,
 * both read with a streaming hint (used once), and stores one pack of dinp.
 * Teaches: 4x (fp32) or 8x (bf16) fewer memory instructions for the same bytes; with two input
 * streams per thread, two independent 128-bit loads are in flight before any arithmetic. Needs
 * N % x128::size == 0 so that every pack is whole and 16-byte aligned.
 * Run: python bench.py gelu --pass backward --variant 2
 */
#include "common.cuh"
#include "gelu/gelu_math.cuh"  // gelu_derivative: the formula, shared with every gelu variant

// dinp may alias dout: both packs are loaded whole before the same thread stores the result.
extern "C" __global__ void gelu_backward_vectorized(floatX* dinp, const floatX* dout, const floatX* inp, int N) {
    const size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * x128::size;
    if (i >= (size_t)N) return;
    const x128 g = load128cs(dout + i);
    const x128 x = load128cs(inp + i);
    x128 result;
#pragma unroll
    for (int j = 0; j < x128::size; j++) {
        result[j] = from_float<floatX>(to_float(g[j]) * gelu_derivative(to_float(x[j])));
    }
    store128(dinp + i, result);
}
