/*
 * encoder forward, variant 1: one thread per output element
 *
 * Changed: the starting point, a direct port of the CPU loop: thread i computes out[i] from its
 * (b, t, c), reading the token id, one element of the token's row of wte and one of wpe[t].
 * Teaches: the baseline to beat. It is a gather: neighbouring threads share a row, so the wte and
 * wpe reads are coalesced even though the rows they land in are scattered over the table, but each
 * thread moves 4 (fp32) or 2 (bf16) bytes per load and reloads the token id C times per row.
 * Run: python bench.py encoder --variant 1
 */
#include "common.cuh"

extern "C" __global__ void encoder_forward_thread_per_element(
    floatX* out, const int* tokens, const floatX* wte, const floatX* wpe, int B, int T, int C) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * C) return;
    const size_t bt = i / C;  // the (b, t) row: b * T + t
    const int c = (int)(i % C);
    const int t = (int)(bt % T);
    const int token = tokens[bt];
    const float sum = to_float(wte[(size_t)token * C + c]) + to_float(wpe[(size_t)t * C + c]);
    out[i] = from_float<floatX>(sum);
}
