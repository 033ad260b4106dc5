/*
 * flash_attention forward, variant 1: one warp per query row, online softmax
 *
 * Changed: against attention forward 1 and 2, no scores anywhere in memory: a warp takes one query
 * row t of one (b, h), reads q_t and then every key and value row j <= t straight out of qkv, and
 * keeps only a running maximum m, a running sum l of exp(score - m) and an output accumulator of HS
 * values. It walks the keys 32 at a time, switching roles between two phases: lanes as keys (lane i
 * scores key j0 + i against q_t, staged in shared memory), then one maximum and one sum over the
 * warp update m and l, and the accumulator is rescaled by exp(old m - new m); then lanes as channels
 * (lane c adds the chunk's p_j v_j[c] for its channels, the 32 probabilities read from shared
 * memory). At the end out_t = accumulator / l and lse_t = m + log(l), the one float per row the
 * backward needs to recompute the probabilities.
 * Teaches: the online softmax applied to a weighted sum: the normaliser and the numerator are
 * rescaled together, so exp never overflows and each key is visited once. Scoring a chunk of keys
 * with one lane per key needs no reduction per score (one maximum and one sum per 32 keys instead).
 * What it still lacks: every key and value row is read again by every query row after it (T^2 / 2
 * row reads per head, from L2 at best), a lane's reads of its own key row are not coalesced, and HS
 * = 8 leaves 24 of 32 lanes idle in the channel phase; tiles in shared memory and the tensor cores
 * (variant 2) fix the first two. HS <= MAX_HS.
 * Run: python bench.py flash_attention --variant 1
 */
#include "common.cuh"

// The largest head size the per-lane accumulator holds: lane l owns channels l, l + 32, ... (SLOTS
// of them). GPT-2's heads are 64 wide; the launch refuses wider ones.
#define MAX_HS 128
#define SLOTS (MAX_HS / 32)

// out (B, T, C) floatX, lse (B, NH, T) fp32, qkv (B, T, 3C) floatX, C = NH * HS.
// One warp per row r = (b * NH + h) * T + t; blockDim.x / 32 rows per block. Dynamic shared memory:
// HS + 32 floats per warp (q_t, then the chunk's 32 probabilities).
extern "C" __global__ void flash_attention_forward_rows(floatX* out, float* lse, const floatX* qkv, int B, int T,
                                                        int NH, int HS, float scale) {
    extern __shared__ float shared[];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int row = blockIdx.x * (blockDim.x / 32) + warp;
    // The whole warp shares `row`, so it leaves together: no shuffle below loses a lane.
    if (row >= B * NH * T) return;
    const int t = row % T;
    const int bh = row / T;
    const int b = bh / NH, h = bh % NH;
    const int C = NH * HS;
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;  // token j's q at q_base + j * 3C
    const floatX* k_base = q_base + C;
    const floatX* v_base = q_base + 2 * C;
    float* q = shared + warp * (HS + 32);  // this warp's copy of q_t
    float* p = q + HS;                     // and of the current chunk's probabilities

    for (int d = lane; d < HS; d += 32) q[d] = to_float(q_base[(size_t)t * 3 * C + d]);
    float acc[SLOTS];  // lane's channels lane, lane + 32, ...; slots past HS stay unused
#pragma unroll
    for (int s = 0; s < SLOTS; s++) acc[s] = 0.0f;
    __syncwarp();  // q_t is in shared memory before any lane reads all of it

    float m = LOWEST;  // the largest scaled score so far; LOWEST - LOWEST is 0, never NaN
    float l = 0.0f;    // sum of exp(score - m) over the keys so far
    for (int j0 = 0; j0 <= t; j0 += 32) {
        // Lanes as keys: lane i scores key j0 + i (masked: j <= t).
        const int j = j0 + lane;
        float score = LOWEST;
        if (j <= t) {
            const floatX* k = k_base + (size_t)j * 3 * C;
            float dot = 0.0f;
            for (int d = 0; d < HS; d++) dot += q[d] * to_float(k[d]);
            score = scale * dot;
        }
        const float m_new = fmaxf(m, warp_reduce_max(score));
        const float rescale = expf(m - m_new);  // 1 when the maximum stays, 0 at the first chunk
        const float p_j = j <= t ? expf(score - m_new) : 0.0f;
        l = l * rescale + warp_reduce_sum(p_j);
        m = m_new;
        p[lane] = p_j;
        __syncwarp();  // every lane's probability is in p

        // Lanes as channels: the accumulator moves to the new maximum, then adds this chunk's keys.
        const int keys = min(32, t - j0 + 1);
#pragma unroll
        for (int s = 0; s < SLOTS; s++) {
            const int d = lane + 32 * s;
            if (d < HS) {
                float sum = acc[s] * rescale;
                for (int i = 0; i < keys; i++) sum += p[i] * to_float(v_base[(size_t)(j0 + i) * 3 * C + d]);
                acc[s] = sum;
            }
        }
        __syncwarp();  // p is read before the next chunk overwrites it
    }

    const float inverse_l = 1.0f / l;  // l >= 1: the maximum's own term is exp(0)
    floatX* o = out + ((size_t)b * T + t) * C + h * HS;
#pragma unroll
    for (int s = 0; s < SLOTS; s++) {
        const int d = lane + 32 * s;
        if (d < HS) o[d] = from_float<floatX>(acc[s] * inverse_l);
    }
    if (lane == 0) lse[row] = m + logf(l);
}
