// The tensor cores without WMMA: ldmatrix and mma.sync m16n8k16 (bf16 operands, fp32 accumulators)
// as PTX instructions. Their register layouts are specified (WMMA's are not), which is what lets a
// kernel store its shared tiles in any order it likes (matmul forward 6 swizzles them) and read its
// results straight from the accumulator registers. The CPU emulator carries out the same
// instructions as specified here (harness/emulator/include/emu_warp_mma.h).
//
// Layouts, from the PTX ISA ("Matrix fragments for mma.m16n8k16"), with g = lane / 4, t = lane % 4.
// A register holds two bf16; the lower 16 bits are the lower column (or row of B):
//   A (16 x 16, m x k):  a[0] = A[g][2t, 2t+1]     a[1] = A[g+8][2t, 2t+1]
//                        a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8,  k x n):  b[0] = B[2t, 2t+1][g]     b[1] = B[2t+8, 2t+9][g]
//   C, D (16 x 8, fp32): d[0], d[1] = D[g][2t, 2t+1]   d[2], d[3] = D[g+8][2t, 2t+1]
// ldmatrix.x4 reads four 8 x 8 matrices of 16-bit elements: lane 8i + r gives the shared address of
// row r of matrix i (16 contiguous bytes, 16-byte aligned), and lane l receives in register i the
// two elements of matrix i's row l / 4 at columns 2(l % 4) and 2(l % 4) + 1. So a[i] comes from
// A's quarters in the order (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15,
// k 8-15), and b from rows of 8 n with k contiguous: nn.Linear's weight (N, K), as it lies in memory.
// ldmatrix.x4.trans reads the same rows but hands out each matrix transposed: lane l receives the
// elements of rows 2(l % 4) and 2(l % 4) + 1 at column l / 4. That is b's layout when the rows are
// B's k (8 consecutive keys of v, say) and the 16 bytes of a row are 8 of B's n (channels).
#pragma once
#include "common.cuh"

// The row and column, within a 16 x 16 block of a shared tile, whose address `lane` gives
// ldmatrix.x4 (lanes 8i .. 8i + 7 address the 8 rows of matrix i):
//   quarter_*: the quarters down, then right (rows 0-7, rows 8-15, then the same rows 8 columns on):
//     an A operand read plainly, or a B operand read with .trans from rows that are k;
//   n_row, k_col: rows 0-7 at both 8-column halves, then rows 8-15: B operands for two 8-wide n
//     blocks read plainly from rows that are n, or an A operand read with .trans from rows that are k.
__device__ __forceinline__ int quarter_row(int lane) { return lane % 8 + 8 * (lane / 8 % 2); }
__device__ __forceinline__ int quarter_col(int lane) { return 8 * (lane / 16); }
__device__ __forceinline__ int n_row(int lane) { return lane % 8 + 8 * (lane / 16); }
__device__ __forceinline__ int k_col(int lane) { return 8 * (lane / 8 % 2); }

// Two floats as a register of two bf16, the first in the lower half (an operand's element order).
__device__ __forceinline__ unsigned pack_bf16(float first, float second) {
    union {
        __nv_bfloat16 halves[2];
        unsigned word;
    } pair;
    pair.halves[0] = __float2bfloat16_rn(first), pair.halves[1] = __float2bfloat16_rn(second);
    return pair.word;
}

// Two adjacent results of an accumulator row (d[0], d[1] or d[2], d[3]) to p (p[1] only when
// `both`): one 4-byte (bf16) or 8-byte (fp32) store when `paired`, which the caller grants only where
// p is aligned for it, else one store per element.
__device__ __forceinline__ void store_pair(__nv_bfloat16* p, float first, float second, bool paired, bool both) {
    if (paired) {
        WB_CHECK_ALIGNED(p, 4, "store_pair");
        *reinterpret_cast<unsigned*>(p) = pack_bf16(first, second);
        return;
    }
    p[0] = __float2bfloat16_rn(first);
    if (both) p[1] = __float2bfloat16_rn(second);
}
__device__ __forceinline__ void store_pair(float* p, float first, float second, bool paired, bool both) {
    if (paired) {
        float2 pair;
        pair.x = first, pair.y = second;
        WB_CHECK_ALIGNED(p, 8, "store_pair");
        *reinterpret_cast<float2*>(p) = pair;
        return;
    }
    p[0] = first;
    if (both) p[1] = second;
}

#if defined(__CUDA_ARCH__)

// Registers r[0..3] from the four matrices whose rows this warp's lanes address (see above).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row_address) {
    const unsigned shared = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
    // "memory": the compiler must not move the read across the barriers that make the tile ready.
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared)
                 : "memory");
}

// The same four matrices, each transposed (see above).
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* row_address) {
    const unsigned shared = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared)
                 : "memory");
}

// d += a b for one 16 x 8 tile of d, over k = 16.
__device__ __forceinline__ void mma_bf16_16x8x16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#else
#include "emu_warp_mma.h"
#endif
