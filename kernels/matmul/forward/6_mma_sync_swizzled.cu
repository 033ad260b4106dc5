/*
 * matmul forward, variant 6: mma.sync and ldmatrix on swizzled slices, results from registers
 *
 * Changed: variant 5 through WMMA, whose fragment layouts are unspecified, so shared tiles must be
 * plain strided rows and results must go out through a shared staging tile. Here the PTX
 * instructions beneath WMMA are called directly (kernels/warp_mma.cuh): ldmatrix reads 8 x 8
 * quarters of the operands and mma.sync m16n8k16 multiplies them, both with documented register
 * layouts. Two things follow. The slices drop their padding and are swizzled instead: each 16-byte
 * pack of a row moves to pack ^ f(row) (swizzled<> in staged_copy.cuh), which keeps ldmatrix free
 * of bank conflicts and also removes the 2-way conflicts variant 5's 80-byte rows cause on the
 * copies' stores. And the epilogue adds the bias and writes each lane's accumulators straight to
 * global memory, with no staging tile and no shared round trip.
 * Teaches: what WMMA hides, and the bank arithmetic of an XOR swizzle (the kind of shared layout
 * CUTLASS uses). Count it: `python bench.py matmul --variant 5 --variant 6 --dtype bf16 --emulate --accesses
 * --shape 2,40,64,160` shows the copies' shared stores at 2x the ideal wavefronts in variant 5 and at
 * the ideal here.
 * The price: the direct stores write 16 bytes per row per instruction, half of each 32-byte sector.
 * bf16 only; needs K % 8 == 0 for the 16-byte copies.
 * Run: python bench.py matmul --variant 6
 */
#include "common.cuh"
#include "staged_copy.cuh"  // copy_window (cp.async, swizzled), swizzled<>
#include "warp_mma.cuh"     // ldmatrix_x4, mma_bf16_16x8x16, lane addresses, store_pair

#ifndef WB_BF16
#error "tensor-core mma.sync variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

constexpr int TILE_M = 128, TILE_N = 128, TILE_K = 32;
constexpr int WARPS_M = 2, WARPS_N = 4;  // 8 warps: 256 threads a block
constexpr int WARP_M = TILE_M / WARPS_M; // 64 rows of outputs a warp
constexpr int WARP_N = TILE_N / WARPS_N; // 32 columns
constexpr int FRAGS_M = WARP_M / 16;     // 16-row A fragments a warp
constexpr int FRAGS_N = WARP_N / 8;      // 8-column B fragments (and accumulator tiles)
constexpr int THREADS = 32 * WARPS_M * WARPS_N;
constexpr int STAGES = 2;

struct Slices {
    floatX inp[STAGES][TILE_M][TILE_K];  // 64-byte rows, swizzled: no padding
    floatX weight[STAGES][TILE_N][TILE_K];
};


__device__ __forceinline__ void copy_slices(Slices& slices, int stage, const floatX* inp, const floatX* weight,
                                            int row0, int col0, int M, int N, int K, int k0) {
    copy_window<TILE_M, TILE_K, TILE_K, THREADS, true, true>(slices.inp[stage], inp, K, row0, M, k0, K);
    copy_window<TILE_N, TILE_K, TILE_K, THREADS, true, true>(slices.weight[stage], weight, K, col0, N, k0, K);
}

extern "C" __global__ void __launch_bounds__(THREADS) matmul_forward_mma_sync(
    floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int M, int N, int K) {
    __shared__ __align__(128) Slices slices;

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_row = (warp / WARPS_N) * WARP_M;
    const int warp_col = (warp % WARPS_N) * WARP_N;
    const int row0 = blockIdx.y * TILE_M;
    const int col0 = blockIdx.x * TILE_N;
    const int num_slices = (K + TILE_K - 1) / TILE_K;

    // The row and column within a 16 x 16 operand block whose address this lane gives ldmatrix
    // (warp_mma.cuh): inp's quarters down, then right; weight's k halves, then the next 8 n.
    const int a_row = quarter_row(lane), a_col = quarter_col(lane);
    const int b_row = n_row(lane), b_col = k_col(lane);

    float acc[FRAGS_M][FRAGS_N][4] = {};

    copy_slices(slices, 0, inp, weight, row0, col0, M, N, K, 0);
    __pipeline_commit();

    for (int s = 0; s < num_slices; s++) {
        const int stage = s % STAGES;
        if (s + 1 < num_slices) {
            copy_slices(slices, (s + 1) % STAGES, inp, weight, row0, col0, M, N, K, (s + 1) * TILE_K);
        }
        __pipeline_commit();
        __pipeline_wait_prior(1);
        __syncthreads();
        const floatX* inp_slice = &slices.inp[stage][0][0];
        const floatX* weight_slice = &slices.weight[stage][0][0];
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            unsigned a[FRAGS_M][4], b[FRAGS_N][2];
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
                ldmatrix_x4(a[i], inp_slice + swizzled<TILE_K>(warp_row + 16 * i + a_row, kk + a_col));
            }
#pragma unroll
            for (int j = 0; j < FRAGS_N; j += 2) {  // one ldmatrix.x4 holds two 8-column fragments
                unsigned r[4];
                ldmatrix_x4(r, weight_slice + swizzled<TILE_K>(warp_col + 8 * j + b_row, kk + b_col));
                b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
                for (int j = 0; j < FRAGS_N; j++) mma_bf16_16x8x16(acc[i][j], a[i], b[j]);
            }
        }
        __syncthreads();
    }
    __pipeline_wait_prior(0);

    // Lane (g, t) = (lane / 4, lane % 4) holds rows g and g + 8, columns 2t and 2t + 1 of each tile.
    const int g = lane / 4, t = lane % 4;
    const bool pairs_aligned = N % 2 == 0;  // then (row * N + col) is even for even col: 4-byte stores
#pragma unroll
    for (int j = 0; j < FRAGS_N; j++) {
        const int col = col0 + warp_col + 8 * j + 2 * t;
        const float bias0 = col < N ? to_float(bias[col]) : 0.0f;
        const float bias1 = col + 1 < N ? to_float(bias[col + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < FRAGS_M; i++) {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int row = row0 + warp_row + 16 * i + g + 8 * half;
                if (row >= M || col >= N) continue;
                const float first = acc[i][j][2 * half] + bias0, second = acc[i][j][2 * half + 1] + bias1;
                store_pair(out + (size_t)row * N + col, first, second, pairs_aligned && col + 1 < N, col + 1 < N);
            }
        }
    }
}
