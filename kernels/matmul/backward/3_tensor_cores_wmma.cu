/*
 * matmul backward, variant 3: both products on the tensor cores (WMMA), dbias folded into dweight
 *
 * Changed: dinp = dout @ weight and dweight = dout^T @ inp are computed by one tiled tensor-core
 * product (the forward's variant 4 structure: 8 warps, a 128 x 128 output tile per block, 32-deep
 * slices in shared memory, 4 x 2 fragments per warp), instantiated for the two operand layouts.
 * dbias needs no kernel of its own: the dweight blocks of the first output column already stage
 * every row of dout through shared memory, so 128 of their threads add up one column each.
 * Teaches: a transpose costs nothing when the slices keep memory's orientation and the fragment
 * load is told the layout: dout^T (N x M) is dout (M x N) read column-major, and weight (N x K)
 * and inp (M x K) are already the row-major right-hand operands. Also: a reduction that rides
 * along on data another kernel loads anyway is free, where a separate pass would read dout again.
 * What remains: dweight sums over all B * T rows inside each block, so its grid is small (about
 * one wave of blocks on an H100 at GPT-2 sizes); splitting those rows over more blocks would need a
 * second reduction pass. bf16 only; needs C % 8 == 0 and OC % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --pass backward --variant 3
 */
#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

#include "common.cuh"
#include "matmul/tensor_core_product.cuh"  // the tiled WMMA product for both operand layouts

using tensor_core_backward::tensor_core_product;
using tensor_core_backward::THREADS;

// dinp (M, K) = dout (M, N) @ weight (N, K). Grid (ceil(K / 128), ceil(M / 128)).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dinp_wmma(
    floatX* dinp, const floatX* dout, const floatX* weight, int M, int N, int K) {
    tensor_core_product<false, false, floatX>(dinp, nullptr, dout, N, weight, M, K, 0, N);
}

// dweight (N, K) = dout^T (N, M) @ inp (M, K), and dbias (N,) = the rows of dout summed.
// Grid (ceil(K / 128), ceil(N / 128)).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dweight_dbias_wmma(
    floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp, int M, int N, int K) {
    tensor_core_product<true, true, floatX>(dweight, dbias, dout, N, inp, N, K, 0, M);
}
