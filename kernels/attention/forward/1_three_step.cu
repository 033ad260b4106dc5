/*
 * attention forward, variant 1: three steps, permute + cuBLAS + softmax
 *
 * Changed: the first variant: llm.c's attention in three steps around two batched cuBLAS calls. A
 * permute kernel copies q, k and v out of qkv into head-major buffers (B, NH, T, HS); cuBLAS
 * computes every score preatt = q k^T (B * NH matrices of T x T); one warp per row scales, masks
 * and softmaxes the scores into att, writing exact zeros above the diagonal; cuBLAS multiplies
 * att v; a last kernel interleaves the heads back into out (B, T, C).
 * Teaches: how far plain building blocks go. The matmuls run at cuBLAS speed, but the T x T
 * scores make a round trip through global memory twice (preatt written and read, att written and
 * read), half of their multiply-adds are with masked zeros, and the permutes are pure copies:
 * the costs a fused (flash) attention removes.
 * Run: python bench.py attention --variant 1
 */
#include "common.cuh"
#include "attention/heads.cuh"  // attention_split_qkv and attention_merge_heads, the permutes

// att (rows, T) from preatt (rows, T), rows = B * NH * T; row r is query position t = r % T of its
// (b, h) matrix and attends to positions j <= t:
//     att[r][j] = exp(scale * (preatt[r][j] - m)) / sum_{i <= t} exp(scale * (preatt[r][i] - m))
// for j <= t, and 0 for j > t, with m the row's maximum over j <= t (subtracting it keeps exp
// from overflowing; scale > 0, so the maximum of scale * x is scale * m). One warp per row.
extern "C" __global__ void attention_softmax_causal(floatX* att, const floatX* preatt, int rows, int T, float scale) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    // The whole warp shares `row`, so it leaves together: no shuffle below loses a lane.
    if (row >= rows) return;
    const int lane = warp.thread_rank();
    const int t = row % T;
    const floatX* x = preatt + (size_t)row * T;
    floatX* y = att + (size_t)row * T;

    // Every lane starts from x[0], which is never masked, so lanes with no column of their own
    // (t < 31) still hold a real score, and no infinity is needed.
    float row_max = to_float(x[0]);
    for (int j = lane; j <= t; j += 32) row_max = fmaxf(row_max, to_float(x[j]));
    row_max = cg::reduce(warp, row_max, cg::greater<float>());

    float sum = 0.0f;
    for (int j = lane; j <= t; j += 32) sum += expf(scale * (to_float(x[j]) - row_max));
    const float inv_sum = 1.0f / cg::reduce(warp, sum, cg::plus<float>());

    // The whole row is written, zeros included: the att v matmul reads all T columns.
    for (int j = lane; j < T; j += 32) {
        y[j] = from_float<floatX>(j <= t ? expf(scale * (to_float(x[j]) - row_max)) * inv_sum : 0.0f);
    }
}
