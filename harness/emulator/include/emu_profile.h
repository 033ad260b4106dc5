// Memory-access profile of an emulated launch: what Nsight Compute's memory tables would count for
// the same access pattern, computed on the CPU. Included by emu_runtime.h when EMU_PROFILE is set.
//
// How accesses are seen: the kernel is compiled with g++'s -fsanitize=thread instrumentation but
// linked without its runtime. The compiler then calls __tsan_read4(address) (and so on) before
// every load and store; the functions below stand in for that runtime and record the access with
// the calling thread and the instruction's address (its return address).
//
// How they become warp-level requests: on a GPU the 32 lanes of a warp issue one load instruction
// together (those whose branch took it). Here lanes run one after another, so each lane's accesses,
// and the basic blocks it entered (-fsanitize-coverage=trace-pc), are kept as a trace, and at the
// end of the block the traces of a warp's lanes are aligned like lines in a diff (Myers' algorithm,
// on the instruction addresses): an access a lane skipped (a masked key, a shorter loop) is a gap
// in its trace, and the accesses aligned with one another form one request. Where two traces differ too much to align cheaply, the k-th execution of an
// instruction in one lane is matched with the k-th in the other, and the launch says so.
// Per request, as ncu counts them:
//   global memory: the distinct 32-byte sectors the lanes touch (ideal: their distinct bytes / 32);
//   shared memory: wavefronts. 32 banks of 4 bytes; lanes are served in phases (all 32 lanes for
//     accesses of 4 bytes or less, 16 for 8-byte, 8 for 16-byte), and a phase takes as many
//     wavefronts as the most distinct 4-byte words any one bank holds among its lanes' accesses
//     (lanes reading the same word share it). Ideal: distinct words / 32. The excess is the bank
//     conflicts.
// WMMA tile loads and stores have no lane layout the programming guide specifies; mma.h counts them
// as the tensor-core instructions beneath move them (operands as ldmatrix, accumulators in the
// PTX ISA's mma.m16n8k16 layout). Asynchronous copies count as a global load and a shared store of
// their size, at the issuing instruction.
//
// What it is not: the instruction stream is g++'s for the CPU, so where nvcc would keep a value in
// a register and g++ reloads it (or the other way round) the counts differ; caches, timing and
// the order of requests are not modelled.
#pragma once
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace emu {
namespace profile {

enum Space : uint8_t { kGlobal = 0, kShared = 1 };

struct Access {
    uint8_t lane;
    uintptr_t address;
};

// One lane's access, as its trace keeps it. `kind` is what must agree for two lanes' accesses to be
// one instruction: the instruction's address with the space, direction and width folded in.
struct Event {
    uint64_t kind;
    uintptr_t pc;
    uintptr_t address;
    uint8_t space, write, size;
};

// A warp-level request being assembled: one instruction's accesses, one per lane that executed it.
struct Slot {
    Event first;
    std::vector<Access> accesses;
};

// One row of the result: the totals of one instruction (site) over the launch.
struct Record {
    uint64_t pc_offset;  // in the shared library, for addr2line
    uint32_t space, write, size;
    uint64_t requests, lanes, transactions, ideal;
};

constexpr int kMaxBuffers = 64;

struct State {
    bool recording = false;
    bool inside = false;  // re-entrancy guard: the containers' own code is instrumented too
    // The launch's buffers, in plain arrays: most instrumented accesses are the emulator's own (its
    // scheduler's loops over the fibers), and rejecting them must not call into (instrumented) std code.
    uintptr_t global_begin[kMaxBuffers] = {}, global_end[kMaxBuffers] = {};
    int globals = 0;
    std::vector<std::vector<Event>> traces;  // this block's, per thread
    uint64_t unaligned = 0;  // lane traces matched by occurrence, not aligned (too different)
    std::map<std::tuple<uintptr_t, uint32_t, uint32_t, uint32_t>, Record> sites;
    std::vector<Record> result;
};
inline State state;

EMU_QUIET inline uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Sorts v[0, n) in place and returns how many distinct values it holds (n is at most a few hundred).
EMU_QUIET inline int distinct(uintptr_t* v, int n) {
    for (int i = 1; i < n; ++i)
        for (int j = i; j > 0 && v[j - 1] > v[j]; --j) {
            const uintptr_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    int count = 0;
    for (int i = 0; i < n; ++i) count += i == 0 || v[i] != v[i - 1];
    return count;
}

// Sectors (global) or wavefronts (shared) of one request, and the ideal count for its bytes. Raw
// arrays: std containers here would be instrumented, and this runs once per request.
EMU_UNPROFILED inline std::pair<uint64_t, uint64_t> cost(uint32_t space, uint32_t size,
                                                         const std::vector<Access>& accesses) {
    constexpr int kMost = 32 * 6;  // 32 lanes, at most 6 words (or 2 sectors) each for 16 bytes unaligned
    uintptr_t words[kMost], units[kMost];
    int word_count = 0, unit_count = 0;
    const Access* lanes = accesses.data();
    const int n = int(accesses.size()) < 32 ? int(accesses.size()) : 32;
    for (int i = 0; i < n; ++i) {
        for (uintptr_t w = lanes[i].address / 4; w <= (lanes[i].address + size - 1) / 4 && word_count < kMost; ++w)
            words[word_count++] = w;
        for (uintptr_t s = lanes[i].address / 32; s <= (lanes[i].address + size - 1) / 32 && unit_count < kMost; ++s)
            units[unit_count++] = s;
    }
    const uint64_t distinct_words = uint64_t(distinct(words, word_count));
    if (space == kGlobal) {
        const uint64_t ideal = ceil_div(distinct_words * 4, 32);
        return {uint64_t(distinct(units, unit_count)), ideal > 0 ? ideal : 1};
    }
    const unsigned lanes_per_phase = size <= 4 ? 32 : 128 / size;
    uint64_t wavefronts = 0;
    for (unsigned phase = 0; phase * lanes_per_phase < 32; ++phase) {
        uintptr_t phase_words[kMost];
        int count = 0;
        for (int i = 0; i < n; ++i) {
            if (lanes[i].lane / lanes_per_phase != phase) continue;
            for (uintptr_t w = lanes[i].address / 4; w <= (lanes[i].address + size - 1) / 4 && count < kMost; ++w)
                phase_words[count++] = w;
        }
        distinct(phase_words, count);  // sorts them: lanes on one word are then neighbours
        int per_bank[32] = {};
        int most = 0;
        for (int i = 0; i < count; ++i) {
            if (i > 0 && phase_words[i] == phase_words[i - 1]) continue;  // lanes sharing a word share its wavefront
            const int in_bank = ++per_bank[phase_words[i] % 32];
            most = in_bank > most ? in_bank : most;
        }
        wavefronts += uint64_t(most);
    }
    const uint64_t ideal = ceil_div(distinct_words, 32);
    return {wavefronts, ideal > 0 ? ideal : 1};
}

EMU_UNPROFILED inline void add(uintptr_t pc, uint32_t space, uint32_t write, uint32_t size,
                               const std::vector<Access>& accesses) {
    const auto [transactions, ideal] = cost(space, size, accesses);
    Record& r = state.sites[{pc, space, write, size}];
    if (r.requests == 0) {
        Dl_info info{};
        r.pc_offset = dladdr(reinterpret_cast<void*>(pc), &info) && info.dli_fbase
                          ? pc - reinterpret_cast<uintptr_t>(info.dli_fbase) : pc;
        r.space = space;
        r.write = write;
        r.size = size;
    }
    r.requests += 1;
    r.lanes += accesses.size();
    r.transactions += transactions;
    r.ideal += ideal;
}

// The running thread's trace, made on its first event.
EMU_UNPROFILED inline std::vector<Event>& current_trace() {
    if (state.traces.size() <= linear_tid) state.traces.resize(linear_tid + 1);
    return state.traces[linear_tid];
}

// One lane's access; sizes above 16 bytes (aggregate copies) count as 16-byte pieces.
EMU_UNPROFILED inline void record(const void* address, size_t size, bool write, uintptr_t pc) {
    if (!state.recording || !on_fiber || state.inside || size == 0 || untraced_depth[linear_tid]) return;
    state.inside = true;
    const uintptr_t a = reinterpret_cast<uintptr_t>(address);
    int space = -1;
    for (int i = 0; i < state.globals && space < 0; ++i)
        if (a >= state.global_begin[i] && a < state.global_end[i]) space = kGlobal;
    if (space < 0 && shared_address(address)) space = kShared;
    if (space >= 0) {
        std::vector<Event>& trace = current_trace();
        for (size_t offset = 0; offset < size; offset += 16) {
            const uint8_t piece = uint8_t(std::min<size_t>(16, size - offset));
            const uint64_t kind = pc * 128 + uint64_t(space) * 32 + uint64_t(write) * 16 + (piece - 1);
            trace.push_back({kind, pc, a + offset, uint8_t(space), uint8_t(write), piece});
        }
    }
    state.inside = false;
}

// A basic block entered (g++'s -fsanitize-coverage=trace-pc calls this at the top of each one): part
// of the trace, so that lanes align on the loop iterations they all ran, not only on the accesses
// they made. Lane l that skips a masked load in the first iterations of a loop then lines up with
// lane 0 at the iterations where it does load, not at lane 0's first load.
constexpr uint8_t kControl = 255;  // a basic block entered
constexpr uint8_t kBarrier = 254;  // a barrier reached
EMU_UNPROFILED inline void record_block_entry(uintptr_t pc) {
    if (!state.recording || !on_fiber || state.inside || untraced_depth[linear_tid]) return;
    state.inside = true;
    current_trace().push_back({pc * 128 + 64, pc, 0, kControl, 0, 0});
    state.inside = false;
}

// A warp-collective access given whole (mma.h's WMMA tiles): each request's lanes and addresses at
// once, recorded by lane 0 only.
EMU_UNPROFILED inline bool recording_warp() {
    return state.recording && on_fiber && !state.inside && linear_tid % 32 == 0;
}
EMU_UNPROFILED inline void record_request(const uintptr_t* addresses, unsigned lanes, unsigned size, bool write,
                                          uintptr_t pc) {
    if (!recording_warp() || lanes == 0) return;
    state.inside = true;
    std::vector<Access> accesses;
    for (unsigned lane = 0; lane < lanes; ++lane) accesses.push_back({uint8_t(lane), addresses[lane]});
    add(pc, shared_address(reinterpret_cast<const void*>(addresses[0])) ? kShared : kGlobal, write, size, accesses);
    state.inside = false;
}

// An operand tile as ldmatrix reads it: requests of 32 lanes x 16 bytes, each phase of eight lanes
// the same 16-byte column of eight consecutive rows.
EMU_UNPROFILED inline void record_row_pieces(const void* base, unsigned rows, unsigned row_bytes,
                                             unsigned stride_bytes, bool write, uintptr_t pc) {
    if (!recording_warp()) return;
    const uintptr_t b = reinterpret_cast<uintptr_t>(base);
    uintptr_t pieces[32];
    unsigned count = 0;
    for (unsigned group = 0; group < rows; group += 8)
        for (unsigned column = 0; column < row_bytes; column += 16)
            for (unsigned row = group; row < std::min(rows, group + 8); ++row) {
                pieces[count++] = b + uintptr_t(row) * stride_bytes + column;
                if (count == 32) {
                    record_request(pieces, count, 16, write, pc);
                    count = 0;
                }
            }
    record_request(pieces, count, 16, write, pc);
}

constexpr int kMaxEdits = 2048;            // Myers' rounds before giving up on a lane
constexpr size_t kMaxTable = size_t(1) << 22;  // cells of the exact table before Myers takes over

// Myers' O((N + M) D) difference of the instruction sequences a (the warp's requests so far) and b
// (one more lane's trace), into `script`: the edit script in order, as pairs (index in a or -1,
// index in b or -1). The common prefix and suffix are matched first (a lane that returned early is
// all prefix). False when the rest needs more than max_edits insertions and deletions. Raw pointers
// only in the loops: std code here is instrumented, and every call would land in the hooks. Short
// sequences get the exact longest-common-subsequence table instead.
EMU_UNPROFILED inline bool align(const uint64_t* a, int n, const uint64_t* b, int m, int max_edits,
                                 std::vector<std::pair<int, int>>& script) {
    script.clear();
    int prefix = 0, suffix = 0;
    while (prefix < n && prefix < m && a[prefix] == b[prefix]) ++prefix;
    while (suffix < n - prefix && suffix < m - prefix && a[n - 1 - suffix] == b[m - 1 - suffix]) ++suffix;
    const uint64_t* A = a + prefix;
    const uint64_t* B = b + prefix;
    const int N = n - prefix - suffix, M = m - prefix - suffix;
    std::vector<std::pair<int, int>> middle;  // backwards
    if (N > 0 && M > 0 && size_t(N + 1) * size_t(M + 1) <= kMaxTable) {
        // Small enough for the plain longest-common-subsequence table: exact whatever the number of
        // edits (a lane that stopped after a few accesses while the others went on for thousands).
        const std::unique_ptr<int[]> table_storage(new int[size_t(N + 1) * (M + 1)]());  // zeroed, not by std code
        int* table = table_storage.get();  // table[i * (M + 1) + j]: LCS of A[i..] and B[j..]
        const size_t row = size_t(M) + 1;
        for (int i = N - 1; i >= 0; --i)
            for (int j = M - 1; j >= 0; --j)
                if (A[i] == B[j]) {
                    table[i * row + j] = 1 + table[(i + 1) * row + j + 1];
                } else {  // (not std::max: a call into instrumented code per cell)
                    const int down = table[(i + 1) * row + j], right = table[i * row + j + 1];
                    table[i * row + j] = down > right ? down : right;
                }
        int i = 0, j = 0;
        std::vector<std::pair<int, int>> forward;
        while (i < N && j < M) {
            if (A[i] == B[j] && table[i * row + j] == 1 + table[(i + 1) * row + j + 1]) forward.push_back({prefix + i++, prefix + j++});
            else if (table[(i + 1) * row + j] >= table[i * row + j + 1]) forward.push_back({prefix + i++, -1});
            else forward.push_back({-1, prefix + j++});
        }
        while (i < N) forward.push_back({prefix + i++, -1});
        while (j < M) forward.push_back({-1, prefix + j++});
        middle.assign(forward.rbegin(), forward.rend());
    } else if (N > 0 && M > 0) {
        const int limit = std::min(N + M, max_edits), offset = limit + 1;
        const std::unique_ptr<int[]> v_storage(new int[2 * limit + 3]());
        const std::unique_ptr<int[]> bands(new int[size_t(limit + 1) * (limit + 3)]);  // v[-d-1 .. d+1] before round d
        int* v = v_storage.get();
        int rounds = -1;
        for (int d = 0; d <= limit && rounds < 0; ++d) {
            const size_t band = size_t(d) * d + 2 * size_t(d);
            __builtin_memcpy(bands.get() + band, v + offset - d - 1, sizeof(int) * (2 * d + 3));
            for (int k = -d; k <= d; k += 2) {
                int x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) ? v[offset + k + 1]
                                                                                       : v[offset + k - 1] + 1;
                int y = x - k;
                while (x < N && y < M && A[x] == B[y]) ++x, ++y;
                v[offset + k] = x;
                if (x >= N && y >= M) {
                    rounds = d;
                    break;
                }
            }
        }
        if (rounds < 0) return false;
        int x = N, y = M;
        for (int d = rounds; d > 0; --d) {
            const int* before = bands.get() + size_t(d) * d + 2 * size_t(d) + d + 1;  // before[k], k in [-d-1, d+1]
            const int k = x - y;
            const int previous_k = (k == -d || (k != d && before[k - 1] < before[k + 1])) ? k + 1 : k - 1;
            const int previous_x = before[previous_k], previous_y = previous_x - previous_k;
            while (x > previous_x && y > previous_y) --x, --y, middle.push_back({prefix + x, prefix + y});
            if (x == previous_x) --y, middle.push_back({-1, prefix + y});  // in b only
            else --x, middle.push_back({prefix + x, -1});                 // in a only
        }
        while (x > 0 && y > 0) --x, --y, middle.push_back({prefix + x, prefix + y});
    } else {
        for (int j = M - 1; j >= 0; --j) middle.push_back({-1, prefix + j});
        for (int i = N - 1; i >= 0; --i) middle.push_back({prefix + i, -1});
    }
    for (int i = 0; i < prefix; ++i) script.push_back({i, i});
    script.insert(script.end(), middle.rbegin(), middle.rend());
    for (int i = 0; i < suffix; ++i) script.push_back({n - suffix + i, m - suffix + i});
    return true;
}

// The requests of one stretch of a warp's execution being assembled: `pool` holds the slots (never
// moved once made), `order` their sequence, as far as the lanes merged so far tell.
struct Stretch {
    std::vector<Slot> pool;
    std::unique_ptr<uint64_t[]> kinds;  // kinds[i]: the kind of pool[order[i]]
    std::unique_ptr<int[]> order;
    int length = 0;
};

EMU_UNPROFILED inline int new_slot(Stretch& s, const Event& e, uint8_t lane) {
    s.pool.push_back({e, {}});
    if (e.space != kControl) s.pool.back().accesses.push_back({lane, e.address});
    return int(s.pool.size()) - 1;
}

// One lane's events trace[0, length) of this stretch merged into it. Raw arrays for the sequences:
// std code here is instrumented, and each call would pass through the hooks.
EMU_UNPROFILED inline void merge_lane(Stretch& s, const Event* trace, int length, uint8_t lane) {
    std::unique_ptr<uint64_t[]> b(new uint64_t[length]);
    for (int j = 0; j < length; ++j) b[j] = trace[j].kind;
    std::unique_ptr<int[]> order(new int[s.length + length]);
    std::unique_ptr<uint64_t[]> kinds(new uint64_t[s.length + length]);
    int merged = 0;
    std::vector<std::pair<int, int>> script;
    if (s.length == 0) {
        for (int j = 0; j < length; ++j) order[merged] = new_slot(s, trace[j], lane), kinds[merged++] = b[j];
    } else if (align(s.kinds.get(), s.length, b.get(), length, kMaxEdits, script)) {
        for (const auto& [i, j] : script) {
            if (i >= 0) {
                order[merged] = s.order[i];
                kinds[merged++] = s.kinds[i];
                if (j >= 0 && trace[j].space != kControl) s.pool[s.order[i]].accesses.push_back({lane, trace[j].address});
            } else {
                order[merged] = new_slot(s, trace[j], lane);
                kinds[merged++] = b[j];
            }
        }
    } else {
        // Too different to align: the k-th execution of an instruction joins the k-th request of it.
        ++state.unaligned;
        for (int i = 0; i < s.length; ++i) order[merged] = s.order[i], kinds[merged++] = s.kinds[i];
        std::map<uint64_t, std::vector<int>> where;
        for (int i = 0; i < s.length; ++i) where[s.kinds[i]].push_back(s.order[i]);
        std::map<uint64_t, size_t> seen;
        for (int j = 0; j < length; ++j) {
            const size_t k = seen[b[j]]++;
            const auto found = where.find(b[j]);
            if (found != where.end() && k < found->second.size()) {
                if (trace[j].space != kControl) s.pool[found->second[k]].accesses.push_back({lane, trace[j].address});
            } else {
                order[merged] = new_slot(s, trace[j], lane);
                kinds[merged++] = b[j];
            }
        }
    }
    s.order = std::move(order);
    s.kinds = std::move(kinds);
    s.length = merged;
}

// The block has finished: align each warp's lane traces into requests and count them. The warp's
// barriers (shuffles, __syncwarp, __syncthreads) are points every lane reaches together, so the
// traces are cut there and each stretch between two barriers is aligned on its own: far fewer
// differences to reconcile at a time than over the whole kernel.
EMU_UNPROFILED inline void block_done() {
    state.inside = true;
    for (size_t first = 0; first < state.traces.size(); first += 32) {
        const size_t last = std::min(first + 32, state.traces.size());
        std::vector<std::vector<size_t>> cuts(last - first);  // per lane: where each stretch begins
        size_t stretches = 0;
        for (size_t t = first; t < last; ++t) {
            const std::vector<Event>& trace = state.traces[t];
            std::vector<size_t>& lane_cuts = cuts[t - first];
            lane_cuts.push_back(0);
            const Event* events = trace.data();
            const size_t count = trace.size();
            for (size_t i = 0; i < count; ++i)
                if (events[i].space == kBarrier) lane_cuts.push_back(i + 1);
            lane_cuts.push_back(count + 1);  // the end of the last stretch, + 1 like the others
            stretches = std::max(stretches, lane_cuts.size() - 1);
        }
        for (size_t stretch = 0; stretch < stretches; ++stretch) {
            Stretch s;
            for (size_t t = first; t < last; ++t) {
                const std::vector<size_t>& lane_cuts = cuts[t - first];
                if (stretch + 1 >= lane_cuts.size()) continue;  // the lane had returned
                const size_t begin = lane_cuts[stretch], end = lane_cuts[stretch + 1] - 1;
                if (end > begin) merge_lane(s, state.traces[t].data() + begin, int(end - begin), uint8_t(t % 32));
            }
            for (const Slot& slot : s.pool)
                if (slot.first.space != kControl && slot.first.space != kBarrier)
                    add(slot.first.pc, slot.first.space, slot.first.write, slot.first.size, slot.accesses);
        }
    }
    state.traces.clear();
    state.inside = false;
}

// A barrier reached (wait_at): where the lane's trace is cut.
EMU_UNPROFILED inline void barrier_reached() {
    if (!state.recording || !on_fiber || state.inside) return;
    state.inside = true;
    current_trace().push_back({1, 0, 0, kBarrier, 0, 0});
    state.inside = false;
}

}  // namespace profile
}  // namespace emu

