/*
 * layernorm forward, variant 6: persistent warps, right-sized registers, parameters in shared memory
 *
 * Changed: the register array is sized to the row (a template over packs per lane, one kernel per
 * size, picked at launch) instead of variant 5's 2048-value maximum. Each kernel declares the
 * threads per SM it must fit (__launch_bounds__, so 64 or 128 registers a thread), the launch
 * starts exactly that many threads per SM and no more, each block copies weight and bias into
 * shared memory once, and its warps then walk rows in a grid-stride loop.
 * Teaches: occupancy is a budget: variant 5's unused register slots cost resident warps. A
 * persistent grid pays for setup (here the parameter copy) once per block instead of once per
 * row, but only if every block is resident at once; a block beyond that would start its rows
 * only after some other block had finished all of its own.
 * Run: python bench.py layernorm --variant 6
 */
#include "common.cuh"

template <int PACKS>
__device__ __forceinline__ void layernorm_rows(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    // Dynamic shared memory: weight then bias, C values each. C % x128::size == 0 keeps the bias
    // half 16-byte aligned.
    extern __shared__ float4 params[];
    floatX* s_weight = reinterpret_cast<floatX*>(params);
    floatX* s_bias = s_weight + C;
    for (int c = threadIdx.x * x128::size; c < C; c += blockDim.x * x128::size) {
        store128(s_weight + c, load128(weight + c));
        store128(s_bias + c, load128(bias + c));
    }
    // The only barrier, reached by every thread before any of them may leave the row loop.
    __syncthreads();

    const int lane = threadIdx.x % 32;
    const int warps_per_block = blockDim.x / 32;
    // One division per thread instead of two per row (a float division is a ~20-instruction
    // subroutine); the result differs from sum / C by about an ulp.
    const float inv_c = 1.0f / C;
    for (int row = blockIdx.x * warps_per_block + threadIdx.x / 32; row < N;
         row += gridDim.x * warps_per_block) {
        const floatX* x = inp + (size_t)row * C;
        // Only the last pack of a lane can fall past the row end; it is never loaded or used.
        x128 v[PACKS];
        float sum = 0.0f;
#pragma unroll
        for (int p = 0; p < PACKS; p++) {
            const int c = (p * 32 + lane) * x128::size;
            if (c < C) {
                v[p] = load128cs(x + c);
#pragma unroll
                for (int j = 0; j < x128::size; j++) sum += to_float(v[p][j]);
            }
        }
        const float m = warp_reduce_sum(sum) * inv_c;

        float sum_sq = 0.0f;
#pragma unroll
        for (int p = 0; p < PACKS; p++) {
            const int c = (p * 32 + lane) * x128::size;
            if (c < C) {
#pragma unroll
                for (int j = 0; j < x128::size; j++) {
                    const float d = to_float(v[p][j]) - m;
                    sum_sq += d * d;
                }
            }
        }
        const float s = rsqrtf(warp_reduce_sum(sum_sq) * inv_c + 1e-5f);

        floatX* y = out + (size_t)row * C;
#pragma unroll
        for (int p = 0; p < PACKS; p++) {
            const int c = (p * 32 + lane) * x128::size;
            if (c < C) {
                // A warp reads 512 consecutive bytes of shared memory: no bank conflicts.
                const x128 w = load128(s_weight + c);
                const x128 b = load128(s_bias + c);
                x128 o;
#pragma unroll
                for (int j = 0; j < x128::size; j++) {
                    o[j] = from_float<floatX>((to_float(v[p][j]) - m) * s * to_float(w[j]) + to_float(b[j]));
                }
                store128cs(y + c, o);
            }
        }
        if (lane == 0) {
            mean[row] = m;
            rstd[row] = s;
        }
    }
}

// A lane needs about 35 registers for addresses, sums and scheduling slack, plus one per value it
// holds (PACKS * x128::size). Up to 24 values that fits 64 registers without spilling (ptxas,
// sm_80 and sm_90), so 1024 threads share an SM's 64K registers; larger rows get 128 registers
// and 512 threads. __launch_bounds__ makes the compiler keep to that budget, and forward.py sizes
// the grid by the same rule, so every block launched is resident at once.
template <int PACKS>
constexpr int THREADS_PER_SM = PACKS * x128::size <= 24 ? 1024 : 512;

// One kernel per packs-per-lane count: forward.py picks ceil(C / (32 * x128::size)).
#define LAYERNORM_PERSISTENT(P)                                                                    \
    extern "C" __global__ void __launch_bounds__(THREADS_PER_SM<P>) layernorm_forward_persistent_##P( \
        floatX* out, float* mean, float* rstd,                                                     \
        const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {               \
        layernorm_rows<P>(out, mean, rstd, inp, weight, bias, N, C);                               \
    }
// Up to 64 values a lane, so C <= 2048 for both dtypes (16 fp32 packs or 8 bf16 packs; the
// 16-pack fp32 kernel spills a few registers on sm_90).
LAYERNORM_PERSISTENT(1)
LAYERNORM_PERSISTENT(2)
LAYERNORM_PERSISTENT(3)
LAYERNORM_PERSISTENT(4)
LAYERNORM_PERSISTENT(5)
LAYERNORM_PERSISTENT(6)
LAYERNORM_PERSISTENT(7)
LAYERNORM_PERSISTENT(8)
#if !defined(WB_BF16)
LAYERNORM_PERSISTENT(9)
LAYERNORM_PERSISTENT(10)
LAYERNORM_PERSISTENT(11)
LAYERNORM_PERSISTENT(12)
LAYERNORM_PERSISTENT(13)
LAYERNORM_PERSISTENT(14)
LAYERNORM_PERSISTENT(15)
LAYERNORM_PERSISTENT(16)
#endif
