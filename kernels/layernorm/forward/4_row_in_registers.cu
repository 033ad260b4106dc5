/*
 * layernorm forward, variant 4: row held in registers
 *
 * Changed: each lane loads its C / 32 elements of the row once into a register array and runs
 * the mean, the centred variance and the normalisation from registers, so the row crosses the
 * memory bus once instead of three times.
 * Teaches: an array lives in registers only if every index is a compile-time constant, which
 * means a fixed maximum size (C <= MAX_C) and fully unrolled loops whose `c < C` guards switch
 * the spare slots off. Unrolled, the loads are independent, so the compiler can issue them all
 * before the first add and one warp keeps its whole row in flight.
 * Run: python bench.py layernorm --variant 4
 */
#include "common.cuh"

// 64 registers per lane: the largest row this variant accepts is 32 * 64 = 2048 elements.
constexpr int MAX_C = 2048;
constexpr int PER_LANE = MAX_C / 32;

extern "C" __global__ void layernorm_forward_row_in_registers(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    if (row >= N) return;  // the whole warp leaves; there is no block-wide barrier below
    const int lane = warp.thread_rank();
    const floatX* x = inp + (size_t)row * C;

    // Lane `lane` owns elements lane, lane + 32, ...: each load instruction of the warp reads
    // 32 consecutive elements, so it stays coalesced.
    float v[PER_LANE];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) {
        const int c = i * 32 + lane;
        v[i] = 0.0f;
        if (c < C) v[i] = to_float(x[c]);
        sum += v[i];
    }
    const float m = cg::reduce(warp, sum, cg::plus<float>()) / C;

    // Padding slots hold 0, and 0 - m is not 0: they must stay out of the variance.
    float sum_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) {
        const int c = i * 32 + lane;
        if (c < C) {
            const float d = v[i] - m;
            sum_sq += d * d;
        }
    }
    const float s = rsqrtf(cg::reduce(warp, sum_sq, cg::plus<float>()) / C + 1e-5f);

    floatX* y = out + (size_t)row * C;
#pragma unroll
    for (int i = 0; i < PER_LANE; i++) {
        const int c = i * 32 + lane;
        if (c < C) y[c] = from_float<floatX>((v[i] - m) * s * to_float(weight[c]) + to_float(bias[c]));
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}