// The harness's side: the launch's buffers before it, the records after it.
extern "C" EMU_UNPROFILED void emu_profile_begin(const uintptr_t* ranges, int count) {
    auto& s = emu::profile::state;
    s.inside = true;
    s.globals = count < emu::profile::kMaxBuffers ? count : emu::profile::kMaxBuffers;
    for (int i = 0; i < s.globals; ++i) {
        s.global_begin[i] = ranges[2 * i];
        s.global_end[i] = ranges[2 * i] + ranges[2 * i + 1];
    }
    s.sites.clear();
    s.traces.clear();
    s.unaligned = 0;
    s.recording = true;
    s.inside = false;
}

// How many lane traces of the last launch were matched by occurrence rather than aligned.
extern "C" EMU_UNPROFILED unsigned long long emu_profile_unaligned() { return emu::profile::state.unaligned; }

extern "C" EMU_UNPROFILED const emu::profile::Record* emu_profile_end(int* count) {
    auto& s = emu::profile::state;
    s.inside = true;
    s.recording = false;
    s.result.clear();
    for (const auto& [key, record] : s.sites) s.result.push_back(record);
    *count = int(s.result.size());
    s.inside = false;
    return s.result.data();
}

// The stand-in for ThreadSanitizer's runtime: every instrumented load and store lands here.
#define EMU_TSAN_ACCESS(name, size, write)                                                              \
    extern "C" EMU_UNPROFILED void name(void* address) {                                               \
        emu::profile::record(address, size, write, reinterpret_cast<uintptr_t>(__builtin_return_address(0))); \
    }
