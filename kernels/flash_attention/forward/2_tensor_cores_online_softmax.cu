/*
 * flash_attention forward, variant 2: tensor cores, one pass over the key tiles, online softmax
 *
 * Changed: tiles and WMMA instead of one warp per row. A block takes 64 query rows of one (b, h); each
 * of its 4 warps owns 16 of them. The block walks the key tiles at or below the diagonal once: k's
 * and v's 64 x 64 tiles are staged in shared memory with cp.async (v's copy lands while the scores
 * are computed), the warp's 16 x 64 scores come from q k^T on the tensor cores, and each row's
 * running maximum and sum are updated from them. The output accumulator (16 rows x 64 channels,
 * fp32, lane c holding columns c and c + 32 of every row) is multiplied by exp(old max - new max),
 * then the tile's P v (P = exp(score - new max), bf16) is added to it. After the last tile, out =
 * accumulator / sum and lse = max + log(sum) are written once. No T x T matrix exists anywhere.
 * Teaches: flash attention's forward. Attention forward 3 needs two passes over the keys (the
 * maximum and sum first, then the normalised probabilities it must store); without att to store, one
 * pass suffices, because the output can be rescaled like the sum. The accumulator cannot be
 * rescaled row by row inside a WMMA fragment (its element-to-lane layout is opaque), so each tile's
 * P v goes through the warp's shared tile into registers whose layout the code chooses: the price of
 * WMMA (variant 3 calls mma.sync itself, whose layout is known, and rescales in place). bf16 only, HS = 64 (GPT-2's head
 * size).
 * Run: python bench.py flash_attention --variant 2
 */
#include "attention/tiles.cuh"  // the tile geometry, WMMA helpers and copy_window

using namespace attention_tiles;

// Dynamic shared memory, carved in this order (each part a multiple of 32 bytes, as fragment loads
// need): q, k and v tiles, then per warp a 16 x 64 fp32 tile (scores, then the tile's P v) and a
// 16 x PITCH bf16 tile of probabilities. forward.py's SHARED_BYTES mirrors the total.
constexpr int SHARED_BYTES = 3 * TILE_BYTES + SCORE_BYTES + PROB_BYTES;

// out (B, T, C) floatX, lse (B, NH, T) fp32, qkv (B, T, 3C) floatX, C = NH * HS.
// Grid (ceil(T / 64), B * NH), 128 threads, SHARED_BYTES of dynamic shared memory.
extern "C" __global__ void __launch_bounds__(THREADS) flash_attention_forward_tiles(
    floatX* out, float* lse, const floatX* qkv, int B, int T, int NH, float scale) {
    extern __shared__ __align__(128) float shared_words[];
    unsigned char* shared = reinterpret_cast<unsigned char*>(shared_words);
    auto q_tile = reinterpret_cast<floatX(*)[PITCH]>(shared);
    auto k_tile = reinterpret_cast<floatX(*)[PITCH]>(shared + TILE_BYTES);
    auto v_tile = reinterpret_cast<floatX(*)[PITCH]>(shared + 2 * TILE_BYTES);
    float* S = reinterpret_cast<float*>(shared + 3 * TILE_BYTES) + (threadIdx.x / 32) * 16 * SCORE_PITCH;
    auto P = reinterpret_cast<floatX(*)[PITCH]>(shared + 3 * TILE_BYTES + SCORE_BYTES) + (threadIdx.x / 32) * 16;

    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int C = NH * HS;
    const int bh = blockIdx.y;
    const int b = bh / NH, h = bh % NH;
    const int t0 = blockIdx.x * TILE;       // first query row of the block
    const int first = t0 + 16 * warp;       // this warp's first query row
    const floatX* q_base = qkv + (size_t)b * T * 3 * C + h * HS;
    const floatX* k_base = q_base + C;
    const floatX* v_base = q_base + 2 * C;

    // The warp's 16 query rows stay in registers as matrix_a fragments for the whole loop.
    stage(q_tile, q_base, 3 * C, t0, T);
    __syncthreads();
    RowFragment q[KSTEPS];
    load_rows(q, &q_tile[16 * warp]);

    // Per row r of the warp, every lane holds the same running maximum m[r] and sum l[r] (warp
    // reductions hand every lane the same value), and its own two columns of the accumulator.
    float m[16], l[16], o[16][2];
#pragma unroll
    for (int r = 0; r < 16; r++) {
        m[r] = LOWEST;
        l[r] = 0.0f;
        o[r][0] = o[r][1] = 0.0f;
    }

    for (int kt = 0; kt <= (int)blockIdx.x; kt++) {  // key tiles at or below the diagonal
        __syncthreads();  // every warp is done with the previous k and v tiles
        stage<true>(k_tile, k_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        stage<true>(v_tile, v_base, 3 * C, kt * TILE, T);
        __pipeline_commit();
        __pipeline_wait_prior(1);  // this thread's k copies have landed (v's may still be in flight)
        __syncthreads();           // everyone's have
        rows_times_cols(S, q, k_tile);  // the warp's 16 x 64 raw scores q k^T

        // The online softmax, row by row: lane c takes columns c and c + 32 (two conflict-free reads).
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int t = first + r;
            float s[2];
            float tile_max = LOWEST;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int key = kt * TILE + lane + 32 * half;
                s[half] = key <= t ? S[r * SCORE_PITCH + lane + 32 * half] * scale : LOWEST;  // the causal mask
                tile_max = fmaxf(tile_max, s[half]);
            }
            const float m_new = fmaxf(m[r], warp_reduce_max(tile_max));
            const float rescale = expf(m[r] - m_new);  // 1 when the maximum stays, 0 on the first tile
            float tile_sum = 0.0f;
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const float p = s[half] == LOWEST ? 0.0f : expf(s[half] - m_new);
                tile_sum += p;
                P[r][lane + 32 * half] = from_float<floatX>(p);
            }
            l[r] = l[r] * rescale + warp_reduce_sum(tile_sum);
            m[r] = m_new;
            o[r][0] *= rescale;  // the accumulator follows the sum to the new maximum
            o[r][1] *= rescale;
        }

        __pipeline_wait_prior(0);  // v's copies have landed
        __syncthreads();           // everyone's have
        Accumulator pv[FRAGS];
        zero(pv);
        accumulate_product(pv, P, v_tile);
        spill_to_tile(S, pv);  // S's scores are all read (the loop above): now the tile's P v
#pragma unroll
        for (int r = 0; r < 16; r++) {
            o[r][0] += S[r * SCORE_PITCH + lane];
            o[r][1] += S[r * SCORE_PITCH + lane + 32];
        }
        __syncwarp();  // S is read before the next tile's scores overwrite it
    }

    // out[b, t, h * HS + c] and lse[b, h, t], each written once.
#pragma unroll
    for (int r = 0; r < 16; r++) {
        const int t = first + r;
        if (t < T) {
            const float inverse_l = 1.0f / l[r];  // l >= 1: the row maximum's own term is exp(0)
            floatX* row_out = out + ((size_t)b * T + t) * C + h * HS;
            row_out[lane] = from_float<floatX>(o[r][0] * inverse_l);
            row_out[lane + 32] = from_float<floatX>(o[r][1] * inverse_l);
            if (lane == r) lse[(size_t)bh * T + t] = m[r] + logf(l[r]);
        }
    }
}
