// The permutes of attention's three-step variants (forward and backward): moving values between the
// token-major layouts the rest of the model uses, (B, T, C) and (B, T, 3C), and the head-major layout
// (B, NH, T, HS) that batched cuBLAS calls want, one contiguous (T, HS) matrix per (b, h).
//
// Every kernel here is one thread per element of a head-major tensor, with d (the channel within a
// head) fastest. Consecutive threads then read HS consecutive values on one side and write HS
// consecutive values on the other, so both sides are coalesced in runs of HS elements. Offsets are
// size_t: B * T * 3C passes 2^31 at long sequences long before any single index does.
#pragma once
#include "common.cuh"

// Position of head-major element `idx` of (B, NH, T, HS): its batch b, head h, token t, channel d.
struct HeadIndex {
    int b, h, t, d;
};

__device__ __forceinline__ HeadIndex head_index(size_t idx, int T, int NH, int HS) {
    HeadIndex i;
    i.d = (int)(idx % HS);
    idx /= HS;
    i.t = (int)(idx % T);
    idx /= T;
    i.h = (int)(idx % NH);
    i.b = (int)(idx / NH);
    return i;
}

// Offset of channel h * HS + d of token (b, t) in a token-major tensor whose rows are `width` wide.
__device__ __forceinline__ size_t token_offset(HeadIndex i, int T, int HS, int width) {
    return ((size_t)i.b * T + i.t) * width + (size_t)i.h * HS + i.d;
}

// q, k, v (B, NH, T, HS) from qkv (B, T, 3C): q[b, h, t, d] = qkv[b, t, h * HS + d], k and v the
// same at column offsets C and 2C.
extern "C" __global__ void attention_split_qkv(
    floatX* q, floatX* k, floatX* v, const floatX* qkv, int B, int T, int NH, int HS) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T * HS) return;
    const int C = NH * HS;
    const size_t from = token_offset(head_index(idx, T, NH, HS), T, HS, 3 * C);
    q[idx] = qkv[from];
    k[idx] = qkv[from + C];
    v[idx] = qkv[from + 2 * C];
}

// heads (B, NH, T, HS) from x (B, T, C): heads[b, h, t, d] = x[b, t, h * HS + d].
extern "C" __global__ void attention_split_heads(floatX* heads, const floatX* x, int B, int T, int NH, int HS) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T * HS) return;
    heads[idx] = x[token_offset(head_index(idx, T, NH, HS), T, HS, NH * HS)];
}

// x (B, T, C) from heads (B, NH, T, HS): the inverse of attention_split_heads.
extern "C" __global__ void attention_merge_heads(floatX* x, const floatX* heads, int B, int T, int NH, int HS) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T * HS) return;
    x[token_offset(head_index(idx, T, NH, HS), T, HS, NH * HS)] = heads[idx];
}

// dqkv (B, T, 3C) from dq, dk, dv (B, NH, T, HS): the inverse of attention_split_qkv.
extern "C" __global__ void attention_merge_qkv(
    floatX* dqkv, const floatX* dq, const floatX* dk, const floatX* dv, int B, int T, int NH, int HS) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)B * NH * T * HS) return;
    const int C = NH * HS;
    const size_t to = token_offset(head_index(idx, T, NH, HS), T, HS, 3 * C);
    dqkv[to] = dq[idx];
    dqkv[to + C] = dk[idx];
    dqkv[to + 2 * C] = dv[idx];
}
