// Shared device helpers for every variant: the element type, warp and block reductions,
// and 128-bit packed loads and stores. Included by the .cu files; compiled by harness/compile.py.
#pragma once
#include <cuda_bf16.h>
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>

namespace cg = cooperative_groups;

// floatX is the activation/parameter type of a build. The harness compiles each variant once
// per dtype, defining WB_BF16 for the bf16 build. Statistics and accumulators stay fp32.
#if defined(WB_BF16)
typedef __nv_bfloat16 floatX;
#else
typedef float floatX;
#endif

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Sum across the 32 lanes of a warp with butterfly shuffles: every lane ends with the total.
__device__ __forceinline__ float warp_reduce_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

__device__ __forceinline__ float warp_reduce_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

// Sum over the whole block; every thread gets the total. blockDim.x must be a multiple of 32
// and at most 1024. `scratch` holds 32 floats of shared memory; the trailing barrier makes it
// safe to call again with the same scratch.
__device__ __forceinline__ float block_reduce_sum(float v, float* scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int num_warps = blockDim.x / 32;
    v = warp_reduce_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = (lane < num_warps) ? scratch[lane] : 0.0f;
    v = warp_reduce_sum(v);
    __syncthreads();
    return v;
}

// The most negative finite float (-FLT_MAX): where a max-reduction starts. Unlike -infinity,
// LOWEST - LOWEST is 0, never NaN, so an empty partial cannot poison an exp(x - max).
constexpr float LOWEST = -3.402823466e38f;

// Maximum over the whole block; every thread gets it. Same rules as block_reduce_sum.
__device__ __forceinline__ float block_reduce_max(float v, float* scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int num_warps = blockDim.x / 32;
    v = warp_reduce_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = (lane < num_warps) ? scratch[lane] : LOWEST;
    v = warp_reduce_max(v);
    __syncthreads();
    return v;
}

// Packed128<T>: 16 bytes of T moved with one 128-bit load or store instruction.
// The address must be 16-byte aligned: callers guarantee it (the harness allocates aligned
// buffers; variants that use this refuse row lengths that break alignment). A misaligned one
// faults on the GPU; the CPU emulator defines WB_CHECK_ALIGNED to report it instead.
#ifndef WB_CHECK_ALIGNED
#define WB_CHECK_ALIGNED(address, bytes, what)
#endif
template <typename T>
struct alignas(16) Packed128 {
    static constexpr int size = 16 / sizeof(T);
    T payload[size];

    __device__ __forceinline__ T& operator[](int i) { return payload[i]; }
    __device__ __forceinline__ const T& operator[](int i) const { return payload[i]; }
};

typedef Packed128<floatX> x128;
typedef Packed128<float> f128;

template <typename T>
__device__ __forceinline__ Packed128<T> load128(const T* address) {
    Packed128<T> out;
    WB_CHECK_ALIGNED(address, 16, "load128");
    *reinterpret_cast<int4*>(&out) = *reinterpret_cast<const int4*>(address);
    return out;
}

// Streaming load: the data is used once, so hint the cache to evict it first (ld.global.cs).
template <typename T>
__device__ __forceinline__ Packed128<T> load128cs(const T* address) {
    Packed128<T> out;
    WB_CHECK_ALIGNED(address, 16, "load128cs");
    *reinterpret_cast<int4*>(&out) = __ldcs(reinterpret_cast<const int4*>(address));
    return out;
}

template <typename T>
__device__ __forceinline__ void store128(T* address, const Packed128<T>& value) {
    WB_CHECK_ALIGNED(address, 16, "store128");
    *reinterpret_cast<int4*>(address) = *reinterpret_cast<const int4*>(&value);
}

// Streaming store (st.global.cs): the output is not read again by this kernel.
template <typename T>
__device__ __forceinline__ void store128cs(T* address, const Packed128<T>& value) {
    WB_CHECK_ALIGNED(address, 16, "store128cs");
    __stcs(reinterpret_cast<int4*>(address), *reinterpret_cast<const int4*>(&value));
}
