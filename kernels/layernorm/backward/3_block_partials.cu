/*
 * layernorm backward, variant 3: per-block partials, deterministic
 *
 * Changed: no atomics at all. A fixed grid of blocks walks the rows with a grid-stride loop (one
 * warp per row); each warp sums its rows' dweight and dbias terms in its own slice of shared
 * memory, where lane l only ever touches columns l, l + 32, ..., so there is no race and no atomic.
 * At the end the block adds its warps' slices in a fixed order and writes one row of partial sums
 * to a scratch buffer; a second kernel sums the partials of every block column by column and
 * writes dweight and dbias in floatX.
 * Teaches: the two-kernel reduction (partials then a coalesced column sum), how a fixed order of
 * additions makes the result bit-for-bit reproducible, and why the grid size is a config value:
 * the scratch is sized before any device is known. Works for bf16 too: nothing adds into floatX.
 * Run: python bench.py layernorm --pass backward --variant 3
 */
#include "common.cuh"
#include "reduce_partials.cuh"  // the second kernel: column sums of the partials

// Dynamic shared memory: (blockDim.x / 32) slices of 2 * C floats, one per warp; in each slice
// [0, C) sums dweight and [C, 2C) sums dbias.
// partials (gridDim.x, 2, C) float: block b writes partials[b][0][:] (dweight) and [b][1][:] (dbias).
extern "C" __global__ void layernorm_backward_block_partials(
    floatX* dinp, floatX* dweight, floatX* dbias, float* partials,
    const floatX* dout, const floatX* inp, const floatX* weight,
    const float* mean, const float* rstd, int N, int C) {
    extern __shared__ float shared[];

    cg::thread_block block = cg::this_thread_block();
    cg::thread_block_tile<32> warp = cg::tiled_partition<32>(block);
    const int lane = warp.thread_rank();
    const int warps_per_block = warp.meta_group_size();

    float* dweight_warp = shared + (size_t)warp.meta_group_rank() * 2 * C;
    float* dbias_warp = dweight_warp + C;
    // Each lane zeroes, and later reads and writes, only its own columns of its warp's slice, so
    // no barrier is needed between the zeroing and the row loop.
    for (int i = lane; i < C; i += 32) {
        dweight_warp[i] = 0.0f;
        dbias_warp[i] = 0.0f;
    }

    // Grid-stride loop over rows. `row` is the same for all lanes of a warp, and the loop has no
    // barrier, so warps may leave it after different numbers of rows.
    const int warps_in_grid = gridDim.x * warps_per_block;
    for (int row = blockIdx.x * warps_per_block + warp.meta_group_rank(); row < N; row += warps_in_grid) {
        const size_t offset = (size_t)row * C;
        const floatX* g = dout + offset;
        const floatX* x = inp + offset;
        const float m = mean[row];
        const float s = rstd[row];

        float sum_dnorm = 0.0f;
        float sum_dnorm_norm = 0.0f;
        for (int i = lane; i < C; i += 32) {
            const float norm = (to_float(x[i]) - m) * s;
            const float dnorm = to_float(g[i]) * to_float(weight[i]);
            sum_dnorm += dnorm;
            sum_dnorm_norm += dnorm * norm;
        }
        const float dnorm_mean = cg::reduce(warp, sum_dnorm, cg::plus<float>()) / C;
        const float dnorm_norm_mean = cg::reduce(warp, sum_dnorm_norm, cg::plus<float>()) / C;

        floatX* dx = dinp + offset;
        for (int i = lane; i < C; i += 32) {
            const float d = to_float(g[i]);
            const float norm = (to_float(x[i]) - m) * s;
            const float dnorm = d * to_float(weight[i]);
            dx[i] = from_float<floatX>((dnorm - dnorm_mean - norm * dnorm_norm_mean) * s);
            dbias_warp[i] += d;
            dweight_warp[i] += d * norm;
        }
    }
    block.sync();  // every warp's slice is final before any thread reads the others

    // Sum the warps' slices in warp order (the same order every run) and write the block's
    // partials; a block that got no rows writes zeros, so every partial is defined.
    float* block_partials = partials + (size_t)blockIdx.x * 2 * C;
    for (int j = threadIdx.x; j < 2 * C; j += blockDim.x) {
        float total = 0.0f;
        for (int w = 0; w < warps_per_block; w++) total += shared[(size_t)w * 2 * C + j];
        block_partials[j] = total;
    }
}
