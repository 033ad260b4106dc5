// Emulator stand-in for kernels/warp_mma.cuh: ldmatrix.x4 and mma.sync m16n8k16 (bf16, fp32
// accumulators) with the register layouts the PTX ISA specifies, written down in that header.
//
// On a GPU the lanes of a warp exchange registers inside one instruction. Here the lanes run one
// after another, so each lane publishes what it holds in an exchange area, waits for its warp (a
// __syncwarp), reads what it needs, and waits again before anyone overwrites the area. Both are
// warp-collective, as on the GPU: every lane of the warp must call them, and a lane that skips one
// makes the warp hang (reported).
#pragma once
#include "emu_runtime.h"

namespace emu {

struct WarpExchange {
    alignas(16) unsigned char rows[32][32][16];  // ldmatrix: the row each lane addresses, [warp][lane]
    uintptr_t addresses[32][32];                 //           and its address (for the access profile)
    unsigned a[32][32][4];                       // mma: each lane's A registers
    unsigned b[32][32][2];                       //      and B registers
};
inline WarpExchange warp_exchange;

// One bf16 of a register holding two (element 0 in the lower 16 bits), as a float.
EMU_QUIET inline float bf16_half(unsigned reg, int element) {
    __nv_bfloat16 h;
    h.bits = uint16_t(element ? reg >> 16 : reg & 0xffffu);
    return emu_as_float(h);
}

}  // namespace emu

namespace emu {

// ldmatrix.x4, plain or .trans: every lane's row address exchanged, then each lane's four registers.
EMU_UNPROFILED inline void ldmatrix(unsigned (&r)[4], const void* row_address, bool transposed, void* return_address) {
    emu::require_whole_warp("ldmatrix", ", a warp-collective instruction,");
    emu::check_aligned(row_address, 16, "ldmatrix (each row address)");
    if (!emu::shared_address(row_address)) throw emu::Error("ldmatrix: a row address is not in shared memory");
    const unsigned warp = emu::linear_tid / 32, lane = emu::lane_id();
    // Each lane reads the row it addresses now, so no other thread can write it between lanes.
    __builtin_memcpy(emu::warp_exchange.rows[warp][lane], row_address, 16);
    emu::warp_exchange.addresses[warp][lane] = reinterpret_cast<uintptr_t>(row_address);
    emu::syncwarp();
#ifdef EMU_PROFILE  // one shared load of 32 lanes x 16 bytes, recorded by lane 0 once all have addressed
    emu::profile::record_request(emu::warp_exchange.addresses[warp], 32, 16, false,
                                 reinterpret_cast<uintptr_t>(return_address));
#endif
    for (int i = 0; i < 4; ++i) {
        if (!transposed) {  // row lane / 4, elements 2 (lane % 4) and the next
            __builtin_memcpy(&r[i], emu::warp_exchange.rows[warp][8 * i + lane / 4] + 4 * (lane % 4), 4);
        } else {  // column lane / 4 of rows 2 (lane % 4) and the next
            uint16_t low, high;
            __builtin_memcpy(&low, emu::warp_exchange.rows[warp][8 * i + 2 * (lane % 4)] + 2 * (lane / 4), 2);
            __builtin_memcpy(&high, emu::warp_exchange.rows[warp][8 * i + 2 * (lane % 4) + 1] + 2 * (lane / 4), 2);
            r[i] = unsigned(low) | unsigned(high) << 16;
        }
    }
    emu::syncwarp();
}

}  // namespace emu

EMU_UNPROFILED inline void ldmatrix_x4(unsigned (&r)[4], const void* row_address) {
    EMU_UNTRACED_SCOPE;
    emu::ldmatrix(r, row_address, false, __builtin_return_address(0));
}

EMU_UNPROFILED inline void ldmatrix_x4_trans(unsigned (&r)[4], const void* row_address) {
    EMU_UNTRACED_SCOPE;
    emu::ldmatrix(r, row_address, true, __builtin_return_address(0));
}

EMU_UNPROFILED inline void mma_bf16_16x8x16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    EMU_UNTRACED_SCOPE;
    emu::require_whole_warp("mma.sync", ", a warp-collective instruction,");
    const unsigned warp = emu::linear_tid / 32, lane = emu::lane_id();
    for (int i = 0; i < 4; ++i) emu::warp_exchange.a[warp][lane][i] = a[i];
    for (int i = 0; i < 2; ++i) emu::warp_exchange.b[warp][lane][i] = b[i];
    emu::syncwarp();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {  // the whole operands, from every lane's registers
        const int g = l / 4, t = l % 4;
        const unsigned* la = emu::warp_exchange.a[warp][l];
        const unsigned* lb = emu::warp_exchange.b[warp][l];
        for (int e = 0; e < 2; ++e) {
            A[g][2 * t + e] = emu::bf16_half(la[0], e);
            A[g + 8][2 * t + e] = emu::bf16_half(la[1], e);
            A[g][2 * t + 8 + e] = emu::bf16_half(la[2], e);
            A[g + 8][2 * t + 8 + e] = emu::bf16_half(la[3], e);
            B[2 * t + e][g] = emu::bf16_half(lb[0], e);
            B[2 * t + 8 + e][g] = emu::bf16_half(lb[1], e);
        }
    }
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {  // this lane's four results; bf16 products are exact in fp32
        const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
        float sum = 0.0f;
        for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
        d[i] += sum;
    }
    emu::syncwarp();  // everyone has read the exchange before the next call overwrites it
}
