/*
 * classifier backward, variant 1: one block per row
 *
 * Changed: the forward's two passes (row maximum, then sum of exp(x - max)) followed by a third
 * that writes dlogits = (softmax - onehot(target)) * dloss over the real columns and 0 over the
 * padding, while thread 0 writes the loss: the fused classifier of llm.c, loss and gradient in
 * one kernel, so the probabilities never go to memory.
 * Teaches: fusing the loss with its own backward (the gradient of cross-entropy through a softmax
 * is just probabilities minus one-hot), and how to make a kernel safe to run in place: dlogits may
 * be the logits buffer itself, which is fine because each row belongs to one block, every read of
 * the row that other threads depend on happens before the reductions' barriers, and in the last
 * pass each thread overwrites only the elements it has just read itself.
 * Run: python bench.py classifier --pass backward --variant 1
 */
#include "common.cuh"  // block_reduce_max, block_reduce_sum, LOWEST

// dlogits (N, Vp) floatX, losses (N,) float, logits (N, Vp) floatX, targets (N,) int in [0, V),
// dloss: the gradient of the training loss with respect to each token's loss (1 / N for a mean).
// dlogits may alias logits; no pointer is __restrict__ for that reason. Grid: N blocks.
extern "C" __global__ void classifier_backward_block_per_row(
    floatX* dlogits, float* losses, const floatX* logits, const int* targets, float dloss,
    int N, int V, int Vp) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    const size_t offset = (size_t)row * Vp;
    const floatX* x = logits + offset;
    floatX* dx = dlogits + offset;
    const int target = targets[row];

    // Read the target's logit now: once the reductions below are done, other threads of this
    // block start overwriting the row (when dlogits aliases logits), this element included.
    const float target_logit = threadIdx.x == 0 ? to_float(x[target]) : 0.0f;

    float row_max = LOWEST;
    for (int c = threadIdx.x; c < V; c += blockDim.x) row_max = fmaxf(row_max, to_float(x[c]));
    row_max = block_reduce_max(row_max, scratch);

    float sum = 0.0f;
    for (int c = threadIdx.x; c < V; c += blockDim.x) sum += expf(to_float(x[c]) - row_max);
    sum = block_reduce_sum(sum, scratch);  // its trailing barrier: every read above is done

    const float inv_sum = 1.0f / sum;
    for (int c = threadIdx.x; c < Vp; c += blockDim.x) {
        float grad = 0.0f;  // padding columns: the loss never saw them
        if (c < V) {
            const float prob = expf(to_float(x[c]) - row_max) * inv_sum;
            grad = (prob - (c == target ? 1.0f : 0.0f)) * dloss;
        }
        dx[c] = from_float<floatX>(grad);
    }
    if (threadIdx.x == 0) losses[row] = row_max + logf(sum) - target_logit;
}
