/*
 * classifier backward, variant 2: online softmax, 128-bit loads and stores
 *
 * Changed: the maximum and the sum come from one pass (the online softmax: a running maximum,
 * and a running sum rescaled by exp(old max - new max) whenever the maximum grows), so the row
 * is read twice instead of three times; every load and store moves 16 bytes. The first pass uses
 * ordinary cached loads, so the row is still in L2 for the second, which streams it (ld.global.cs)
 * and writes dlogits with streaming stores.
 * Teaches: counting the bytes: the gradient pass must read the row again after the normaliser is
 * known, so two reads and one write per logit is the floor for the fused classifier; the online
 * softmax reaches it. Also how the in-place contract survives vectorisation: each thread still
 * writes back exactly the packs it read itself. Needs Vp % x128::size == 0 (no pack straddling
 * two rows, 16-byte aligned rows).
 * Run: python bench.py classifier --pass backward --variant 2
 */
#include "common.cuh"
#include "classifier/online_softmax.cuh"  // MaxSum, add_pack, block_reduce_max_sum

// dlogits (N, Vp) floatX, losses (N,) float, logits (N, Vp) floatX, targets (N,) int in [0, V),
// dloss: the gradient of the training loss with respect to each token's loss. dlogits may alias
// logits (nothing is __restrict__, and no read goes through the non-coherent cache). Grid: N blocks.
extern "C" __global__ void classifier_backward_online_vectorized(
    floatX* dlogits, float* losses, const floatX* logits, const int* targets, float dloss,
    int N, int V, int Vp) {
    __shared__ float max_scratch[32];
    __shared__ float sum_scratch[32];
    const int row = blockIdx.x;
    const size_t offset = (size_t)row * Vp;
    const floatX* x = logits + offset;
    floatX* dx = dlogits + offset;
    const int target = targets[row];
    // Before the reduction's barriers: afterwards the row may already be overwritten in place.
    const float target_logit = threadIdx.x == 0 ? to_float(x[target]) : 0.0f;

    MaxSum acc = {LOWEST, 0.0f};
    const int packs = Vp / x128::size;
    for (int p = threadIdx.x; p < packs; p += blockDim.x) {
        // cached load: the second pass reads the row again
        acc = add_pack(acc, load128(x + p * x128::size), p * x128::size, V);
    }
    acc = block_reduce_max_sum(acc, max_scratch, sum_scratch);  // ends with a barrier

    const float inv_sum = 1.0f / acc.sum;
    for (int p = threadIdx.x; p < packs; p += blockDim.x) {
        const x128 in = load128cs(x + p * x128::size);  // the last use of the logits
        x128 out;
#pragma unroll
        for (int j = 0; j < x128::size; j++) {
            const int c = p * x128::size + j;
            float grad = 0.0f;  // padding columns: the loss never saw them
            if (c < V) {
                const float prob = expf(to_float(in[j]) - acc.max) * inv_sum;
                grad = (prob - (c == target ? 1.0f : 0.0f)) * dloss;
            }
            out[j] = from_float<floatX>(grad);
        }
        store128cs(dx + p * x128::size, out);
    }
    if (threadIdx.x == 0) losses[row] = acc.max + logf(acc.sum) - target_logit;
}
