/*
 * layernorm forward, variant 5: 128-bit vectorized loads and stores
 *
 * Changed: every global access moves 16 bytes (x128: 4 floats or 8 bf16) instead of one
 * element; the row is read with a streaming hint (ld.global.cs) and the output written with
 * st.global.cs, while weight and bias, shared by every row, use ordinary cached loads.
 * Teaches: the same bytes now take 4x (fp32) or 8x (bf16) fewer load and store instructions, so
 * the warp's whole row is in flight after a few instructions. The hints keep the single-use
 * activations from evicting the weights from L1 and L2. Needs C % x128::size == 0 so that no
 * pack straddles two rows or breaks 16-byte alignment.
 * Run: python bench.py layernorm --variant 5
 */
#include "common.cuh"

// The register budget of variant 4: 64 floats per lane, so C <= 2048.
constexpr int MAX_C = 2048;
constexpr int PACKS = MAX_C / (32 * x128::size);  // packs per lane: 16 (fp32) or 8 (bf16)

extern "C" __global__ void layernorm_forward_vectorized(
    floatX* out, float* mean, float* rstd,
    const floatX* inp, const floatX* weight, const floatX* bias, int N, int C) {
    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int row = blockIdx.x * warp.meta_group_size() + warp.meta_group_rank();
    if (row >= N) return;  // the whole warp leaves; there is no block-wide barrier below
    const int lane = warp.thread_rank();
    const floatX* x = inp + (size_t)row * C;

    // Pack p of lane `lane` starts at element (p * 32 + lane) * x128::size: one warp instruction
    // reads 512 consecutive bytes. C is a multiple of the pack size, so a pack is wholly inside
    // the row or wholly outside it.
    float v[PACKS][x128::size];
    float sum = 0.0f;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * x128::size;
        if (c < C) {
            const x128 packed = load128cs(x + c);
#pragma unroll
            for (int j = 0; j < x128::size; j++) {
                v[p][j] = to_float(packed[j]);
                sum += v[p][j];
            }
        }
    }
    const float m = cg::reduce(warp, sum, cg::plus<float>()) / C;

    float sum_sq = 0.0f;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * x128::size;
        if (c < C) {
#pragma unroll
            for (int j = 0; j < x128::size; j++) {
                const float d = v[p][j] - m;
                sum_sq += d * d;
            }
        }
    }
    const float s = rsqrtf(cg::reduce(warp, sum_sq, cg::plus<float>()) / C + 1e-5f);

    floatX* y = out + (size_t)row * C;
#pragma unroll
    for (int p = 0; p < PACKS; p++) {
        const int c = (p * 32 + lane) * x128::size;
        if (c < C) {
            const x128 w = load128(weight + c);
            const x128 b = load128(bias + c);
            x128 o;
#pragma unroll
            for (int j = 0; j < x128::size; j++) {
                o[j] = from_float<floatX>((v[p][j] - m) * s * to_float(w[j]) + to_float(b[j]));
            }
            store128cs(y + c, o);
        }
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}
