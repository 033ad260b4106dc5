// CPU emulation of the small part of CUDA C++ the variants use, so kernels can run in CI without a GPU.
//
// Blocks run one after another; each CUDA thread of a block is a fiber (ucontext) that runs until it
// reaches a barrier, so function-local statics behave as the block's shared memory and
// __syncthreads, warp shuffles and cooperative-groups reductions are real barriers. Undefined
// behaviour the GPU would hide (a full-mask shuffle after some lanes exited, a barrier some threads
// skipped, a hang) is reported as an error. It checks indexing, tails, barriers and argument types;
// it says nothing about speed or about the GPU's weaker memory ordering.
#pragma once
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <math.h>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <set>
#include <stdexcept>
#include <string>
#include <ucontext.h>
#include <vector>

#define __global__ __attribute__((used))
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))  // GNU form: valid after `static` too

// What the memory-access profile (emu_profile.h) must not see: the emulator's own work on a kernel's
// behalf (a WMMA load that every lane carries out for the whole tile; the barrier code, whose path
// differs between the lane that releases a barrier and the lanes that wait at it).
// EMU_QUIET: the same, for small helpers such code calls in its loops; they may be inlined there.
#ifdef EMU_PROFILE
#define EMU_UNPROFILED __attribute__((no_sanitize_thread, no_sanitize_coverage, noinline))
#define EMU_QUIET __attribute__((no_sanitize_thread, no_sanitize_coverage))
#else
#define EMU_UNPROFILED
#define EMU_QUIET
#endif

struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(8) uint2 { unsigned x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }

