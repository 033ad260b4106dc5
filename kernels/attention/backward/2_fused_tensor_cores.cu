/*
 * attention backward, variant 2: two fused kernels on the tensor cores, no T x T scratch
 *
 * Changed: instead of four cuBLAS products around a softmax kernel, with datt written, rewritten
 * and read through a (B, NH, T, T) scratch buffer, two kernels read q, k, v and dout straight from
 * their token-major buffers and keep every score-sized tile in shared memory. The first takes 64
 * query rows of one head: it computes datt = dout v^T tile by tile with WMMA, first to get each
 * row's D = sum_j att datt (the softmax backward's dot product, kept in a small (B, NH, T)
 * buffer), then again to form dpreatt = scale att (datt - D) and accumulate dq = dpreatt k. The
 * second takes 64 key rows: for every query tile at or below the diagonal it recomputes datt^T =
 * v dout^T, forms the same dpreatt^T from att (staged through shared memory with coalesced loads)
 * and D, and accumulates dv = att^T dout and dk = dpreatt^T q. Tiles above the diagonal are skipped.
 * Teaches: the backward's reductions run in two directions (dq sums over keys, dk and dv over
 * queries), so one kernel per direction, each owning its outputs, needs no atomics; recomputing
 * datt on the tensor cores is cheaper than a trip through memory. Also: the dot product D is what
 * lets the two directions work independently. bf16 only, HS = 64 (GPT-2's head size).
 * Run: python bench.py attention --pass backward --variant 2
 */
#include "attention/tiles.cuh"  // the tile geometry, accumulate_product, store_rows and copy_window

using namespace attention_tiles;

constexpr int ATT_PITCH = TILE + 2;    // 33 words: a column of the att tile spans all 32 banks

// S (16 x 64 floats, row-major) = rows (16 x HS, a row-major shared tile) @ cols^T, where cols is a
// 64 x HS row-major shared tile whose rows become S's columns (read column-major).
__device__ __forceinline__ void rows_times_cols(float* S, const floatX (*rows)[PITCH], const floatX (*cols)[PITCH]) {
#pragma unroll
    for (int j = 0; j < FRAGS; j++) {
        Accumulator acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HS; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> b;
            wmma::load_matrix_sync(a, &rows[0][kk], PITCH);
            wmma::load_matrix_sync(b, &cols[16 * j][kk], PITCH);
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(S + 16 * j, acc, SCORE_PITCH, wmma::mem_row_major);
    }
    __syncwarp();  // the whole tile is in S before any lane reads another lane's part
}

// Stage v's key tile kt in kv_tile, once every warp is done with the previous tile, and compute
// this warp's datt = dout v^T against it.
__device__ __forceinline__ void datt_of_key_tile(float* S, const floatX (*dy_tile)[PITCH], floatX (*kv_tile)[PITCH],
                                                 const floatX* v_base, int ld, int kt, int T, int warp) {
    __syncthreads();
    copy_window<TILE, HS, PITCH, THREADS>(kv_tile, v_base, ld, kt * TILE, T, 0, HS);
    __syncthreads();
    rows_times_cols(S, &dy_tile[16 * warp], kv_tile);
}

