/*
 * encoder backward, variant 3: positions sorted by token, each token row summed in order
 *
 * Changed: no atomics. Variant 2 added every dout row into its token's row of dwte with float
 * atomicAdd, so the order of the additions, and with it the rounding of dwte, changed from run to
 * run. Here the positions are first sorted by token with a counting sort, all in integers: each
 * block of 1024 positions ranks every position among the earlier ones in its block with the same
 * token and counts its tokens, a pass over the tokens turns the blocks' counts into offsets, one
 * block scans the token totals into bucket starts, and every position lands at start + offset +
 * rank. The sort is stable, so a bucket lists its positions in increasing order. Then one block
 * per token sums the dout rows of its bucket, in that order, and writes the token's dwte row
 * (zeros for tokens that never occur, so no zeroing pass over dwte). dwpe is summed over b in order,
 * as in variant 2, by a kernel of its own.
 * Teaches: how to make a scattered sum deterministic: give every output one owner, and hand the
 * owner its inputs in a fixed order. Integer counts and offsets are exact whatever order threads
 * run in, so only the float sums need an owner. The price: four small kernels before the sum, a
 * zeroed int table of (B T / 1024) x V counts, and a critical path set by the most frequent token,
 * whose block adds its rows one after another.
 * Run: python bench.py encoder --pass backward --variant 3
 */
#include "common.cuh"

constexpr int CHUNK = 1024;  // positions ranked together by one block (its threads)

// rank[p]: how many earlier positions of p's chunk hold p's token; chunk_counts[chunk][v]: how
// many positions of the chunk hold v (zero on entry: only tokens that occur are written, by their
// last position in the chunk). Grid ceil(N / CHUNK), CHUNK threads.
extern "C" __global__ void __launch_bounds__(CHUNK) encoder_backward_chunk_ranks(
    int* rank, int* chunk_counts, const int* tokens, int N, int V) {
    __shared__ int chunk_tokens[CHUNK];
    const int first = blockIdx.x * CHUNK;
    const int size = min(CHUNK, N - first);
    const int i = threadIdx.x;
    if (i < size) chunk_tokens[i] = tokens[first + i];
    __syncthreads();
    if (i >= size) return;
    const int token = chunk_tokens[i];
    int before = 0, after = 0;
    for (int j = 0; j < size; j++) {  // every thread reads the same word: a broadcast
        const bool same = chunk_tokens[j] == token;
        before += same && j < i;
        after += same && j > i;
    }
    rank[first + i] = before;
    if (after == 0) chunk_counts[(size_t)blockIdx.x * V + token] = before + 1;
}

// For each token v, its chunks' counts replaced by the number of v's positions in earlier chunks,
// and totals[v] = how many positions hold v. One thread per token.
extern "C" __global__ void encoder_backward_chunk_offsets(int* chunk_counts, int* totals, int chunks, int V) {
    const int v = blockIdx.x * blockDim.x + threadIdx.x;
    if (v >= V) return;
    int running = 0;
    for (int chunk = 0; chunk < chunks; chunk++) {
        int& count = chunk_counts[(size_t)chunk * V + v];
        const int here = count;
        count = running;
        running += here;
    }
    totals[v] = running;
}

// starts[v] = totals[0] + ... + totals[v - 1], and starts[V] = N: bucket v is [starts[v],
// starts[v + 1]). One block of 1024 threads, each scanning a contiguous run of tokens.
extern "C" __global__ void __launch_bounds__(1024) encoder_backward_bucket_starts(int* starts, const int* totals,
                                                                                   int V) {
    __shared__ int run_sums[1024];
    const int per_thread = (V + blockDim.x - 1) / blockDim.x;
    const int begin = min(V, (int)threadIdx.x * per_thread);
    const int end = min(V, begin + per_thread);
    int sum = 0;
    for (int v = begin; v < end; v++) sum += totals[v];
    run_sums[threadIdx.x] = sum;
    __syncthreads();
    // Inclusive scan of the runs' sums (Hillis-Steele: log2(1024) steps, read, barrier, write).
    for (int step = 1; step < (int)blockDim.x; step *= 2) {
        const int add = threadIdx.x >= step ? run_sums[threadIdx.x - step] : 0;
        __syncthreads();
        run_sums[threadIdx.x] += add;
        __syncthreads();
    }
    int running = run_sums[threadIdx.x] - sum;  // what the runs before this one hold
    for (int v = begin; v < end; v++) {
        starts[v] = running;
        running += totals[v];
    }
    if (threadIdx.x == blockDim.x - 1) starts[V] = run_sums[threadIdx.x];
}

// order[starts[v] + offset of p's chunk + rank[p]] = p: a stable counting sort of the positions by
// token. One thread per position.
extern "C" __global__ void encoder_backward_scatter(int* order, const int* rank, const int* chunk_offsets,
                                                    const int* starts, const int* tokens, int N, int V) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= N) return;
    const int token = tokens[p];
    order[starts[token] + chunk_offsets[(size_t)(p / CHUNK) * V + token] + rank[p]] = p;
}

// dwte[v] = the dout rows of bucket v, added in increasing position order; zeros for an empty bucket.
// One block per token, its threads across the channels.
extern "C" __global__ void encoder_backward_sum_buckets(floatX* dwte, const int* order, const int* starts,
                                                        const floatX* dout, int C) {
    const int v = blockIdx.x;
    const int begin = starts[v], end = starts[v + 1];
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float sum = 0.0f;
#pragma unroll 4  // four rows' loads in flight at once; the additions stay in order
        for (int k = begin; k < end; k++) sum += to_float(dout[(size_t)order[k] * C + c]);
        dwte[(size_t)v * C + c] = from_float<floatX>(sum);
    }
}

// dwpe[t, c] = dout[0, t, c] + ... + dout[B - 1, t, c], in that order. One thread per (t, c).
extern "C" __global__ void encoder_backward_position_sums(floatX* dwpe, const floatX* dout, int B, int T, int C) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;  // t * C + c
    if (i >= (size_t)T * C) return;
    float sum = 0.0f;
    for (int b = 0; b < B; b++) sum += to_float(dout[(size_t)b * T * C + i]);
    dwpe[i] = from_float<floatX>(sum);
}
