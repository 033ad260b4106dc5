/*
 * flash_attention backward, variant 2: two kernels on the tensor cores, P recomputed from lse
 *
 * Changed: tiles and WMMA instead of one warp per row, and D moves into the dq kernel's prologue.
 * The first kernel takes 64 query rows of one (b, h): each warp computes D_t = dout_t . out_t for its
 * 16 rows (kept in registers and written to a (B, NH, T) buffer for the second kernel), keeps its q
 * and dout rows in registers as fragments, and walks the key tiles at or below the diagonal: k's and
 * v's tiles staged with cp.async, S = q k^T and dP = dout v^T on the tensor cores, dS = scale P
 * (dP - D) with P = exp(scale S - lse) recomputed elementwise, and dq += dS k. The second kernel
 * takes 64 key rows, keeps k and v in registers, and walks the query tiles at or below the diagonal:
 * S^T = k q^T and dP^T = v dout^T, the same P^T and dS^T (lse and D of the tile's queries staged in
 * shared memory), then dv += P^T dout and dk += dS^T q. Nothing T x T is read or written.
 * Teaches: attention backward 2 with the probabilities recomputed instead of read: att's (B, NH, T, T)
 * bf16 read becomes one more 64 x 64 x 64 product per tile pair on the tensor cores and an exp per
 * element, and the row dot product D comes from dout . out (64 products per row, before the loop)
 * instead of from a whole extra pass over dP. Splitting by direction still gives every output one
 * owner (no atomics), at the price of computing S and dP in both kernels. bf16 only, HS = 64
 * (GPT-2's head size).
 * Run: python bench.py flash_attention --pass backward --variant 2
 */
#include "attention/tiles.cuh"  // the tile geometry, WMMA helpers and copy_window

using namespace attention_tiles;

// Dynamic shared memory of each kernel (bytes; backward.py mirrors both). Parts are carved in the
// order listed, each a multiple of 32 bytes as fragment loads need.
// dq: two staged tiles (k, v), every warp's S and dP (fp32) and dS (bf16) tiles, then the block's
// 64 D and 64 lse values.
constexpr int DQ_SHARED = 2 * TILE_BYTES + 2 * SCORE_BYTES + PROB_BYTES + 2 * TILE * 4;
// dk, dv: two staged tiles (q, dout), every warp's S^T and dP^T (fp32) and P^T and dS^T (bf16)
// tiles, then the query tile's 64 lse and 64 D values.
constexpr int DKDV_SHARED = 2 * TILE_BYTES + 2 * SCORE_BYTES + 2 * PROB_BYTES + 2 * TILE * 4;

// dq into dqkv's first C columns, and D = dout . out into row_dots (B * NH * T floats).
// Grid (ceil(T / 64), B * NH), 128 threads, DQ_SHARED bytes of dynamic shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dq_tiles(
    floatX* dqkv, float* row_dots, const floatX* dout, const floatX* qkv, const floatX* out, const float* lse, int B,
    int T, int NH, float scale) {
    extern __shared__ __align__(128) float shared_words[];
    unsigned char* shared = reinterpret_cast<unsigned char*>(shared_words);
    auto k_tile = reinterpret_cast<Tile>(shared);  // q's tile first, to load the fragments
    auto v_tile = reinterpret_cast<Tile>(shared + TILE_BYTES);  // dout's tile first
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    float* S = reinterpret_cast<float*>(shared + 2 * TILE_BYTES) + warp * 16 * SCORE_PITCH;
    float* dP = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + SCORE_BYTES) + warp * 16 * SCORE_PITCH;
    auto dS = reinterpret_cast<Tile>(shared + 2 * TILE_BYTES + 2 * SCORE_BYTES) + warp * 16;
    float* D = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + 2 * SCORE_BYTES + PROB_BYTES) + warp * 16;
    float* row_lse = D + TILE;  // the warp's 16 D values, then (64 floats on) its 16 lse values

    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;
    const int first = t0 + 16 * warp;  // this warp's first query row
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;
    const floatX* y_base = out + (size_t)b * T * C + h * HS;

    stage(k_tile, q_base, 3 * C, t0, T);
    stage(v_tile, dy_base, C, t0, T);

    // D_t = dout_t . out_t for the warp's 16 rows, straight from memory (lane c: channels c, c + 32),
    // and each row's lse, into shared memory (in registers they would cost 32 of them for the whole
    // loop). Rows past T get 0 for both; their probabilities are masked to 0 below.
    for (int r = 0; r < 16; r++) {
        const int t = first + r;
        float partial = 0.0f;
        if (t < T) {
            const floatX* dy = dy_base + (size_t)t * C;
            const floatX* y = y_base + (size_t)t * C;
            partial = to_float(dy[lane]) * to_float(y[lane]) + to_float(dy[lane + 32]) * to_float(y[lane + 32]);
        }
        const float dot = warp_reduce_sum(partial);
        if (lane == 0) {
            D[r] = dot;
            row_lse[r] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
            if (t < T) row_dots[(size_t)bh * T + t] = dot;
        }
    }

    // The warp's q and dout rows stay in registers for the whole loop.
    __syncthreads();
    RowFragment q[KSTEPS], dy[KSTEPS];
    load_rows(q, &k_tile[16 * warp]);
    load_rows(dy, &v_tile[16 * warp]);

    Accumulator dq[FRAGS];
    zero(dq);
    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        __syncthreads();  // every warp is done with the previous tiles (and loaded its fragments)
        stage<true>(k_tile, q_base + C, 3 * C, kt * TILE, T);
        __pipeline_commit();
        stage<true>(v_tile, q_base + 2 * C, 3 * C, kt * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // this thread's k copies have landed (v's may be in flight)
        __syncthreads();
        rows_times_cols(S, q, k_tile);  // raw scores q k^T
        __pipeline_wait_prior(0);
        __syncthreads();
        rows_times_cols(dP, dy, v_tile);  // dP = dout v^T

        // dS = scale P (dP - D), P = exp(scale S - lse) for keys j <= t, else 0; rounded to bf16.
#pragma unroll 2
        for (int r = 0; r < 16; r++) {
            const int t = first + r;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int c = lane + 32 * half;
                const int key = kt * TILE + c;
                const float p = key <= t && t < T ? expf(scale * S[r * SCORE_PITCH + c] - row_lse[r]) : 0.0f;
                dS[r][c] = from_float<floatX>(scale * p * (dP[r * SCORE_PITCH + c] - D[r]));
            }
        }
        __syncwarp();  // the warp's dS tile is complete before its fragment loads
        accumulate_product(dq, dS, k_tile);
    }
    store_rows(dqkv + (size_t)b * T * 3 * C + h * HS, 3 * C, first, T, dq, S, lane);
}

