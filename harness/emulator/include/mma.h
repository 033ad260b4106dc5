// Emulator stand-in for <mma.h>: the WMMA (warp matrix multiply-accumulate) API.
//
// On a GPU a fragment's elements are spread over the warp's 32 lanes in a layout the programming
// guide leaves unspecified, so correct code only moves fragments through load/store_matrix_sync and
// only applies the same operation to every element. That lets the emulator give every lane the
// whole tile: each lane computes the full product, and what any lane stores is the full result.
// Every call is warp-collective, as on the GPU: a lane that skips one makes its warp hang (reported).
#pragma once
#include <type_traits>

#include "emu_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator supports the 16 x 16 x 16 shape only");
    static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
    static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
    static constexpr int num_elements = rows * cols;
    T x[num_elements];  // row-major, the whole tile in every lane
};

// Every lane reads the whole tile when it reaches the call, then the warp compares what its lanes
// read. Lanes run one after another here, so if other threads wrote the tile in between (on a GPU:
// the load raced with their stores for want of a __syncthreads or __syncwarp), the lanes disagree,
// and that is reported rather than averaged away.
template <typename F>
EMU_QUIET inline void check_lanes_agree(const F& f, const char* what) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a over the fragment's bytes
    const unsigned char* bytes = reinterpret_cast<const unsigned char*>(f.x);
    for (size_t i = 0; i < sizeof(f.x); i++) hash = (hash ^ bytes[i]) * 1099511628211ull;
    if (emu::shuffle(0xffffffffu, hash, 0, what) != hash) {
        throw emu::Error(std::string(what) + ": the lanes of a warp read different values from the same tile, "
                         "so other threads wrote it during the load (a missing __syncthreads or __syncwarp)");
    }
}

// The programming guide's rules for load_matrix_sync and store_matrix_sync: the pointer 256-bit
// (32-byte) aligned, the stride a multiple of 16 bytes. A GPU may fault or load garbage otherwise.
template <typename P>
EMU_QUIET inline void check_tile_address(const P* p, unsigned ldm, const char* what) {
    emu::check_aligned(p, 32, what);
    if ((ldm * sizeof(P)) % 16)
        throw emu::Error(std::string(what) + ": ldm = " + std::to_string(ldm) + " elements is not a multiple of 16 bytes");
}

// The tile's memory traffic for the access profile (emu_profile.h), counted once per warp as the
// instructions beneath WMMA move it on sm_80 and later. Operand tiles (matrix_a, matrix_b) as ldmatrix
// reads them: each phase, one 16-byte piece of eight consecutive rows. Accumulators in the PTX ISA's
// mma.m16n8k16 layout (two of them side by side make the 16 x 16 tile): lane l holds rows l/4 and
// l/4 + 8 at columns 2(l%4) and 2(l%4) + 1 of each 8-column half, a pair moved by one 8-byte access
// when it is contiguous (row-major), else one access per element.
template <typename P>
inline void profile_tile(const P* p, int rows, int cols, unsigned ldm, bool column_major, bool accumulator,
                         bool write, void* return_address) {
#ifdef EMU_PROFILE
    const uintptr_t pc = reinterpret_cast<uintptr_t>(return_address);
    if (!accumulator) {
        emu::profile::record_row_pieces(p, column_major ? cols : rows, (column_major ? rows : cols) * sizeof(P),
                                        ldm * sizeof(P), write, pc);
        return;
    }
    const uintptr_t base = reinterpret_cast<uintptr_t>(p);
    uintptr_t addresses[32];
    for (int half = 0; half < cols / 8; ++half) {
        for (int row_offset = 0; row_offset < rows; row_offset += 8) {
            for (int element = 0; element < (column_major ? 2 : 1); ++element) {
                for (unsigned lane = 0; lane < 32; ++lane) {
                    const unsigned row = row_offset + lane / 4, col = 8 * half + 2 * (lane % 4) + element;
                    addresses[lane] = base + (column_major ? col * ldm + row : row * ldm + col) * sizeof(P);
                }
                emu::profile::record_request(addresses, 32, (column_major ? 1 : 2) * sizeof(P), write, pc);
            }
        }
    }
#endif
}

template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
EMU_UNPROFILED inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
    EMU_UNTRACED_SCOPE;
    using F = fragment<Use, M, N, K, T, Layout>;
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load needs a layout_t argument");
    constexpr bool column_major = std::is_same<Layout, col_major>::value;
    check_tile_address(p, ldm, "load_matrix_sync");
    profile_tile(p, F::rows, F::cols, ldm, column_major, false, false, __builtin_return_address(0));
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++) f.x[r * F::cols + c] = column_major ? p[c * ldm + r] : p[r * ldm + c];
    check_lanes_agree(f, "load_matrix_sync");
}

template <int M, int N, int K, typename T>
EMU_UNPROFILED inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
    EMU_UNTRACED_SCOPE;
    check_tile_address(p, ldm, "load_matrix_sync");
    profile_tile(p, M, N, ldm, layout == mem_col_major, true, false, __builtin_return_address(0));
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) f.x[r * N + c] = layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c];
    check_lanes_agree(f, "load_matrix_sync");
}

template <int M, int N, int K, typename T>
EMU_UNPROFILED inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
    EMU_UNTRACED_SCOPE;
    emu::syncwarp();
    check_tile_address(p, ldm, "store_matrix_sync");
    profile_tile(p, M, N, ldm, layout == mem_col_major, true, true, __builtin_return_address(0));
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * N + c];
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
EMU_UNPROFILED inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& value) {
    EMU_UNTRACED_SCOPE;
    for (auto& v : f.x) v = value;
}

// d = a b + c, products and sums in fp32 (the tensor cores' bf16 products are exact in fp32).
template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
EMU_UNPROFILED inline void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
    EMU_UNTRACED_SCOPE;
    TC result[M * N];
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            float sum = emu_as_float(c.x[i * N + j]);
            for (int k = 0; k < K; k++) sum += emu_as_float(a.x[i * K + k]) * emu_as_float(b.x[k * N + j]);
            result[i * N + j] = TC(sum);
        }
    }
    for (int e = 0; e < M * N; e++) d.x[e] = result[e];
    emu::syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda
