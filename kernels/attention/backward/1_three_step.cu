/*
 * attention backward, variant 1: three steps, permute + cuBLAS + softmax backward
 *
 * Changed: the first variant, the forward's three steps run backwards. Permute kernels copy
 * q, k, v and dout into head-major buffers; cuBLAS computes datt = dout v^T and dv = att^T dout;
 * one warp per row turns datt into the scores' gradient in place, dpreatt = scale * att *
 * (datt - sum_j att datt), zero above the diagonal; cuBLAS computes dq = dpreatt k and
 * dk = dpreatt^T q; a last kernel interleaves dq, dk, dv back into dqkv (B, T, 3C).
 * Teaches: the softmax's backward needs only the saved probabilities and one dot product per row
 * (the Jacobian diag(att) - att att^T never exists), so it is a cheap, memory-bound row kernel
 * between four compute-bound matmuls. As in the forward, the T x T matrices (att read, datt
 * written, read and rewritten, then read twice) dominate the traffic, and the matmuls multiply
 * the masked half too.
 * Run: python bench.py attention --pass backward --variant 1
 */
#include "common.cuh"
#include "attention/heads.cuh"  // the permutes: attention_split_qkv, _split_heads, _merge_qkv

// datt (rows, T) becomes dpreatt in place, rows = B * NH * T; row r is query position t = r % T:
//     dpreatt[r][j] = scale * att[r][j] * (datt[r][j] - sum_{i <= t} att[r][i] * datt[r][i])  for j <= t,
//     dpreatt[r][j] = 0                                                                     for j > t.
// The scale is the forward's 1 / sqrt(HS), applied to the scores before the softmax. One warp per
// row. In place is safe: the dot product is complete (a warp reduction every lane waits for)
// before any element is overwritten, and each lane then reads and rewrites only its own columns.
extern "C" __global__ void attention_softmax_causal_backward(floatX* datt, const floatX* att, int rows, int T, float scale) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    // The whole warp shares `row`, so it leaves together: the reduction below loses no lane.
    if (row >= rows) return;
    const int lane = warp.thread_rank();
    const int t = row % T;
    floatX* g = datt + (size_t)row * T;
    const floatX* p = att + (size_t)row * T;

    float dot = 0.0f;
    for (int j = lane; j <= t; j += 32) dot += to_float(p[j]) * to_float(g[j]);
    dot = cg::reduce(warp, dot, cg::plus<float>());

    // Every column is written: cuBLAS left values above the diagonal of datt, and the dq and dk
    // matmuls read whole rows, so the masked columns must become exact zeros.
    for (int j = lane; j < T; j += 32) {
        g[j] = from_float<floatX>(j <= t ? scale * to_float(p[j]) * (to_float(g[j]) - dot) : 0.0f);
    }
}