namespace emu {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A GPU faults on a load or store whose address is not a multiple of its size ("misaligned
// address", a sticky error that ends the process's CUDA context); x86 just does it. Every vector
// access goes through a check here, so the emulator refuses what the GPU would fault on.
inline void check_aligned(const void* address, size_t bytes, const char* what) {
    if (reinterpret_cast<uintptr_t>(address) % bytes)
        throw Error(std::string(what) + ": address " + std::to_string(reinterpret_cast<uintptr_t>(address)) +
                    " is not aligned to " + std::to_string(bytes) + " bytes (a misaligned-address fault on a GPU)");
}

// A fiber's stack, with an inaccessible guard page below it: a kernel that overflows its stack
// (deep recursion, huge local arrays) faults there, and FaultGuard reports it, rather than writing
// over the heap and aborting the process later.
struct FiberStack {
    static constexpr size_t kBytes = 128 * 1024;
    unsigned char* mapping = nullptr;
    size_t length = 0;
    FiberStack() {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        length = kBytes + page;
        void* address = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (address == MAP_FAILED) throw std::bad_alloc();
        mapping = static_cast<unsigned char*>(address);
        mprotect(mapping, page, PROT_NONE);
    }
    ~FiberStack() { munmap(mapping, length); }
    FiberStack(const FiberStack&) = delete;
    FiberStack& operator=(const FiberStack&) = delete;
    unsigned char* base() const { return mapping + (length - kBytes); }
};

// One fiber per CUDA thread of the running block. Fibers switch only at barriers (__syncthreads,
// shuffles, __syncwarp), so one OS thread runs the block deterministically and cheaply.
struct Fiber {
    ucontext_t context;
    std::unique_ptr<FiberStack> stack;
    enum State { Runnable, Waiting, Done } state = Runnable;
    int waiting_on = -1;  // barrier id: 0 is the block, 1 + w is warp w
};

// Asynchronous copies (cuda_pipeline.h) of one thread: the batch being issued and the committed
// batches not waited for yet. On a GPU a copy lands at some moment between its issue and the wait
// that covers it; the emulator takes the two extremes, block by block (Launch::copies_land_at_issue).
// Landing at the wait: shared memory a thread reads without waiting still holds the poison. Landing
// at issue: a copy into a buffer other warps have not finished reading (a double buffer refilled
// without the barrier that ends its last use) overwrites what they read.
struct PendingCopy {
    void* dst;
    const void* src;
    size_t bytes;
};
struct Pipeline {
    std::vector<PendingCopy> open;
    std::deque<std::vector<PendingCopy>> committed;
};

struct Launch {
    dim3 grid, block;
    unsigned threads = 0;
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    std::vector<unsigned char> dynamic_shared;  // the launch's bytes, then a guard zone, all poisoned per block
    size_t shared_bytes = 0;  // what the launch asked for
    std::set<std::pair<void*, size_t>> static_shared;
    uintptr_t dynamic_begin = 0, dynamic_end = 0;  // dynamic_shared's bytes
    uintptr_t static_low = UINTPTR_MAX, static_high = 0;  // bounds of every static_shared region
    std::vector<int> arrived;  // per barrier id
    std::vector<int> members;  // per barrier id: threads not yet returned
    int returned = 0;
    alignas(16) unsigned char slots[32][32][16];  // shuffle exchange: [warp][lane]
    std::vector<Pipeline> pipelines;  // per thread of the running block
    bool copies_land_at_issue = false;  // this block's cp.async copies: at issue, or at the wait
    std::string error;
    const std::function<void()>* body = nullptr;

    void fail(const std::string& message) {
        if (error.empty()) error = message;
    }
    void poison_shared() {
        // Shared memory is not zeroed on a GPU: poison it (0xFF bytes are NaN as floats) per block.
        std::memset(dynamic_shared.data(), 0xFF, dynamic_shared.size());
        for (auto& region : static_shared) std::memset(region.first, 0xFF, region.second);
    }
};

inline Launch* current = nullptr;
inline unsigned linear_tid = 0;
inline bool on_fiber = false;  // a CUDA thread is running (not the scheduler)

// Within the emulator's own code on a thread's behalf (a barrier, a WMMA call) nothing is traced for
// the access profile, not even the instrumented helpers that code calls (emu_profile.h). Per
// thread, because a barrier switches to the other threads while it waits.
inline int untraced_depth[1024];
struct Untraced {
    const unsigned thread = linear_tid;
    Untraced() { ++untraced_depth[thread]; }
    ~Untraced() { --untraced_depth[thread]; }
};
#ifdef EMU_PROFILE
#define EMU_UNTRACED_SCOPE emu::Untraced untraced_scope_
#else
#define EMU_UNTRACED_SCOPE
#endif

// Whether `address` is in the running block's shared memory (dynamic, or a static __shared__ variable).
EMU_UNPROFILED inline bool shared_address(const void* address) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(address);
    if (a >= current->dynamic_begin && a < current->dynamic_end) return true;
    if (a < current->static_low || a >= current->static_high) return false;  // without a call into std code
    auto after = current->static_shared.upper_bound({const_cast<void*>(address), ~size_t(0)});
    if (after == current->static_shared.begin()) return false;
    --after;
    return a < reinterpret_cast<uintptr_t>(after->first) + after->second;
}

inline unsigned lane_id() { return linear_tid % 32; }
// A GPU's dynamic shared memory starts at least 128-byte aligned (kernels declare __align__(128) and
// carve 32-byte aligned WMMA tiles out of it); a vector's data is only 16-byte aligned, so round up.
constexpr size_t kDynamicSharedAlign = 128;
// Past the dynamic shared memory a launch asks for: poison a kernel that reads there sees, and that
// is checked after each block. On a GPU a launch whose shared_mem is smaller than what its kernel
// indexes reads and writes whatever lies beyond, silently, or faults.
constexpr size_t kSharedGuard = 1024;
inline unsigned char* dynamic_shared() {
    unsigned char* base = current->dynamic_shared.data();
    return base + (kDynamicSharedAlign - reinterpret_cast<uintptr_t>(base) % kDynamicSharedAlign) % kDynamicSharedAlign;
}

// Called where a static __shared__ array is declared (before any thread can use it). The first time
// in a launch its bytes are poisoned, so the launch's first block cannot read zeros left by static
// initialisation (or values left by an earlier launch) where the GPU would give garbage.
EMU_UNPROFILED inline void register_shared(void* address, size_t bytes) {
    EMU_UNTRACED_SCOPE;
    if (current->static_shared.insert({address, bytes}).second) {
        std::memset(address, 0xFF, bytes);
        current->static_low = std::min(current->static_low, reinterpret_cast<uintptr_t>(address));
        current->static_high = std::max(current->static_high, reinterpret_cast<uintptr_t>(address) + bytes);
    }
}

inline const char* barrier_name(int id) { return id == 0 ? "__syncthreads" : "a warp shuffle or __syncwarp"; }

#ifdef EMU_PROFILE
namespace profile { inline void barrier_reached(); }
#endif

// Wait at barrier `id` until every member thread that has not returned arrives.
EMU_UNPROFILED inline void wait_at(int id) {
    EMU_UNTRACED_SCOPE;
#ifdef EMU_PROFILE
    profile::barrier_reached();
#endif
    Launch& L = *current;
    Fiber& me = L.fibers[linear_tid];
    if (++L.arrived[id] >= L.members[id]) {
        L.arrived[id] = 0;
        for (auto& fiber : L.fibers) {
            if (fiber.state == Fiber::Waiting && fiber.waiting_on == id) {
                fiber.state = Fiber::Runnable;
                fiber.waiting_on = -1;
            }
        }
        return;
    }
    me.state = Fiber::Waiting;
    me.waiting_on = id;
    unsigned self = linear_tid;
    swapcontext(&me.context, &L.scheduler);
    linear_tid = self;
}

EMU_UNPROFILED inline void syncthreads() {
    if (current->returned > 0) {
        throw Error("__syncthreads after some threads of the block returned (undefined on a GPU)");
    }
    wait_at(0);
}

EMU_UNPROFILED inline void syncwarp() { wait_at(1 + linear_tid / 32); }

// A warp-wide operation (a full-mask shuffle, ldmatrix, mma.sync) needs all 32 lanes of the warp
// running; `what` and `how` name it in the error.
EMU_QUIET inline void require_whole_warp(const char* what, const char* how) {
    const int running = current->members[1 + linear_tid / 32];
    if (running != 32) {
        throw Error(std::string(what) + how + " while only " + std::to_string(running) +
                    " of the warp's 32 lanes are running (lanes returned early, or the block size is not a "
                    "multiple of 32): undefined on a GPU");
    }
}

template <typename T>
EMU_UNPROFILED inline T shuffle(unsigned mask, T value, int source_lane, const char* what) {
    EMU_UNTRACED_SCOPE;
    static_assert(sizeof(T) <= 16, "shuffle of a type wider than 16 bytes");
    if (mask != 0xffffffffu) throw Error(std::string(what) + ": the emulator supports only the full mask");
    require_whole_warp(what, " with a full mask");
    Launch& L = *current;
    const unsigned warp = linear_tid / 32;
    std::memcpy(L.slots[warp][lane_id()], &value, sizeof(T));
    wait_at(1 + warp);
    T result;
    std::memcpy(&result, L.slots[warp][source_lane & 31], sizeof(T));
    wait_at(1 + warp);
    return result;
}

}  // namespace emu

#ifdef EMU_PROFILE
#include "emu_profile.h"
#endif

inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::syncwarp(); }

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int = 32) {
    return emu::shuffle(mask, v, emu::lane_id() ^ lane_mask, "__shfl_xor_sync");
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int = 32) {
    return emu::shuffle(mask, v, src, "__shfl_sync");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int = 32) {
    unsigned src = emu::lane_id() + delta;
    return emu::shuffle(mask, v, src < 32 ? src : emu::lane_id(), "__shfl_down_sync");
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int = 32) {
    unsigned lane = emu::lane_id();
    return emu::shuffle(mask, v, lane >= delta ? lane - delta : lane, "__shfl_up_sync");
}

inline float atomicAdd(float* address, float value) {
    float old = *address;
    *address = old + value;
    return old;
}
inline int atomicAdd(int* address, int value) {
    int old = *address;
    *address = old + value;
    return old;
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
    unsigned old = *address;
    *address = old + value;
    return old;
}

template <typename T> inline T __ldcs(const T* p) { emu::check_aligned(p, alignof(T), "__ldcs"); return *p; }
template <typename T> inline T __ldg(const T* p) { emu::check_aligned(p, alignof(T), "__ldg"); return *p; }
template <typename T> inline T __ldcg(const T* p) { emu::check_aligned(p, alignof(T), "__ldcg"); return *p; }
template <typename T> inline void __stcs(T* p, T v) { emu::check_aligned(p, alignof(T), "__stcs"); *p = v; }
template <typename T> inline void __stcg(T* p, T v) { emu::check_aligned(p, alignof(T), "__stcg"); *p = v; }