EMU_TSAN_ACCESS(__tsan_read1, 1, false)
EMU_TSAN_ACCESS(__tsan_read2, 2, false)
EMU_TSAN_ACCESS(__tsan_read4, 4, false)
EMU_TSAN_ACCESS(__tsan_read8, 8, false)
EMU_TSAN_ACCESS(__tsan_read16, 16, false)
EMU_TSAN_ACCESS(__tsan_write1, 1, true)
EMU_TSAN_ACCESS(__tsan_write2, 2, true)
EMU_TSAN_ACCESS(__tsan_write4, 4, true)
EMU_TSAN_ACCESS(__tsan_write8, 8, true)
EMU_TSAN_ACCESS(__tsan_write16, 16, true)
EMU_TSAN_ACCESS(__tsan_unaligned_read2, 2, false)
EMU_TSAN_ACCESS(__tsan_unaligned_read4, 4, false)
EMU_TSAN_ACCESS(__tsan_unaligned_read8, 8, false)
EMU_TSAN_ACCESS(__tsan_unaligned_read16, 16, false)
EMU_TSAN_ACCESS(__tsan_unaligned_write2, 2, true)
EMU_TSAN_ACCESS(__tsan_unaligned_write4, 4, true)
EMU_TSAN_ACCESS(__tsan_unaligned_write8, 8, true)
EMU_TSAN_ACCESS(__tsan_unaligned_write16, 16, true)
EMU_TSAN_ACCESS(__tsan_volatile_read1, 1, false)
EMU_TSAN_ACCESS(__tsan_volatile_read2, 2, false)
EMU_TSAN_ACCESS(__tsan_volatile_read4, 4, false)
EMU_TSAN_ACCESS(__tsan_volatile_read8, 8, false)
EMU_TSAN_ACCESS(__tsan_volatile_read16, 16, false)
EMU_TSAN_ACCESS(__tsan_volatile_write1, 1, true)
EMU_TSAN_ACCESS(__tsan_volatile_write2, 2, true)
EMU_TSAN_ACCESS(__tsan_volatile_write4, 4, true)
EMU_TSAN_ACCESS(__tsan_volatile_write8, 8, true)
EMU_TSAN_ACCESS(__tsan_volatile_write16, 16, true)
#undef EMU_TSAN_ACCESS
extern "C" EMU_UNPROFILED void __tsan_read_range(void* address, unsigned long size) {
    emu::profile::record(address, size, false, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" EMU_UNPROFILED void __tsan_write_range(void* address, unsigned long size) {
    emu::profile::record(address, size, true, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" EMU_UNPROFILED void __sanitizer_cov_trace_pc() {
    emu::profile::record_block_entry(reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" EMU_UNPROFILED void __tsan_init() {}
extern "C" EMU_UNPROFILED void __tsan_func_entry(void*) {}
extern "C" EMU_UNPROFILED void __tsan_func_exit() {}
extern "C" EMU_UNPROFILED void __tsan_vptr_read(void**) {}
extern "C" EMU_UNPROFILED void __tsan_vptr_update(void**, void*) {}
