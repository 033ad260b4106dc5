/*
 * flash_attention backward, variant 1: one warp per row, probabilities recomputed from lse
 *
 * Changed: against attention backward 1, nothing T x T is read or written. Three kernels: the first
 * takes one warp per query row and computes D_t = dout_t . out_t (per head) into a (B, NH, T)
 * scratch buffer. The second takes one warp per query row t and walks the keys j <= t, 32 at a time:
 * lane i takes key j0 + i and recomputes p = exp(scale q_t . k_j - lse_t), dp = dout_t . v_j and
 * ds = p (dp - D_t) (q_t and dout_t staged in shared memory); then the lanes switch to channels and
 * add the chunk's ds_j k_j to dq_t. The third takes one warp per key row j and walks the queries
 * t >= j the same way: lanes as queries for p, dp and ds, then lanes as channels for dv_j += p
 * dout_t and dk_j += ds q_t.
 * Teaches: the flash backward's two ideas. The probabilities come back from q, k and one saved float
 * per row (p = exp(score - lse) needs neither the row's maximum nor its sum), and the softmax
 * backward's row sum over j of p datt equals dout . out, an HS-long dot product instead of a T-long
 * one, available before any score is recomputed. Splitting the work by the direction of each
 * reduction (dq sums over keys, dk and dv over queries) gives every output a single owner, so all
 * are written once, without atomics; the price is that q k^T and dout v^T are recomputed in both
 * kernels. With one lane per key (or query) no score needs a warp reduction. HS <= MAX_HS.
 * Run: python bench.py flash_attention --pass backward --variant 1
 */
#include "common.cuh"

// The largest head size a lane's register slots hold: lane l owns channels l, l + 32, ...
#define MAX_HS 128
#define SLOTS (MAX_HS / 32)

// Where a token's vectors start. Token j of head (b, h): q at qkv + token_row(b, j) * 3C + h * HS,
// k and v C and 2C further; dout and out at token_row(b, j) * C + h * HS.
__device__ __forceinline__ size_t token_row(int b, int T, int j) { return (size_t)b * T + j; }

// Copy an HS-long vector from memory into a warp's shared slice (lanes stride over the channels).
__device__ __forceinline__ void stage_row(float* dst, const floatX* src, int HS, int lane) {
    for (int d = lane; d < HS; d += 32) dst[d] = to_float(src[d]);
}

// One lane's serial dot product of a staged (shared, fp32) vector with an HS-long vector in memory.
__device__ __forceinline__ float dot(const float* staged, const floatX* v, int HS) {
    float sum = 0.0f;
    for (int d = 0; d < HS; d++) sum += staged[d] * to_float(v[d]);
    return sum;
}

// row_dots (B, NH, T) fp32: D[b, h, t] = sum_d dout[b, t, h * HS + d] * out[b, t, h * HS + d].
// One warp per row r = (b * NH + h) * T + t, lanes over the channels.
extern "C" __global__ void flash_attention_row_dots(float* row_dots, const floatX* dout, const floatX* out, int B,
                                                    int T, int NH, int HS) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= B * NH * T) return;  // whole warps leave together
    const int t = row % T, bh = row / T;
    const int b = bh / NH, h = bh % NH;
    const size_t at = token_row(b, T, t) * NH * HS + h * HS;
    float partial = 0.0f;
    for (int d = lane; d < HS; d += 32) partial += to_float(dout[at + d]) * to_float(out[at + d]);
    const float sum = warp_reduce_sum(partial);
    if (lane == 0) row_dots[row] = sum;
}

// dq into dqkv's first C columns. One warp per query row r = (b * NH + h) * T + t. Dynamic shared
// memory: 2 HS + 32 floats per warp (q_t, dout_t, the chunk's ds values).
extern "C" __global__ void flash_attention_backward_dq(floatX* dqkv, const float* row_dots, const floatX* dout,
                                                       const floatX* qkv, const float* lse, int B, int T, int NH,
                                                       int HS, float scale) {
    extern __shared__ float shared[];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int row = blockIdx.x * (blockDim.x / 32) + warp;
    if (row >= B * NH * T) return;
    const int t = row % T, bh = row / T;
    const int b = bh / NH, h = bh % NH;
    const int C = NH * HS;
    const floatX* k_base = qkv + token_row(b, T, 0) * 3 * C + C + h * HS;  // token j's k at k_base + j * 3C
    float* q = shared + warp * (2 * HS + 32);
    float* dy = q + HS;
    float* ds = dy + HS;

    stage_row(q, qkv + token_row(b, T, t) * 3 * C + h * HS, HS, lane);
    stage_row(dy, dout + token_row(b, T, t) * C + h * HS, HS, lane);
    float dq[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; s++) dq[s] = 0.0f;
    const float row_lse = lse[row], D = row_dots[row];
    __syncwarp();  // q_t and dout_t are staged

    for (int j0 = 0; j0 <= t; j0 += 32) {
        // Lanes as keys: ds for key j = j0 + lane (0 past the diagonal).
        const int j = j0 + lane;
        float ds_j = 0.0f;
        if (j <= t) {
            const floatX* k = k_base + (size_t)j * 3 * C;
            const float p = expf(scale * dot(q, k, HS) - row_lse);
            ds_j = p * (dot(dy, k + C, HS) - D);  // v_j sits C past k_j
        }
        ds[lane] = ds_j;
        __syncwarp();
        // Lanes as channels: dq_t += ds_j k_j over the chunk.
        const int keys = min(32, t - j0 + 1);
#pragma unroll
        for (int s = 0; s < SLOTS; s++) {
            const int d = lane + 32 * s;
            if (d < HS) {
                for (int i = 0; i < keys; i++) dq[s] += ds[i] * to_float(k_base[(size_t)(j0 + i) * 3 * C + d]);
            }
        }
        __syncwarp();  // ds is read before the next chunk overwrites it
    }
    floatX* o = dqkv + token_row(b, T, t) * 3 * C + h * HS;
#pragma unroll
    for (int s = 0; s < SLOTS; s++) {
        const int d = lane + 32 * s;
        if (d < HS) o[d] = from_float<floatX>(scale * dq[s]);
    }
}

// dk and dv into dqkv's columns C.. and 2C... One warp per key row r = (b * NH + h) * T + j. Dynamic
// shared memory: 2 HS + 64 floats per warp (k_j, v_j, the chunk's p and ds values).
extern "C" __global__ void flash_attention_backward_dkdv(floatX* dqkv, const float* row_dots, const floatX* dout,
                                                         const floatX* qkv, const float* lse, int B, int T, int NH,
                                                         int HS, float scale) {
    extern __shared__ float shared[];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int row = blockIdx.x * (blockDim.x / 32) + warp;
    if (row >= B * NH * T) return;
    const int j = row % T, bh = row / T;
    const int b = bh / NH, h = bh % NH;
    const int C = NH * HS;
    const floatX* q_base = qkv + token_row(b, T, 0) * 3 * C + h * HS;  // token t's q at q_base + t * 3C
    const floatX* dy_base = dout + token_row(b, T, 0) * C + h * HS;    // its dout at dy_base + t * C
    float* k = shared + warp * (2 * HS + 64);
    float* v = k + HS;
    float* p = v + HS;
    float* ds = p + 32;

    stage_row(k, q_base + (size_t)j * 3 * C + C, HS, lane);
    stage_row(v, q_base + (size_t)j * 3 * C + 2 * C, HS, lane);
    float dk[SLOTS], dv[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; s++) dk[s] = dv[s] = 0.0f;
    __syncwarp();  // k_j and v_j are staged

    for (int t0 = j; t0 < T; t0 += 32) {
        // Lanes as queries: p and ds for query t = t0 + lane (0 past the end).
        const int t = t0 + lane;
        float p_t = 0.0f, ds_t = 0.0f;
        if (t < T) {
            const size_t query_row = (size_t)bh * T + t;
            p_t = expf(scale * dot(k, q_base + (size_t)t * 3 * C, HS) - lse[query_row]);
            ds_t = p_t * (dot(v, dy_base + (size_t)t * C, HS) - row_dots[query_row]);
        }
        p[lane] = p_t;
        ds[lane] = ds_t;
        __syncwarp();
        // Lanes as channels: dv_j += p dout_t and dk_j += ds q_t over the chunk.
        const int queries = min(32, T - t0);
#pragma unroll
        for (int s = 0; s < SLOTS; s++) {
            const int d = lane + 32 * s;
            if (d < HS) {
                for (int i = 0; i < queries; i++) {
                    dv[s] += p[i] * to_float(dy_base[(size_t)(t0 + i) * C + d]);
                    dk[s] += ds[i] * to_float(q_base[(size_t)(t0 + i) * 3 * C + d]);
                }
            }
        }
        __syncwarp();  // p and ds are read before the next chunk overwrites them
    }
    floatX* o = dqkv + token_row(b, T, j) * 3 * C + h * HS;
#pragma unroll
    for (int s = 0; s < SLOTS; s++) {
        const int d = lane + 32 * s;
        if (d < HS) {
            o[C + d] = from_float<floatX>(scale * dk[s]);
            o[2 * C + d] = from_float<floatX>(dv[s]);
        }
    }
}
