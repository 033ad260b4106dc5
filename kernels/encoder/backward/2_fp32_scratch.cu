/*
 * encoder backward, variant 2: fp32 scratch accumulator, deterministic dwpe
 *
 * Changed: one thread per (t, c) walks the B sequences: it adds each dout[b, t, c] with atomicAdd
 * into an fp32 scratch copy of dwte (zeroed by the launch function) and sums the same values in a
 * register for dwpe[t, c], which it writes once, so dout is read once for both gradients and dwpe
 * needs no atomics. A second kernel converts the scratch to dwte in floatX.
 * Teaches: how to use atomics when the output type has none worth using (bf16 atomics round every
 * partial sum to 8 bits): accumulate in fp32 and convert afterwards. dwpe comes out the same bits
 * every run (a fixed order over b); dwte does not. The price is the (V, C) table passed over three
 * times (zero, read, write) instead of once.
 * Run: python bench.py encoder --pass backward --variant 2
 */
#include "common.cuh"

// dwte_accum (V, C) float: zero on entry, the fp32 sums of dwte on exit.
extern "C" __global__ void encoder_backward_accumulate(
    float* dwte_accum, floatX* dwpe, const floatX* dout, const int* tokens, int B, int T, int C) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;  // (t, c) flattened: t * C + c
    if (i >= (size_t)T * C) return;
    const int t = (int)(i / C);
    const int c = (int)(i % C);
    float position_sum = 0.0f;
    for (int b = 0; b < B; b++) {
        const size_t bt = (size_t)b * T + t;
        const float d = to_float(dout[bt * C + c]);
        atomicAdd(dwte_accum + (size_t)tokens[bt] * C + c, d);
        position_sum += d;
    }
    dwpe[i] = from_float<floatX>(position_sum);
}

// Every element of dwte is written, zeros included, so dwte is overwritten, never accumulated into.
extern "C" __global__ void encoder_backward_convert(floatX* dwte, const float* dwte_accum, int n) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n) return;
    dwte[i] = from_float<floatX>(dwte_accum[i]);
}
