/*
 * classifier forward, variant 2: online softmax, one pass, 128-bit loads
 *
 * Changed: the row is read once. Each thread keeps a running (max, sum of exp(x - max)) and,
 * when a new pack of 128 bits (4 fp32 or 8 bf16 logits) raises the maximum, rescales its sum by
 * exp(old max - new max). The block then merges the threads' pairs with the same rule. Loads are
 * 16 bytes wide and streaming (ld.global.cs): each logit is used exactly once.
 * Teaches: the online softmax (Milakov and Gimelshein, 2018), which turns two dependent passes
 * into one and halves the bytes read; reductions over a pair of values with a custom combine
 * rule; and vector loads with a mask for the padding columns that share a pack with real ones.
 * Needs Vp % x128::size == 0, so that no pack straddles two rows or breaks 16-byte alignment.
 * Run: python bench.py classifier --variant 2
 */
#include "common.cuh"
#include "classifier/online_softmax.cuh"  // MaxSum, add_pack, block_reduce_max_sum

// losses (N,) float, logits (N, Vp) floatX, targets (N,) int in [0, V). Grid: N blocks.
extern "C" __global__ void classifier_forward_online_vectorized(
    float* losses, const floatX* logits, const int* targets, int N, int V, int Vp) {
    __shared__ float max_scratch[32];
    __shared__ float sum_scratch[32];
    const int row = blockIdx.x;
    const floatX* x = logits + (size_t)row * Vp;

    MaxSum acc = {LOWEST, 0.0f};
    const int packs = Vp / x128::size;
    for (int p = threadIdx.x; p < packs; p += blockDim.x) {
        acc = add_pack(acc, load128cs(x + p * x128::size), p * x128::size, V);
    }
    acc = block_reduce_max_sum(acc, max_scratch, sum_scratch);

    if (threadIdx.x == 0) losses[row] = acc.max + logf(acc.sum) - to_float(x[targets[row]]);
}