// dq, and D = rowsum(att * datt) into row_dots (B * NH * T floats). Grid (ceil(T / 64), B * NH).
extern "C" __global__ void __launch_bounds__(THREADS) attention_backward_dq(
    floatX* dqkv, float* row_dots, const floatX* dout, const floatX* qkv, const floatX* att, int B, int T, int NH,
    float scale) {
    __shared__ __align__(32) floatX dy_tile[TILE][PITCH];
    __shared__ __align__(32) floatX kv_tile[TILE][PITCH];  // v's tile, then k's
    __shared__ __align__(32) float score_tiles[WARPS][16 * SCORE_PITCH];
    __shared__ __align__(32) floatX prob_tiles[WARPS][16][PITCH];

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;
    const int first = t0 + 16 * warp;  // this warp's first query row
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* att_rows = att + (size_t)bh * T * T;
    float* S = score_tiles[warp];

    copy_window<TILE, HS, PITCH, THREADS>(dy_tile, dout + (size_t)b * T * C + h * HS, C, t0, T, 0, HS);

    // Pass 1: D_t = sum over j <= t of att[t, j] * datt[t, j], datt = dout v^T. Each lane adds its
    // two columns of every tile; one warp reduction per row at the end.
    float dot[16];
#pragma unroll
    for (int r = 0; r < 16; r++) dot[r] = 0.0f;
    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {
        datt_of_key_tile(S, dy_tile, kv_tile, q_base + 2 * C, 3 * C, kt, T, warp);
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int t = first + r;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int key = kt * TILE + lane + 32 * half;
                if (key <= t && t < T) {
                    dot[r] += to_float(att_rows[(size_t)t * T + key]) * S[r * SCORE_PITCH + lane + 32 * half];
                }
            }
        }
        __syncwarp();  // S is read before the next tile overwrites it
    }
#pragma unroll
    for (int r = 0; r < 16; r++) {
        dot[r] = warp_reduce_sum(dot[r]);
        if (lane == 0 && first + r < T) row_dots[(size_t)bh * T + first + r] = dot[r];
    }

    // Pass 2: dpreatt = scale * att * (datt - D), then dq += dpreatt k.
    Accumulator dq[FRAGS];
#pragma unroll
    for (int j = 0; j < FRAGS; j++) wmma::fill_fragment(dq[j], 0.0f);
    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {
        datt_of_key_tile(S, dy_tile, kv_tile, q_base + 2 * C, 3 * C, kt, T, warp);
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int t = first + r;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int c = lane + 32 * half;
                const int key = kt * TILE + c;
                const float p = (key <= t && t < T) ? to_float(att_rows[(size_t)t * T + key]) : 0.0f;
                prob_tiles[warp][r][c] = from_float<floatX>(scale * p * (S[r * SCORE_PITCH + c] - dot[r]));
            }
        }
        __syncthreads();  // every warp is done with v's tile
        copy_window<TILE, HS, PITCH, THREADS>(kv_tile, q_base + C, 3 * C, kt * TILE, T, 0, HS);
        __syncthreads();  // k's tile and every lane's dpreatt are in place
        accumulate_product(dq, prob_tiles[warp], kv_tile);
    }
    store_rows(dqkv + (size_t)b * T * 3 * C + h * HS, 3 * C, first, T, dq, S, lane);
}

// dk and dv. Grid (ceil(T / 64), B * NH): a block owns 64 keys. Dynamic shared memory: DKDV_SHARED bytes.
constexpr int ATT_BYTES = TILE * ATT_PITCH * 2;  // TILE_BYTES, SCORE_BYTES and PROB_BYTES: tiles.cuh
constexpr int DKDV_SHARED = 2 * TILE_BYTES + ATT_BYTES + SCORE_BYTES + 2 * PROB_BYTES + TILE * 4;

