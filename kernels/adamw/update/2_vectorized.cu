/*
 * adamw update, variant 2: 128-bit loads and stores, grid-stride
 *
 * Changed: each thread moves whole 128-bit packs (one pack of gradients: 4 fp32 or 8 bf16, and
 * as many elements of each fp32 array, one or two f128 packs) with streaming hints, and a grid
 * sized to fill the GPU once walks the vector in strides instead of one thread per element.
 * Teaches: vectorised memory access for a streaming kernel: a quarter (fp32) or an eighth (bf16
 * gradients) of the load and store instructions, every access a full 16-byte transaction, and
 * the streaming hints because no byte is read twice. The grid-stride loop makes the launch size
 * independent of P. Needs P % x128::size == 0 (GPT-2's tensors all are multiples of 8).
 * Run: python bench.py adamw --pass update --variant 2
 */
#include "common.cuh"

// Elements of the fp32 arrays per gradient pack: 1 f128 (fp32 build) or 2 (bf16 build).
constexpr int F128_PER_PACK = x128::size / f128::size;

// Same arguments as variant 1. Each thread reads every input of a pack before writing the pack's
// outputs, so in-place updates (params_out == params, m_out == m, v_out == v) stay safe.
extern "C" __global__ void adamw_update_vectorized(
    float* params_out, float* m_out, float* v_out, floatX* params_model,
    const float* params, const floatX* grads, const float* m, const float* v, int P,
    float lr, float beta1, float beta2, float eps, float weight_decay,
    float beta1_correction, float beta2_correction, float grad_scale) {
    const size_t packs = (size_t)P / x128::size;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t pack = (size_t)blockIdx.x * blockDim.x + threadIdx.x; pack < packs; pack += stride) {
        const size_t base = pack * x128::size;
        const x128 g_pack = load128cs(grads + base);
        x128 model_pack;
#pragma unroll
        for (int h = 0; h < F128_PER_PACK; h++) {
            const size_t at = base + h * f128::size;
            const f128 p_in = load128cs(params + at);
            const f128 m_in = load128cs(m + at);
            const f128 v_in = load128cs(v + at);
            f128 p_out, m_new, v_new;
#pragma unroll
            for (int j = 0; j < f128::size; j++) {
                const float g = to_float(g_pack[h * f128::size + j]) * grad_scale;
                m_new[j] = beta1 * m_in[j] + (1.0f - beta1) * g;
                v_new[j] = beta2 * v_in[j] + (1.0f - beta2) * g * g;
                const float m_hat = m_new[j] / beta1_correction;
                const float v_hat = v_new[j] / beta2_correction;
                p_out[j] = p_in[j] - lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * p_in[j]);
                model_pack[h * f128::size + j] = from_float<floatX>(p_out[j]);
            }
            store128cs(m_out + at, m_new);
            store128cs(v_out + at, v_new);
            store128cs(params_out + at, p_out);
        }
        store128cs(params_model + base, model_pack);
    }
}
