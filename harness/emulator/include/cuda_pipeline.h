// Emulator stand-in for <cuda_pipeline.h>: asynchronous global-to-shared copies (cp.async).
// In most blocks copies are queued per thread and carried out only when __pipeline_wait_prior covers
// their batch (see emu::Pipeline), so a missing wait or a wait for the wrong batch leaves poison in
// shared memory. In the others (Launch::copies_land_at_issue) they land at once, so a copy into a
// buffer other warps still read, for want of a barrier, changes what they read.
#pragma once
#include "emu_runtime.h"

EMU_UNPROFILED inline void __pipeline_memcpy_async(void* dst_shared, const void* src_global, size_t size_and_align,
                                    size_t zfill = 0) {
    if (size_and_align != 4 && size_and_align != 8 && size_and_align != 16)
        throw emu::Error("__pipeline_memcpy_async: size must be 4, 8 or 16 bytes");
    const uintptr_t dst = reinterpret_cast<uintptr_t>(dst_shared), src = reinterpret_cast<uintptr_t>(src_global);
    if (dst % size_and_align || src % size_and_align)
        throw emu::Error("__pipeline_memcpy_async: addresses must be aligned to the copy's size");
    if (zfill > size_and_align) throw emu::Error("__pipeline_memcpy_async: zfill larger than the copy");
#ifdef EMU_PROFILE  // a global load and a shared store, counted at the issuing instruction
    const uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
    if (zfill < size_and_align) emu::profile::record(src_global, size_and_align - zfill, false, pc);
    emu::profile::record(dst_shared, size_and_align, true, pc);
#endif
    if (emu::current->copies_land_at_issue) {
        std::memcpy(dst_shared, src_global, size_and_align - zfill);
        std::memset(static_cast<unsigned char*>(dst_shared) + size_and_align - zfill, 0, zfill);
        return;
    }
    emu::Pipeline& pipe = emu::current->pipelines[emu::linear_tid];
    pipe.open.push_back({dst_shared, src_global, size_and_align - zfill});
    if (zfill) pipe.open.push_back({static_cast<unsigned char*>(dst_shared) + size_and_align - zfill, nullptr, zfill});
}

EMU_UNPROFILED inline void __pipeline_commit() {
    emu::Pipeline& pipe = emu::current->pipelines[emu::linear_tid];
    pipe.committed.push_back(std::move(pipe.open));
    pipe.open.clear();
}

// Complete every committed batch but the newest `prior` ones.
EMU_UNPROFILED inline void __pipeline_wait_prior(size_t prior) {
    emu::Pipeline& pipe = emu::current->pipelines[emu::linear_tid];
    while (pipe.committed.size() > prior) {
        for (const emu::PendingCopy& copy : pipe.committed.front()) {
            if (copy.src) std::memcpy(copy.dst, copy.src, copy.bytes);
            else std::memset(copy.dst, 0, copy.bytes);
        }
        pipe.committed.pop_front();
    }
}
