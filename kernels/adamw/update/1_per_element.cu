/*
 * adamw update, variant 1: one element per thread
 *
 * Changed: the starting point, a direct port of the update: thread i reads parameter i, its
 * gradient and its two moments, and writes the new moments, the new fp32 master parameter and
 * its copy in the model's dtype.
 * Teaches: an optimizer step is pure bandwidth: about 17 flops per element against 32 bytes
 * moved (28 with bf16 gradients), so nothing but the memory system matters. Each thread reads
 * all of its element's inputs before it writes any output, so the outputs may be the inputs' own
 * buffers (an in-place update) without a race.
 * Run: python bench.py adamw --pass update --variant 1
 */
#include "common.cuh"

// params_out, m_out, v_out, params (P,) float; params_model, grads (P,) floatX; m, v (P,) float.
// The bias corrections 1 - beta^step come from the host (one pow per launch, not per element).
// Outputs may alias inputs elementwise, so no pointer is __restrict__.
extern "C" __global__ void adamw_update_per_element(
    float* params_out, float* m_out, float* v_out, floatX* params_model,
    const float* params, const floatX* grads, const float* m, const float* v, int P,
    float lr, float beta1, float beta2, float eps, float weight_decay,
    float beta1_correction, float beta2_correction, float grad_scale) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)P) return;  // no barriers below

    const float g = to_float(grads[i]) * grad_scale;
    const float p = params[i];
    const float m_new = beta1 * m[i] + (1.0f - beta1) * g;
    const float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
    const float m_hat = m_new / beta1_correction;
    const float v_hat = v_new / beta2_correction;
    // Decoupled weight decay: it shrinks the parameter directly, not through the moments.
    const float p_new = p - lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * p);

    m_out[i] = m_new;
    v_out[i] = v_new;
    params_out[i] = p_new;
    params_model[i] = from_float<floatX>(p_new);  // a copy in fp32, rounded to nearest in bf16
}