extern "C" __global__ void __launch_bounds__(THREADS) attention_backward_dkdv(
    floatX* dqkv, const float* row_dots, const floatX* dout, const floatX* qkv, const floatX* att, int B, int T,
    int NH, float scale) {
    extern __shared__ __align__(128) float shared_words[];
    unsigned char* shared = reinterpret_cast<unsigned char*>(shared_words);
    // Carved in this order; every part starts at a multiple of 32 bytes, as fragment loads need.
    auto dy_tile = reinterpret_cast<floatX(*)[PITCH]>(shared);
    auto q_tile = reinterpret_cast<floatX(*)[PITCH]>(shared + TILE_BYTES);  // v's tile first
    auto att_tile = reinterpret_cast<floatX(*)[ATT_PITCH]>(shared + 2 * TILE_BYTES);
    float* score_tiles = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + ATT_BYTES);
    auto att_t = reinterpret_cast<floatX(*)[16][PITCH]>(shared + 2 * TILE_BYTES + ATT_BYTES + SCORE_BYTES);
    auto dpre_t = reinterpret_cast<floatX(*)[16][PITCH]>(shared + 2 * TILE_BYTES + ATT_BYTES + SCORE_BYTES +
                                                         PROB_BYTES);
    float* dots = reinterpret_cast<float*>(shared + 2 * TILE_BYTES + ATT_BYTES + SCORE_BYTES + 2 * PROB_BYTES);

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int k0 = blockIdx.x * TILE;
    const int first = k0 + 16 * warp;  // this warp's first key row
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* dy_base = dout + (size_t)b * T * C + h * HS;
    const floatX* att_rows = att + (size_t)bh * T * T;
    float* S = score_tiles + warp * 16 * SCORE_PITCH;

    // This warp's 16 rows of v stay in registers as matrix_a fragments for the whole loop.
    copy_window<TILE, HS, PITCH, THREADS>(q_tile, q_base + 2 * C, 3 * C, k0, T, 0, HS);
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> v[HS / 16];
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) wmma::load_matrix_sync(v[kk], &q_tile[16 * warp][16 * kk], PITCH);

    Accumulator dk[FRAGS], dv[FRAGS];
#pragma unroll
    for (int j = 0; j < FRAGS; j++) {
        wmma::fill_fragment(dk[j], 0.0f);
        wmma::fill_fragment(dv[j], 0.0f);
    }
    const int query_tiles = (T + TILE - 1) / TILE;
    for (int qt = blockIdx.x; qt < query_tiles; qt++) {  // query tiles at or below the diagonal
        const int q0 = qt * TILE;
        __syncthreads();  // the previous tiles' readers are done (and the v fragments loaded)
        copy_window<TILE, HS, PITCH, THREADS>(dy_tile, dy_base, C, q0, T, 0, HS);
        copy_window<TILE, HS, PITCH, THREADS>(q_tile, q_base, 3 * C, q0, T, 0, HS);
        // att[q0 .. q0 + 63][k0 .. k0 + 63], consecutive threads on consecutive keys; zero outside.
        for (int e = threadIdx.x; e < TILE * TILE; e += THREADS) {
            const int r = e / TILE, c = e % TILE;
            const bool inside = q0 + r < T && k0 + c < T;
            att_tile[r][c] = inside ? att_rows[(size_t)(q0 + r) * T + k0 + c] : from_float<floatX>(0.0f);
        }
        if (threadIdx.x < TILE) {
            const int q = q0 + threadIdx.x;
            dots[threadIdx.x] = q < T ? row_dots[(size_t)bh * T + q] : 0.0f;
        }
        __syncthreads();

        // S = datt^T for this warp's 16 keys x 64 queries: v (16 x HS) @ dout^T.
#pragma unroll
        for (int j = 0; j < FRAGS; j++) {
            Accumulator acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> dyT;
                wmma::load_matrix_sync(dyT, &dy_tile[16 * j][16 * kk], PITCH);
                wmma::mma_sync(acc, v[kk], dyT, acc);
            }
            wmma::store_matrix_sync(S + 16 * j, acc, SCORE_PITCH, wmma::mem_row_major);
        }
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int key_local = 16 * warp + r;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int c = lane + 32 * half;  // query q0 + c
                const float p = k0 + key_local <= q0 + c ? to_float(att_tile[c][key_local]) : 0.0f;
                att_t[warp][r][c] = from_float<floatX>(p);
                dpre_t[warp][r][c] = from_float<floatX>(scale * p * (S[r * SCORE_PITCH + c] - dots[c]));
            }
        }
        __syncwarp();  // the warp's probability tiles are complete before the fragment loads
        accumulate_product(dv, att_t[warp], dy_tile);
        accumulate_product(dk, dpre_t[warp], q_tile);
    }
    store_rows(dqkv + (size_t)b * T * 3 * C + C + h * HS, 3 * C, first, T, dk, S, lane);
    store_rows(dqkv + (size_t)b * T * 3 * C + 2 * C + h * HS, 3 * C, first, T, dv, S, lane);
}
