/*
 * matmul backward, variant 5: variant 4 on mma.sync, swizzled slices, results from registers
 *
 * Changed: the same kernels, grid and split-K as variant 4, with the tiled product rewritten below
 * WMMA (kernels/matmul/mma_product.cuh): ldmatrix and mma.sync (kernels/warp_mma.cuh) on slices
 * that drop their 8-element padding and are swizzled instead (swizzled<> in staged_copy.cuh), and
 * the accumulators stored straight to global memory, with no 8 KB staging tile. The operands stored
 * "the wrong way round" for the product (dout^T for dweight; weight and inp as the right-hand
 * operands, k-major) are read with ldmatrix .trans, which hands out 8 x 8 blocks transposed: the
 * role WMMA's col_major fragment layout played in variant 4. Shared memory per block falls from 25
 * and 27 KB (two padded slices and the staging tile) to 16 KB.
 * Teaches: swizzling rows of 256 bytes (a pack's low 3 bits XOR the row's), and that the transpose
 * a product needs can happen on the way from shared memory to registers, at no cost. Count it: `python
 * bench.py matmul --pass backward --variant 4 --variant 5 --emulate --accesses`. Copies are still
 * synchronous here (no cp.async pipeline, unlike matmul forward 5 and 6): the next step.
 * bf16 only; needs C % 8 == 0 and OC % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --pass backward --variant 5
 */
#ifndef WB_BF16
#error "tensor-core mma.sync variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

#include "common.cuh"
#include "matmul/mma_product.cuh"  // the tiled mma.sync product for both operand layouts
#include "matmul/split_k_sum.cuh"  // the partials added up

using mma_backward::mma_product;
using mma_backward::THREADS;

// dinp (M, K) = dout (M, N) @ weight (N, K). Grid (ceil(K / 128), ceil(M / 128)).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dinp_mma_sync(
    floatX* dinp, const floatX* dout, const floatX* weight, int M, int N, int K) {
    mma_product<false, false, floatX>(dinp, nullptr, dout, N, weight, M, K, 0, N);
}

// Partial z of dweight and dbias over rows [z * chunk, (z + 1) * chunk) of dout and inp, as in
// variant 4. Grid (ceil(K / 128), ceil(N / 128), splits).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dweight_partials_mma_sync(
    float* dweight_partials, float* dbias_partials, const floatX* dout, const floatX* inp, int M, int N, int K,
    int chunk) {
    const int z = blockIdx.z;
    const int begin = min(M, z * chunk);
    const int end = min(M, begin + chunk);
    mma_product<true, true, float>(dweight_partials + (size_t)z * N * K, dbias_partials + (size_t)z * N, dout, N,
                                   inp, N, K, begin, end);
}

// dweight (N, K) and dbias (N,): the partials added in order of z. Grid ceil((N * K + N) / blockDim.x).
extern "C" __global__ void matmul_backward_sum_partials_mma_sync(floatX* dweight, floatX* dbias,
                                                                 const float* dweight_partials,
                                                                 const float* dbias_partials, int N, int K, int splits) {
    sum_partials(dweight, dbias, dweight_partials, dbias_partials, N, K, splits);
}
