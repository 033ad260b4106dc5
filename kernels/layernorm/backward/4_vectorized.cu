/*
 * layernorm backward, variant 4: 128-bit loads and stores
 *
 * Changed: variant 3 with every global access 16 bytes wide: lane l of a warp handles the
 * x128::size consecutive columns starting at x128::size * l (4 in fp32, 8 in bf16), then jumps by
 * 32 * x128::size. The per-warp shared sums are read and written 128 bits at a time too. The
 * second pass reads dout and inp for the last time with streaming loads (ld.global.cs). C must be
 * a multiple of x128::size so every row starts 16-byte aligned; other widths are refused.
 * Teaches: vectorised memory access (a quarter of the load instructions of variant 3 in fp32, an
 * eighth in bf16) and the alignment rules that come with it.
 * Run: python bench.py layernorm --pass backward --variant 4
 */
#include "common.cuh"
#include "reduce_partials.cuh"  // the second kernel: column sums of the partials

// Dynamic shared memory: (blockDim.x / 32) slices of 2 * C floats, one per warp; in each slice
// [0, C) sums dweight and [C, 2C) sums dbias. C % x128::size == 0 (checked by the launch side),
// so every slice and every lane's group of columns is 16-byte aligned.
// partials (gridDim.x, 2, C) float: block b writes partials[b][0][:] (dweight) and [b][1][:] (dbias).
extern "C" __global__ void layernorm_backward_vectorized(
    floatX* dinp, floatX* dweight, floatX* dbias, float* partials,
    const floatX* dout, const floatX* inp, const floatX* weight,
    const float* mean, const float* rstd, int N, int C) {
    extern __shared__ __align__(16) float shared[];
    constexpr int V = x128::size;       // floatX elements per 128-bit access
    constexpr int F = f128::size;       // floats per 128-bit access (4)
    static_assert(V % F == 0, "a lane's V columns are whole f128 groups in shared memory");

    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int lane = warp.thread_rank();
    const int warps_per_block = warp.meta_group_size();

    float* dweight_warp = shared + (size_t)warp.meta_group_rank() * 2 * C;
    float* dbias_warp = dweight_warp + C;
    // Lane l owns columns [V*l, V*l + V), [V*(l + 32), ...), ... of its warp's slice: it alone
    // zeroes, reads and writes them, so no barrier is needed before the row loop.
    const f128 zeros = {};
    for (int i = lane * V; i < C; i += 32 * V) {
        for (int q = 0; q < V; q += F) {
            store128(dweight_warp + i + q, zeros);
            store128(dbias_warp + i + q, zeros);
        }
    }

    // Grid-stride loop over rows; `row` is warp-uniform and the loop holds no barrier.
    const int warps_in_grid = gridDim.x * warps_per_block;
    for (int row = blockIdx.x * warps_per_block + warp.meta_group_rank(); row < N; row += warps_in_grid) {
        const size_t offset = (size_t)row * C;
        const floatX* g = dout + offset;
        const floatX* x = inp + offset;
        const float m = mean[row];
        const float s = rstd[row];

        // Pass 1: the two row sums. Plain loads, so the row stays in cache for pass 2.
        float sum_dnorm = 0.0f;
        float sum_dnorm_norm = 0.0f;
        for (int i = lane * V; i < C; i += 32 * V) {
            const x128 dout_vec = load128(g + i);
            const x128 inp_vec = load128(x + i);
            const x128 weight_vec = load128(weight + i);
            for (int k = 0; k < V; k++) {
                const float norm = (to_float(inp_vec[k]) - m) * s;
                const float dnorm = to_float(dout_vec[k]) * to_float(weight_vec[k]);
                sum_dnorm += dnorm;
                sum_dnorm_norm += dnorm * norm;
            }
        }
        const float dnorm_mean = cg::reduce(warp, sum_dnorm, cg::plus<float>()) / C;
        const float dnorm_norm_mean = cg::reduce(warp, sum_dnorm_norm, cg::plus<float>()) / C;

        // Pass 2: dinp and the warp's parameter-gradient sums. Last reads of dout and inp: streaming.
        floatX* dx = dinp + offset;
        for (int i = lane * V; i < C; i += 32 * V) {
            const x128 dout_vec = load128cs(g + i);
            const x128 inp_vec = load128cs(x + i);
            const x128 weight_vec = load128(weight + i);
            x128 dinp_vec;
            for (int q = 0; q < V; q += F) {
                f128 dweight_acc = load128(dweight_warp + i + q);
                f128 dbias_acc = load128(dbias_warp + i + q);
                for (int k = 0; k < F; k++) {
                    const float d = to_float(dout_vec[q + k]);
                    const float norm = (to_float(inp_vec[q + k]) - m) * s;
                    const float dnorm = d * to_float(weight_vec[q + k]);
                    dinp_vec[q + k] = from_float<floatX>((dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
                    dbias_acc[k] += d;
                    dweight_acc[k] += d * norm;
                }
                store128(dweight_warp + i + q, dweight_acc);
                store128(dbias_warp + i + q, dbias_acc);
            }
            store128(dx + i, dinp_vec);
        }
    }
    block.sync();  // every warp's slice is final before any thread reads the others

    // Sum the warps' slices in warp order and write the block's partials (zeros for a block that
    // got no rows). 2 * C is a multiple of 4, so this goes 128 bits at a time as well.
    float* block_partials = partials + (size_t)blockIdx.x * 2 * C;
    for (int j = threadIdx.x * F; j < 2 * C; j += blockDim.x * F) {
        f128 total = {};
        for (int w = 0; w < warps_per_block; w++) {
            const f128 slice = load128(shared + (size_t)w * 2 * C + j);
            for (int k = 0; k < F; k++) total[k] += slice[k];
        }
        store128(block_partials + j, total);
    }
}
