/*
 * matmul backward, variant 6: variant 5 with its slices double-buffered (cp.async, two in flight)
 *
 * Changed: variant 5 loaded each pair of 32-deep slices with plain loads and stores, so every warp
 * waited for memory at the top of every step, and the block's shared memory sat idle while the
 * tensor cores ran. Here each block keeps two buffers of slices (32 KB instead of 16): while the
 * warps multiply the slices of one depth, cp.async copies the next depth's into the other buffer,
 * as matmul forward 5 and 6 do for the forward product (mma_product.cuh with PIPELINED). The
 * kernels, grid, split-K and the summing kernel are variant 5's.
 * Teaches: the same pipeline on both of the backward's operand layouts, including the transposed
 * ones that ldmatrix .trans reads, and the bias sum that reads a slice only after its wait and
 * barrier. The copies into a buffer are issued after the barrier that ends the previous step, the
 * last one that read it. bf16 only; needs C % 8 == 0 and OC % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --pass backward --variant 6
 */
#ifndef WB_BF16
#error "tensor-core mma.sync variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

#include "common.cuh"
#include "matmul/mma_product.cuh"  // the tiled mma.sync product for both operand layouts, pipelined
#include "matmul/split_k_sum.cuh"  // the partials added up

using mma_backward::mma_product;
using mma_backward::THREADS;

// dinp (M, K) = dout (M, N) @ weight (N, K). Grid (ceil(K / 128), ceil(M / 128)).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dinp_pipelined(
    floatX* dinp, const floatX* dout, const floatX* weight, int M, int N, int K) {
    mma_product<false, false, floatX, true>(dinp, nullptr, dout, N, weight, M, K, 0, N);
}

// Partial z of dweight and dbias over rows [z * chunk, (z + 1) * chunk) of dout and inp, as in
// variant 4. Grid (ceil(K / 128), ceil(N / 128), splits).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dweight_partials_pipelined(
    float* dweight_partials, float* dbias_partials, const floatX* dout, const floatX* inp, int M, int N, int K,
    int chunk) {
    const int z = blockIdx.z;
    const int begin = min(M, z * chunk);
    const int end = min(M, begin + chunk);
    mma_product<true, true, float, true>(dweight_partials + (size_t)z * N * K, dbias_partials + (size_t)z * N, dout,
                                         N, inp, N, K, begin, end);
}

// dweight (N, K) and dbias (N,): the partials added in order of z. Grid ceil((N * K + N) / blockDim.x).
extern "C" __global__ void matmul_backward_sum_partials_pipelined(floatX* dweight, floatX* dbias,
                                                                  const float* dweight_partials,
                                                                  const float* dbias_partials, int N, int K,
                                                                  int splits) {
    sum_partials(dweight, dbias, dweight_partials, dbias_partials, N, K, splits);
}
