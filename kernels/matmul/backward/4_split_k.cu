/*
 * matmul backward, variant 4: tensor cores with split-K for dweight and dbias
 *
 * Changed: variant 3 summed dweight = dout^T inp over all B * T rows inside each block, so its grid
 * had only ceil(OC / 128) x ceil(C / 128) blocks: 36 for GPT-2's attention projection, on an H100
 * with 132 SMs. Here the rows are split into `splits` contiguous chunks (a launch configuration),
 * one per grid z-index: each block sums its chunk into an fp32 partial (splits, OC, C), and the
 * dbias partials ride along as before; a second kernel adds the partials up and rounds to bf16.
 * dinp is variant 3's. The launch splits a grid only as far as 4,096 blocks (SPLIT_GRID_CAP in
 * backward.py): GPT-2's classifier, 2,358 blocks unsplit, runs unsplit whatever the config says.
 * Teaches: split-K trades memory traffic for parallelism. The partials cost splits x OC x C x 4
 * bytes written and read again, against a grid splits times larger; whether that pays depends on
 * how empty the GPU was (compare splits in the sweep, and the shapes: OC = 768 against 3072). The
 * final sum runs in a fixed order, so the result is deterministic, unlike atomics into one buffer.
 * bf16 only; needs C % 8 == 0 and OC % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --pass backward --variant 4
 */
#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

#include "common.cuh"
#include "matmul/split_k_sum.cuh"          // the partials added up
#include "matmul/tensor_core_product.cuh"  // the tiled WMMA product for both operand layouts

using tensor_core_backward::tensor_core_product;
using tensor_core_backward::THREADS;
using tensor_core_backward::TILE_K;

// dinp (M, K) = dout (M, N) @ weight (N, K), as variant 3. Grid (ceil(K / 128), ceil(M / 128)).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dinp_split(
    floatX* dinp, const floatX* dout, const floatX* weight, int M, int N, int K) {
    tensor_core_product<false, false, floatX>(dinp, nullptr, dout, N, weight, M, K, 0, N);
}

// Partial z of dweight and dbias: rows [z * chunk, (z + 1) * chunk) of dout and inp, chunk a
// multiple of TILE_K. dweight_partials (splits, N, K) and dbias_partials (splits, N), fp32.
// Grid (ceil(K / 128), ceil(N / 128), splits).
extern "C" __global__ void __launch_bounds__(THREADS) matmul_backward_dweight_partials(
    float* dweight_partials, float* dbias_partials, const floatX* dout, const floatX* inp, int M, int N, int K,
    int chunk) {
    const int z = blockIdx.z;
    const int begin = min(M, z * chunk);
    const int end = min(M, begin + chunk);
    tensor_core_product<true, true, float>(dweight_partials + (size_t)z * N * K, dbias_partials + (size_t)z * N,
                                          dout, N, inp, N, K, begin, end);
}

// dweight (N, K) and dbias (N,): the partials added in order of z (split_k_sum.cuh).
extern "C" __global__ void matmul_backward_sum_partials(floatX* dweight, floatX* dbias, const float* dweight_partials,
                                                        const float* dbias_partials, int N, int K, int splits) {
    sum_partials(dweight, dbias, dweight_partials, dbias_partials, N, K, splits);
}