// kernels/common.cuh checks its 128-bit loads and stores through this (a no-op on the GPU).
#define WB_CHECK_ALIGNED(address, bytes, what) emu::check_aligned((address), (bytes), (what))

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __tanhf(float x) { return std::tanh(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
// Round-to-nearest arithmetic that the GPU compiler may not contract into an fma (x86 does not either).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
using std::max;
using std::min;

// bfloat16 with round-to-nearest-even, as __float2bfloat16_rn does.
struct __nv_bfloat16 {
    uint16_t bits;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : bits(from(f)) {}
    operator float() const {
        uint32_t u = uint32_t(bits) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    static uint16_t from(float f) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // keep NaN a NaN
        u += 0x7fffu + ((u >> 16) & 1u);
        return uint16_t(u >> 16);
    }
};
// For the emulator's own loops (mma.h): the conversion without a call into instrumented code.
EMU_QUIET inline float emu_as_float(__nv_bfloat16 h) {
    const uint32_t u = uint32_t(h.bits) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
EMU_QUIET inline float emu_as_float(float f) { return f; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }

namespace cooperative_groups {

struct thread_block {
    void sync() const { emu::syncthreads(); }
    unsigned thread_rank() const { return emu::linear_tid; }
    unsigned size() const { return blockDim.x * blockDim.y * blockDim.z; }
    unsigned num_threads() const { return size(); }
    uint3 thread_index() const { return threadIdx; }
    uint3 group_index() const { return blockIdx; }
    dim3 group_dim() const { return blockDim; }
};
inline thread_block this_thread_block() { return {}; }

template <unsigned Size>
struct thread_block_tile {
    static_assert(Size == 32, "the emulator supports warp-sized tiles only");
    unsigned thread_rank() const { return emu::lane_id(); }
    unsigned size() const { return 32; }
    unsigned num_threads() const { return 32; }
    unsigned meta_group_rank() const { return emu::linear_tid / 32; }
    unsigned meta_group_size() const { return (blockDim.x * blockDim.y * blockDim.z + 31) / 32; }
    void sync() const { emu::syncwarp(); }
    template <typename T> T shfl(T v, int src) const { return emu::shuffle(0xffffffffu, v, src, "tile.shfl"); }
    template <typename T> T shfl_xor(T v, unsigned m) const {
        return emu::shuffle(0xffffffffu, v, emu::lane_id() ^ m, "tile.shfl_xor");
    }
    template <typename T> T shfl_down(T v, unsigned d) const { return __shfl_down_sync(0xffffffffu, v, d); }
    template <typename T> T shfl_up(T v, unsigned d) const { return __shfl_up_sync(0xffffffffu, v, d); }
};

template <unsigned Size, typename Parent>
inline thread_block_tile<Size> tiled_partition(const Parent&) { return {}; }

template <typename T> struct plus { T operator()(T a, T b) const { return a + b; } };
template <typename T> struct greater { T operator()(T a, T b) const { return a > b ? a : b; } };
template <typename T> struct less { T operator()(T a, T b) const { return a < b ? a : b; } };

template <typename Tile, typename T, typename Op>
inline T reduce(const Tile& tile, T value, Op op) {
    for (unsigned offset = 16; offset > 0; offset >>= 1) value = op(value, tile.shfl_xor(value, offset));
    return value;
}

}  // namespace cooperative_groups

namespace emu {

EMU_UNPROFILED inline void fiber_entry() {
    Launch& L = *current;
    const unsigned t = linear_tid;
    try {
        (*L.body)();
    } catch (const std::exception& e) {
        L.fail("block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + ") thread " +
               std::to_string(t) + ": " + e.what());
    }
    Fiber& me = L.fibers[t];
    me.state = Fiber::Done;
    ++L.returned;
    const int warp_id = 1 + int(t / 32);
    for (int id : {0, warp_id}) {
        --L.members[id];
        if (L.arrived[id] > 0) {
            L.fail(id == 0 ? "thread " + std::to_string(t) + " returned while others waited at __syncthreads "
                             "(undefined on a GPU)"
                           : "lane " + std::to_string(t % 32) + " of warp " + std::to_string(t / 32) +
                                 " returned while its warp waited in a shuffle or __syncwarp (undefined on a GPU)");
            // release the waiters so the launch can finish and report
            L.arrived[id] = 0;
            for (auto& fiber : L.fibers)
                if (fiber.state == Fiber::Waiting && fiber.waiting_on == id) fiber.state = Fiber::Runnable;
        }
    }
    // returning ends the fiber: uc_link resumes the scheduler
}

// Every block of a launch in turn, each thread a fiber.
inline void run_blocks(Launch& L) {
    const dim3 grid = L.grid, block = L.block;
    const unsigned warps = (L.threads + 31) / 32;
    const unsigned blocks = grid.x * grid.y * grid.z;
    for (unsigned b = 0; b < blocks && L.error.empty(); ++b) {
        blockIdx = uint3{b % grid.x, (b / grid.x) % grid.y, b / (grid.x * grid.y)};
        L.arrived.assign(1 + warps, 0);
        L.members.assign(1 + warps, 0);
        L.members[0] = int(L.threads);
        for (unsigned w = 0; w < warps; ++w) L.members[1 + w] = int(std::min(32u, L.threads - w * 32));
        L.returned = 0;
        L.pipelines.assign(L.threads, Pipeline{});
        if (b > 0) L.poison_shared();
        for (unsigned t = 0; t < L.threads; ++t) {
            Fiber& fiber = L.fibers[t];
            fiber.state = Fiber::Runnable;
            fiber.waiting_on = -1;
            getcontext(&fiber.context);
            fiber.context.uc_stack.ss_sp = fiber.stack->base();
            fiber.context.uc_stack.ss_size = FiberStack::kBytes;
            fiber.context.uc_link = &L.scheduler;
            makecontext(&fiber.context, fiber_entry, 0);
        }
        // Warp by warp: a warp runs as far as it can (to a __syncthreads, or its end) before the next
        // one starts. That is a legal GPU schedule and one that exposes a missing __syncthreads: the
        // first warp reads shared memory the later warps have not written yet, and sees poison or
        // stale values. Odd blocks run the warps, and the lanes within each, in the opposite order:
        // also legal, and it catches the mirror-image race, where threads read what a lower thread
        // or warp writes (thread 0 sharing a row's mean, say) with no barrier between. Blocks 2 and
        // 3 of every 4 land their asynchronous copies when issued, the others at the wait (see
        // Pipeline): each order meets each timing once a grid has four blocks.
        const bool reversed = b % 2 == 1;
        L.copies_land_at_issue = b / 2 % 2 == 1;
        bool progressed = true;
        while (progressed) {
            progressed = false;
            for (unsigned i = 0; i < warps; ++i) {
                const unsigned w = reversed ? warps - 1 - i : i;
                const unsigned first = 32 * w, count = std::min(L.threads, 32 * (w + 1)) - first;
                for (bool warp_progressed = true; warp_progressed;) {
                    warp_progressed = false;
                    for (unsigned j = 0; j < count; ++j) {
                        const unsigned t = first + (reversed ? count - 1 - j : j);
                        Fiber& fiber = L.fibers[t];
                        if (fiber.state != Fiber::Runnable) continue;
                        progressed = warp_progressed = true;
                        linear_tid = t;
                        threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        on_fiber = true;
                        swapcontext(&L.scheduler, &fiber.context);
                        on_fiber = false;
                    }
                }
            }
        }
        for (unsigned t = 0; t < L.threads; ++t) {
            if (L.fibers[t].state == Fiber::Waiting) {
                L.fail("hang in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
                       "): thread " + std::to_string(t) + " waits at " + barrier_name(L.fibers[t].waiting_on) +
                       " that other threads never reach");
                break;
            }
        }
        const unsigned char* guard = dynamic_shared() + L.shared_bytes;
        for (size_t i = 0; i < kSharedGuard; ++i) {
            if (guard[i] != 0xFF) {
                L.fail("block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + ") wrote " +
                       std::to_string(i) + " bytes past the " + std::to_string(L.shared_bytes) +
                       " bytes of dynamic shared memory the launch gave it: the launch's shared_mem is smaller "
                       "than what the kernel uses");
                break;
            }
        }
#ifdef EMU_PROFILE
        profile::block_done();
#endif
    }
}

// An access far outside every buffer faults (a GPU reports "an illegal memory access was
// encountered"; nearer ones land in the NaN guard zones around the harness's tensors). Without
// this the fault would end the Python process mid-test, with no word of which kernel did it: the
// handler jumps back to the launch, which reports the fault as the launch's error.
struct FaultGuard {
    static inline sigjmp_buf resume;
    static inline pthread_t launcher;
    static inline volatile sig_atomic_t armed = 0;
    static inline void* address = nullptr;
    static inline int signal_number = 0;
    static inline int signal_code = 0;
    static inline struct sigaction previous_segv, previous_bus;
    alignas(16) static inline unsigned char handler_stack[64 * 1024];  // a fault may be a fiber's stack overflow
    stack_t previous_stack{};

    static void handle(int signal_number_, siginfo_t* info, void*) {
        if (!armed || !pthread_equal(pthread_self(), launcher)) {
            // Not the emulated kernel's fault: put the previous handler back and let the access fault again.
            sigaction(signal_number_, signal_number_ == SIGBUS ? &previous_bus : &previous_segv, nullptr);
            return;
        }
        armed = 0;
        signal_number = signal_number_;
        signal_code = info->si_code;
        address = info->si_addr;
        siglongjmp(resume, 1);
    }
    FaultGuard() {
        stack_t stack{};
        stack.ss_sp = handler_stack;
        stack.ss_size = sizeof handler_stack;
        sigaltstack(&stack, &previous_stack);
        struct sigaction action {};
        action.sa_sigaction = handle;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(SIGSEGV, &action, &previous_segv);
        sigaction(SIGBUS, &action, &previous_bus);
        launcher = pthread_self();
    }
    ~FaultGuard() {
        armed = 0;
        sigaction(SIGSEGV, &previous_segv, nullptr);
        sigaction(SIGBUS, &previous_bus, nullptr);
        sigaltstack(&previous_stack, nullptr);
    }
};

// Run `body` for every thread of every block; returns an error message, empty when all went well.
inline std::string launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
    // On the heap, and the pointer never changes: after the fault's jump back, what it holds is valid.
    const std::unique_ptr<Launch> owner(new Launch);
    Launch& L = *owner;
    L.grid = grid;
    L.block = block;
    L.threads = block.x * block.y * block.z;
    if (L.threads == 0 || L.threads > 1024) return "block size must be 1..1024 threads";
    if (shared_bytes > 227 * 1024) return "more dynamic shared memory than an H100 block can have (227 KB)";
    L.dynamic_shared.assign(shared_bytes + kSharedGuard + kDynamicSharedAlign, 0xFF);  // room to align the start
    L.shared_bytes = shared_bytes;
    L.dynamic_begin = reinterpret_cast<uintptr_t>(L.dynamic_shared.data());
    L.dynamic_end = L.dynamic_begin + L.dynamic_shared.size();
    L.fibers = std::vector<Fiber>(L.threads);
    for (auto& fiber : L.fibers) fiber.stack = std::make_unique<FiberStack>();
    L.body = &body;
    current = &L;
    blockDim = block;
    gridDim = grid;
    {
        FaultGuard guard;
        if (sigsetjmp(FaultGuard::resume, 1) == 0) {
            FaultGuard::armed = 1;
            run_blocks(L);
        } else {
            char where[64];
            std::snprintf(where, sizeof where, "address %p", FaultGuard::address);
#ifdef SI_KERNEL
            if (FaultGuard::signal_code == SI_KERNEL)  // Linux gives no address for a non-canonical one
                std::snprintf(where, sizeof where, "a non-canonical address (an uninitialised pointer?)");
#endif
            L.fail("block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
                   std::to_string(blockIdx.z) + ") thread " + std::to_string(linear_tid) + ": " +
                   (FaultGuard::signal_number == SIGBUS ? "bus error" : "memory fault") + " at " + where +
                   ", outside every buffer: an out-of-bounds access or a stack overflow (on a GPU, \"an "
                   "illegal memory access was encountered\"; compute-sanitizer --tool memcheck names the line)");
        }
    }
    current = nullptr;
    on_fiber = false;  // a fault jumps out of a fiber
    return L.error;
}

}  // namespace emu
