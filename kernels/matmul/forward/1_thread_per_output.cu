/*
 * matmul forward, variant 1: one thread per output
 *
 * Changed: the starting point, a direct port of the CPU triple loop: each thread owns one output
 * out[row, col] and walks the row of inp and the row of weight that meet there, K = C products.
 * Teaches: the baseline to beat, and why data reuse decides a matrix product's speed. Each output
 * loads its 2 * C operands again, 8 bytes (fp32) per multiply-add: 0.25 FLOP per byte, where an H100
 * needs some 20 FLOP per byte of DRAM traffic (67 TFLOP/s fp32 over 3.35 TB/s) to be compute-bound.
 * Neighbouring threads share the inp row (one broadcast load) but read weight rows C elements
 * apart (never coalesced), so the caches, not the arithmetic, set its speed.
 * Run: python bench.py matmul --variant 1
 */
#include "common.cuh"

// out (M, N) = inp (M, K) @ weight (N, K)^T + bias (N,), with M = B * T, N = OC, K = C.
extern "C" __global__ void matmul_forward_thread_per_output(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    // Consecutive threads take consecutive columns of one output row, so their stores coalesce.
    const size_t index = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (size_t)M * N) return;
    const int row = (int)(index / N);
    const int col = (int)(index % N);
    const floatX* x = inp + (size_t)row * K;
    const floatX* w = weight + (size_t)col * K;

    float sum = to_float(bias[col]);
    for (int k = 0; k < K; k++) sum += to_float(x[k]) * to_float(w[k]);
    out[index] = from_float<floatX>(sum);
}
