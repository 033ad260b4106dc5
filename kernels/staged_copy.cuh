// Staging a window of a row-major matrix in shared memory with 16-byte copies: the load step of the
// tensor-core variants (matmul forward 4 to 6, backward 3; attention forward 3, backward 2).
#pragma once
#include <cuda_pipeline.h>

#include "common.cuh"

// Where element (row, col) of a slice with COLS columns and no padding lives when it is swizzled
// (SWIZZLED below; the mma.sync variants): 16-byte pack p of row r is stored at pack p ^ key(r). The
// 32 banks serve 128 bytes (8 packs) at once; key(r) makes the same logical pack of 8 consecutive
// rows land in 8 different 16-byte groups of banks, so ldmatrix (8 rows a phase) reads without
// conflicts, while the packs of any 8-pack group of a row are only permuted among themselves, so a
// phase of the copies' 16-byte stores stays conflict-free too:
//   rows of 128 bytes or more (8k packs): key(r) = r % 8, the low 3 bits of the pack index;
//   rows of 64 bytes (4 packs, two rows per 128 bytes): key(r) = (r / 2) % 4.
// Padding (variant 5's 80-byte rows) keeps the reads conflict-free at the price of 2-way conflicts
// on the stores and unused bytes.
template <int COLS>
__device__ __forceinline__ int swizzled(int row, int col) {
    constexpr int PACKS = COLS / x128::size;
    static_assert(PACKS == 4 || PACKS % 8 == 0, "a swizzled row is 64 bytes or a multiple of 128");
    const int key = PACKS == 4 ? (row / 2) % 4 : row % 8;
    const int pack = (col / x128::size) ^ key;
    return row * COLS + pack * x128::size + col % x128::size;
}

// Copy rows [row0, row0 + ROWS) x columns [col0, col0 + COLS) of `matrix` (row-major, leading
// dimension ld) into slice[ROWS][PITCH], keeping memory's orientation, THREADS threads sharing the
// packs. Rows >= row_limit and packs at columns >= col_limit are stored as zeros, so the products
// that follow need no guards. col_limit and ld must be multiples of 8 (whole, aligned bf16 packs).
//
// ASYNC (sm_80+): each in-range pack is queued as a cp.async 16-byte copy that bypasses the
// registers, and the call returns at once. Those copies land only after the caller's
// __pipeline_commit() and a __pipeline_wait_prior() that covers them (then a __syncthreads() for the
// other threads' packs). Out-of-range packs are always zeroed by ordinary stores.
// SWIZZLED: the slice has no padding (PITCH == COLS) and its packs are placed by swizzled<COLS>.
template <int ROWS, int COLS, int PITCH, int THREADS, bool ASYNC = false, bool SWIZZLED = false>
__device__ __forceinline__ void copy_window(floatX (*slice)[PITCH], const floatX* matrix, int ld, int row0,
                                            int row_limit, int col0, int col_limit) {
    constexpr int PACKS_PER_ROW = COLS / x128::size;
    static_assert(ROWS * PACKS_PER_ROW % THREADS == 0, "the packs divide evenly over the block");
    static_assert(PITCH * sizeof(floatX) % 16 == 0, "every shared row starts 16-byte aligned");
    static_assert(!SWIZZLED || PITCH == COLS, "a swizzled slice has no padding");
#pragma unroll
    for (int l = 0; l < ROWS * PACKS_PER_ROW / THREADS; l++) {
        const int e = threadIdx.x + l * THREADS;
        const int r = e / PACKS_PER_ROW;
        const int c = (e % PACKS_PER_ROW) * x128::size;
        const floatX* source = matrix + (size_t)(row0 + r) * ld + col0 + c;
        const bool inside = row0 + r < row_limit && col0 + c < col_limit;
        floatX* destination = &slice[r][c];
        if constexpr (SWIZZLED) destination = &slice[0][0] + swizzled<COLS>(r, c);
        if (ASYNC && inside) {
            __pipeline_memcpy_async(destination, source, 16);
            continue;
        }
        x128 pack;
        if (inside) {
            pack = load128(source);
        } else {
#pragma unroll
            for (int j = 0; j < x128::size; j++) pack[j] = from_float<floatX>(0.0f);
        }
        store128(destination, pack);
    }
}
