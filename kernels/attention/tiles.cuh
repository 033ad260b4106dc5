// The tile geometry and WMMA building blocks of the tensor-core attention kernels (attention
// backward 2, flash attention forward 2 and backward 2): a block takes 64 rows (queries or keys) of
// one (b, h), each of its 4 warps 16 of them; the other side arrives in 64 x HS tiles staged in
// shared memory (staged_copy.cuh). A warp's own 16 rows are block-invariant, so they can live in
// registers as matrix_a fragments for the whole key (or query) loop. Score-sized results leave the
// accumulators through a per-warp 16 x 64 fp32 tile in shared memory, because a fragment's
// element-to-lane layout is opaque; lane c then owns columns c and c + 32 of every row, which keeps
// a row's reads conflict-free.
#pragma once
#include <mma.h>

#include "common.cuh"
#include "staged_copy.cuh"  // copy_window: 16-byte copies into shared slices, zero-filled tails

#ifndef WB_BF16
#error "tensor-core WMMA variant: bf16 only (fp32 operands have no tensor-core path without TF32)"
#endif

namespace attention_tiles {

using namespace nvcuda;

constexpr int HS = 64;                 // head size: the launches refuse others
constexpr int TILE = 64;               // rows per block and per staged tile
constexpr int WARPS = 4;               // 16 rows each
constexpr int THREADS = 32 * WARPS;
constexpr int PITCH = HS + 8;          // bf16 shared rows: 144 bytes, a multiple of 16 and not of 128
constexpr int FRAGS = TILE / 16;       // 16-wide fragments across a tile (and across HS)
constexpr int KSTEPS = HS / 16;        // 16-deep steps of a dot product over the head
// fp32 score rows: 288 bytes. A fragment store writes 8-byte pairs, four rows per half-warp phase; rows
// 8 banks apart put those four on different banks, where 64 floats (256 bytes) put them on the same
// ones: 4 wavefronts a phase instead of 1 (bench.py attention --emulate --accesses counts them).
constexpr int SCORE_PITCH = TILE + 8;

constexpr int TILE_BYTES = TILE * PITCH * 2;            // one staged 64 x HS bf16 tile
constexpr int SCORE_BYTES = WARPS * 16 * SCORE_PITCH * 4;  // every warp's 16 x 64 fp32 tile
constexpr int PROB_BYTES = WARPS * 16 * PITCH * 2;      // every warp's 16 x 64 bf16 tile

typedef floatX (*Tile)[PITCH];
typedef const floatX (*ConstTile)[PITCH];
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> Accumulator;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> RowFragment;

// Stage rows [row0, row0 + 64) of a token-major matrix (leading dimension ld, HS columns from base)
// into `tile`, rows >= T as zeros. ASYNC: cp.async copies that land after the caller's commit and wait.
template <bool ASYNC = false>
__device__ __forceinline__ void stage(Tile tile, const floatX* base, int ld, int row0, int T) {
    copy_window<TILE, HS, PITCH, THREADS, ASYNC>(tile, base, ld, row0, T, 0, HS);
}

// A warp's 16 rows of a staged tile (16 x HS) as matrix_a fragments, one per 16-deep step.
__device__ __forceinline__ void load_rows(RowFragment (&rows)[KSTEPS], ConstTile tile) {
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) wmma::load_matrix_sync(rows[kk], &tile[0][16 * kk], PITCH);
}

// S (16 x 64 floats, row-major, rows SCORE_PITCH apart) = rows (16 x HS) @ cols^T, where cols is a staged 64 x HS tile whose
// rows become S's columns (read column-major: no transpose is ever stored).
__device__ __forceinline__ void rows_times_cols(float* S, const RowFragment (&rows)[KSTEPS], ConstTile cols) {
#pragma unroll
    for (int j = 0; j < FRAGS; j++) {
        Accumulator acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::col_major> b;
            wmma::load_matrix_sync(b, &cols[16 * j][16 * kk], PITCH);
            wmma::mma_sync(acc, rows[kk], b, acc);
        }
        wmma::store_matrix_sync(S + 16 * j, acc, SCORE_PITCH, wmma::mem_row_major);
    }
    __syncwarp();  // the whole tile is in S before any lane reads another lane's part
}

// acc[j] (16 x HS) += P (16 x 64 bf16, a warp's row-major shared tile) @ tile (64 x HS, staged).
__device__ __forceinline__ void accumulate_product(Accumulator (&acc)[FRAGS], ConstTile P, ConstTile tile) {
#pragma unroll
    for (int kk = 0; kk < TILE; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, floatX, wmma::row_major> a;
        wmma::load_matrix_sync(a, &P[0][kk], PITCH);
#pragma unroll
        for (int j = 0; j < FRAGS; j++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, floatX, wmma::row_major> b;
            wmma::load_matrix_sync(b, &tile[kk][16 * j], PITCH);
            wmma::mma_sync(acc[j], a, b, acc[j]);
        }
    }
}

__device__ __forceinline__ void zero(Accumulator (&acc)[FRAGS]) {
#pragma unroll
    for (int j = 0; j < FRAGS; j++) wmma::fill_fragment(acc[j], 0.0f);
}

// The accumulators into the warp's fp32 tile S (16 x HS, row-major, rows SCORE_PITCH apart), for the lanes to read.
__device__ __forceinline__ void spill_to_tile(float* S, const Accumulator (&acc)[FRAGS]) {
    __syncwarp();  // every lane is done reading S
#pragma unroll
    for (int j = 0; j < FRAGS; j++) wmma::store_matrix_sync(S + 16 * j, acc[j], SCORE_PITCH, wmma::mem_row_major);
    __syncwarp();
}

// Write a warp's 16 x HS accumulator rows to dst + row * ld (rows first_row.., those < T), through S.
__device__ __forceinline__ void store_rows(floatX* dst, size_t ld, int first_row, int T,
                                           const Accumulator (&acc)[FRAGS], float* S, int lane) {
    spill_to_tile(S, acc);
    for (int r = 0; r < 16; r++) {
        if (first_row + r >= T) break;
        floatX* o = dst + (size_t)(first_row + r) * ld;
        o[lane] = from_float<floatX>(S[r * SCORE_PITCH + lane]);
        o[lane + 32] = from_float<floatX>(S[r * SCORE_PITCH + lane + 32]);
    }
}

}  // namespace attention_tiles