// dk and dv into dqkv's columns C.. and 2C... Grid (ceil(T / 64), B * NH): a block owns 64 keys.
// 128 threads, DKDV_SHARED bytes of dynamic shared memory. Reads the D that the dq kernel wrote.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_backward_dkdv_tiles(
    floatX* dqkv, const float* row_dots, const floatX* dout, const floatX* qkv, const float* lse, int B, int T,
    int NH, float scale) {
    extern __shared__ __align__(128) float shared_words[];
    unsigned char* shared = reinterpret_cast<unsigned char*>(shared_words);
    auto q_tile = reinterpret_cast<Tile>(shared);  // k's tile first, to load the fragments
    auto dy_tile = reinterpret_cast<Tile>(shared + TILE_BYTES);  // v's tile first
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    float* S = reinterpret_cast<float*>(shared + 2 * TILE_BYTES) + warp * 16 * SCORE_PITCH;
    float* dP = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + SCORE_BYTES) + warp * 16 * SCORE_PITCH;
    auto Pt = reinterpret_cast<Tile>(shared + 2 * TILE_BYTES + 2 * SCORE_BYTES) + warp * 16;
    auto dSt = reinterpret_cast<Tile>(shared + 2 * TILE_BYTES + 2 * SCORE_BYTES + PROB_BYTES) + warp * 16;
    float* lse_tile = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + 2 * SCORE_BYTES + 2 * PROB_BYTES);
    float* D_tile = lse_tile + TILE;

    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int k0 = blockIdx.x * TILE;
    const int first = k0 + 16 * warp;  // this warp's first key row
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;

    // The warp's k and v rows stay in registers for the whole loop.
    stage(q_tile, q_base + C, 3 * C, k0, T);
    stage(dy_tile, q_base + 2 * C, 3 * C, k0, T);
    __syncthreads();
    RowFragment k[KSTEPS], v[KSTEPS];
    load_rows(k, &q_tile[16 * warp]);
    load_rows(v, &dy_tile[16 * warp]);

    Accumulator dk[FRAGS], dv[FRAGS];
    zero(dk);
    zero(dv);
    const int query_tiles = (T + TILE - 1) / TILE;
    for (int qt = blockIdx.x; qt < query_tiles; qt++) {  // query tiles at or below the diagonal
        const int q0 = qt * TILE;
        __syncthreads();  // every warp is done with the previous tiles (and loaded its fragments)
        stage<true>(q_tile, q_base, 3 * C, q0, T);
        stage<true>(dy_tile, dy_base, C, q0, T);
        __pipeline_commit();
        if (threadIdx.x < TILE) {
            const int t = q0 + threadIdx.x;
            lse_tile[threadIdx.x] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
            D_tile[threadIdx.x] = t < T ? row_dots[(size_t)bh * T + t] : 0.0f;
        }
        __pipeline_wait_prior(0);
        __syncthreads();
        rows_times_cols(S, k, q_tile);    // S^T = k q^T: this warp's 16 keys x 64 queries
        rows_times_cols(dP, v, dy_tile);  // dP^T = v dout^T

        // P^T and dS^T = scale P^T (dP^T - D), column c being query q0 + c; zero unless key <= query < T.
#pragma unroll 2
        for (int r = 0; r < 16; r++) {
            const int key = first + r;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int c = lane + 32 * half;
                const int t = q0 + c;
                const float p = key <= t && t < T ? expf(scale * S[r * SCORE_PITCH + c] - lse_tile[c]) : 0.0f;
                Pt[r][c] = from_float<floatX>(p);
                dSt[r][c] = from_float<floatX>(scale * p * (dP[r * SCORE_PITCH + c] - D_tile[c]));
            }
        }
        __syncwarp();  // the warp's P^T and dS^T tiles are complete before their fragment loads
        accumulate_product(dv, Pt, dy_tile);
        accumulate_product(dk, dSt, q_tile);
    }
    store_rows(dqkv + (size_t)b * T * 3 * C + C + h * HS, 3 * C, first, T, dk, S, lane);
    store_rows(dqkv + (size_t)b * T * 3 * C + 2 * C + h * HS, 3 * C, first, T, dv, S, lane);
}
