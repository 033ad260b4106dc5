/*
 * matmul backward, variant 1: one thread per output, three kernels
 *
 * Changed: the starting point: one kernel per gradient, each thread computing one element of it
 * with a plain loop, as the CPU code does.
 * Teaches: the three gradients are three different reductions of the same data. dinp sums over
 * the OC outputs of one row, dweight over all B * T rows, dbias over the rows of one column: each
 * element has a single owner, so nothing needs atomics and every output is simply overwritten.
 * Making the innermost index run across the threads of a warp turns every weight, inp and dout
 * load into one coalesced access (or a broadcast), which is as far as one thread per output goes;
 * the reuse that tiles bring is the next step (see the forward ladder).
 * Run: python bench.py matmul --pass backward --variant 1
 */
#include "common.cuh"

// M = B * T rows, N = OC outputs, K = C inputs. dout (M, N), inp (M, K), weight (N, K).

// dinp[m, k] = sum_n dout[m, n] * weight[n, k]: consecutive threads take consecutive k, so they read
// consecutive weights and share one dout value.
extern "C" __global__ void matmul_backward_dinp(
    floatX* dinp, const floatX* dout, const floatX* weight, int M, int N, int K) {
    const size_t index = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (size_t)M * K) return;
    const int m = (int)(index / K);
    const int k = (int)(index % K);
    const floatX* g = dout + (size_t)m * N;
    float sum = 0.0f;
    for (int n = 0; n < N; n++) sum += to_float(g[n]) * to_float(weight[(size_t)n * K + k]);
    dinp[index] = from_float<floatX>(sum);
}

// dweight[n, k] = sum_m dout[m, n] * inp[m, k]: again k across the threads, so inp loads coalesce and
// the dout value is shared. Each thread walks all M rows: long sums, few threads.
extern "C" __global__ void matmul_backward_dweight(
    floatX* dweight, const floatX* dout, const floatX* inp, int M, int N, int K) {
    const size_t index = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= (size_t)N * K) return;
    const int n = (int)(index / K);
    const int k = (int)(index % K);
    float sum = 0.0f;
    for (int m = 0; m < M; m++) sum += to_float(dout[(size_t)m * N + n]) * to_float(inp[(size_t)m * K + k]);
    dweight[index] = from_float<floatX>(sum);
}

// dbias[n] = sum_m dout[m, n]: one thread per column, neighbouring threads reading neighbouring
// columns of each row. Only OC threads: at GPT-2 sizes a few blocks, most of the GPU idle.
extern "C" __global__ void matmul_backward_dbias(floatX* dbias, const floatX* dout, int M, int N) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float sum = 0.0f;
    for (int m = 0; m < M; m++) sum += to_float(dout[(size_t)m * N + n]);
    dbias[n] = from_float<floatX>(sum);
}
